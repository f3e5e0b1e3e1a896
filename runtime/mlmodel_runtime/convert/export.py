"""Convert a fitted scikit-learn estimator to ONNX with skl2onnx, in memory.

XGBoost and LightGBM models (their scikit-learn wrappers, alone or inside
pipelines) take the same path: `families.py` registers onnxmltools' converters
for them with skl2onnx first.

Called by the scikit-learn formats (`formats/estimator.py`). Classifiers
export `label` and `probabilities` (no ZipMap, which would give the serving
runtime a list of dicts); regressors keep skl2onnx's `variable`. A plain
estimator fitted on an all-numeric DataFrame gets one input per column like a
ColumnTransformer does: skl2onnx's converters for plain estimators take a
single matrix, so those columns are concatenated in the graph, in the order
the estimator was fitted with.
"""

from __future__ import annotations

from typing import Any, Final

from mlmodel_runtime.convert.errors import UnsupportedModelError
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.convert.schema import (
    InputSchema,
    dotted_name,
    first_column_transformer,
    task_of,
)

# Opset 21 / ai.onnx.ml 3: what onnxruntime >= 1.20 (the oldest the runtime
# extra allows) executes; the serving image may lag the init image.
MAX_OPSET: Final = 21
ML_OPSET: Final = 3
SUPPORTED_DOC: Final = "docs/models.md"
_CONCAT_INPUT: Final = "mlmodel_concatenated_features"


def target_opset() -> dict[str, int]:
    from skl2onnx import get_latest_tested_opset_version

    return {"": min(int(get_latest_tested_opset_version()), MAX_OPSET), "ai.onnx.ml": ML_OPSET}


def _prepend_concat(model: Any, columns: list[str]) -> Any:
    """Replace the single matrix input by one [-1, 1] input per column plus a Concat."""
    from onnx import TensorProto, helper

    graph = model.graph
    kept = [i for i in graph.input if i.name != _CONCAT_INPUT]
    del graph.input[:]
    graph.input.extend(
        [helper.make_tensor_value_info(c, TensorProto.FLOAT, [None, 1]) for c in columns]
    )
    graph.input.extend(kept)
    concat = helper.make_node("Concat", columns, [_CONCAT_INPUT], axis=1, name="ConcatColumns")
    graph.node.insert(0, concat)
    return model


def to_onnx(estimator: Any, schema: InputSchema) -> bytes:
    """The serialized ONNX model; UnsupportedModelError names what skl2onnx cannot do."""
    from mlmodel_runtime.convert import families, gcpause

    with gcpause.while_importing():
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

    families.register_converters()
    concat = (
        schema.dataframe
        and first_column_transformer(estimator) is None
        and all(c.datatype == "FP32" for c in schema.columns)
    )
    initial_types = (
        [(_CONCAT_INPUT, FloatTensorType([None, schema.n_features]))]
        if concat
        else schema.initial_types()
    )
    options: dict[Any, Any] | None = (
        {"zipmap": False} if task_of(estimator) == "classification" else None
    )
    try:
        try:
            model = convert_sklearn(
                estimator, initial_types=initial_types, options=options, target_opset=target_opset()
            )
        except NameError as exc:
            # Classifiers without probabilities (LinearSVC, ...) have no ZipMap to disable.
            if "zipmap" not in str(exc):
                raise
            model = convert_sklearn(
                estimator, initial_types=initial_types, target_opset=target_opset()
            )
    except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, ...
        # skl2onnx errors can run to pages (node attribute dumps, tensor values).
        raise UnsupportedModelError(
            f"skl2onnx cannot convert {dotted_name(estimator)}: {describe(exc, limit=300)}. "
            f"Supported estimators are listed in {SUPPORTED_DOC}"
        ) from exc
    if concat:
        model = _prepend_concat(model, [c.name for c in schema.columns])
    data: bytes = model.SerializeToString()
    return data
