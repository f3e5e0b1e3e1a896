"""Refuse ONNX models whose tensors live in external files.

Called by `formats/onnx.py`, before onnx.checker or onnxruntime see the
model. A TensorProto may keep its data in a file named by a relative path
(`data_location: EXTERNAL`, `external_data { key: "location" ... }`); loaded
from bytes, onnxruntime resolves that path against the working directory, and
onnx.checker accepts paths that stay inside it. A model could thus read any
file the container can reach into its weights, and serve it back, or quote it
in an error message. The served model must be self-contained, so every tensor
with external data is refused, wherever it sits: initializers, sparse
initializers, node attributes (Constant values, subgraphs of If/Loop/Scan),
functions and training information. The walk is generic over the protobuf
message, so a tensor in a place not listed here is found as well.
"""

from __future__ import annotations

from typing import Any

from mlmodel_runtime.convert.errors import UnsafeFormatError
from mlmodel_runtime.convert.sanitize import clean

MAX_NAMED = 3


def _tensors(message: Any) -> list[Any]:
    """Every TensorProto inside `message`, found through all set message fields."""
    from onnx import TensorProto

    found: list[Any] = []
    stack = [message]
    while stack:
        current = stack.pop()
        if isinstance(current, TensorProto):
            found.append(current)
        for field, value in current.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if hasattr(value, "ListFields"):
                stack.append(value)
            else:  # a repeated field (map fields hold string entries, never tensors)
                stack.extend(value)
    return found


def _location(tensor: Any) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def refuse_external_data(model: Any) -> None:
    """Raise UnsafeFormatError naming the tensors that keep their data outside the model."""
    from onnx import TensorProto

    external = [
        t
        for t in _tensors(model)
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data) > 0
    ]
    if not external:
        return
    named = ", ".join(
        f"{clean(t.name, 60)!r} at {clean(_location(t), 60)!r}" for t in external[:MAX_NAMED]
    )
    more = f" and {len(external) - MAX_NAMED} more" if len(external) > MAX_NAMED else ""
    raise UnsafeFormatError(
        f"the ONNX model keeps tensor data in external files ({named}{more}); such a model "
        "would read files from the container it runs in. Save it as one self-contained file "
        "(onnx.save_model(model, path, save_as_external_data=False))"
    )
