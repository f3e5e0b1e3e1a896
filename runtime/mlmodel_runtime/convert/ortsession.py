"""onnxruntime sessions for the conversion, with onnxruntime's own logging silenced.

Called by `formats/onnx.py` (the passthrough) and `pipeline.py` (the model to
serve, whatever its format), which also describe the sessions' inputs and
outputs in v2 terms with `tensor_specs`.

onnxruntime's C++ logger writes its errors straight to stderr, around our
logger, and they quote what the failing node was looking at (shapes, values).
Its failures already arrive as Python exceptions, which callers shorten with
`sanitize.describe`; so only fatal messages are left to the native logger.
"""

from __future__ import annotations

from typing import Any

from mlmodel_runtime.convert.errors import UnsupportedModelError
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.datatypes import ORT_TO_V2
from mlmodel_runtime.modeldir import TensorSpec

_FATAL_ONLY = 4


def session(onnx_bytes: bytes, *, what: str) -> Any:
    """An InferenceSession on the CPU; UnsupportedModelError saying `what` cannot be loaded."""
    import onnxruntime as ort

    ort.set_default_logger_severity(_FATAL_ONLY)
    options = ort.SessionOptions()
    options.log_severity_level = _FATAL_ONLY
    try:
        return ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise UnsupportedModelError(f"onnxruntime cannot load {what}: {describe(exc)}") from exc


def tensor_specs(nodes: Any) -> tuple[TensorSpec, ...]:
    """`session.get_inputs()` or `get_outputs()` in v2 terms; -1 for a free dimension."""
    return tuple(
        TensorSpec(
            node.name,
            ORT_TO_V2.get(node.type, node.type),
            tuple(d if isinstance(d, int) else -1 for d in (node.shape or ())),
        )
        for node in nodes
    )
