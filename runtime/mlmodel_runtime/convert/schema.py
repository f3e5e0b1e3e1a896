"""Infer a fitted scikit-learn estimator's input schema and skl2onnx's initial types.

Called by the scikit-learn formats (`formats/estimator.py`) after loading,
before export and sampling. `InputSchema` itself is not scikit-learn's: any
tabular model (one matrix, or named numeric and string columns) can describe
itself with it and get parity rows from `sampling.py` (generated, --sample-data,
--reference) like a scikit-learn model.

- Fitted on a NumPy array: ONE input `input`, FP32 [-1, n_features_in_].
- Fitted on a DataFrame (`feature_names_in_`): one input per column, named after
  it, FP32 [-1, 1] or BYTES [-1, 1] — what skl2onnx expects for a
  ColumnTransformer. A column is a string column when an encoder inside a
  ColumnTransformer was fitted on string categories for it; its categories are
  kept so that generated sample data stays inside what the model knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlmodel_runtime.convert.errors import UnsupportedModelError
from mlmodel_runtime.modeldir import Task, TensorSpec

SINGLE_INPUT = "input"


@dataclass(frozen=True)
class InputColumn:
    name: str
    datatype: str  # "FP32" or "BYTES"
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputSchema:
    n_features: int
    # Empty for a model fitted on an array; one entry per DataFrame column otherwise.
    columns: tuple[InputColumn, ...] = ()

    @property
    def dataframe(self) -> bool:
        return bool(self.columns)

    def tensor_specs(self) -> tuple[TensorSpec, ...]:
        if not self.columns:
            return (TensorSpec(SINGLE_INPUT, "FP32", (-1, self.n_features)),)
        return tuple(TensorSpec(c.name, c.datatype, (-1, 1)) for c in self.columns)

    def initial_types(self) -> list[tuple[str, Any]]:
        """skl2onnx's `initial_types` for this schema."""
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

        if not self.columns:
            return [(SINGLE_INPUT, FloatTensorType([None, self.n_features]))]
        return [
            (
                c.name,
                StringTensorType([None, 1])
                if c.datatype == "BYTES"
                else FloatTensorType([None, 1]),
            )
            for c in self.columns
        ]


def dotted_name(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    # sklearn.linear_model._logistic -> sklearn.linear_model: the public path users know.
    public = ".".join(p for p in module.split(".") if not p.startswith("_"))
    return f"{public}.{cls.__qualname__}"


def _children(estimator: Any) -> Iterator[Any]:
    """Direct sub-estimators of pipelines, column transformers and unions."""
    for attr in ("steps", "transformer_list"):
        for item in getattr(estimator, attr, None) or ():
            yield item[1]
    for item in getattr(estimator, "transformers_", None) or ():
        yield item[1]


def walk(estimator: Any) -> Iterator[Any]:
    """The estimator and everything nested inside it, depth first."""
    yield estimator
    for child in _children(estimator):
        if not isinstance(child, str):  # "drop" / "passthrough"
            yield from walk(child)


def first_column_transformer(estimator: Any) -> Any | None:
    """The ColumnTransformer that receives the raw columns, if any."""
    from sklearn.compose import ColumnTransformer

    while True:
        if isinstance(estimator, ColumnTransformer):
            return estimator
        steps = getattr(estimator, "steps", None)
        if not steps:
            return None
        estimator = steps[0][1]


def _column_names(spec: Any, feature_names: list[str]) -> list[str]:
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, slice):
        return feature_names[spec]
    values = list(np.asarray(spec).reshape(-1)) if not callable(spec) else []
    if values and all(isinstance(v, bool | np.bool_) for v in values):
        return [n for n, keep in zip(feature_names, values, strict=False) if keep]
    if values and all(isinstance(v, int | np.integer) for v in values):
        return [feature_names[int(v)] for v in values]
    return [str(v) for v in values]


def _string_categories(transformer: Any) -> list[tuple[str, ...] | None]:
    """Per input column of `transformer`: its string categories, or None if numeric."""
    for node in walk(transformer):
        categories = getattr(node, "categories_", None)
        if categories is not None and hasattr(node, "transform"):
            return [
                tuple(str(v) for v in cats) if np.asarray(cats).dtype.kind in "OUS" else None
                for cats in categories
            ]
    return []


def infer_schema(estimator: Any) -> InputSchema:
    names = getattr(estimator, "feature_names_in_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    if names is None:
        if n_features is None:
            raise UnsupportedModelError(
                f"cannot infer the input schema of {dotted_name(estimator)}: it has neither "
                "n_features_in_ nor feature_names_in_ (is it fitted?)"
            )
        return InputSchema(n_features=int(n_features))
    feature_names = [str(n) for n in names]
    strings: dict[str, tuple[str, ...]] = {}
    ct = first_column_transformer(estimator)
    if ct is not None:
        for _, transformer, spec in getattr(ct, "transformers_", ()):
            if isinstance(transformer, str):
                continue
            names_here = _column_names(spec, feature_names)
            for column, cats in zip(names_here, _string_categories(transformer), strict=False):
                if cats is not None:
                    strings[column] = cats
    columns = tuple(
        InputColumn(n, "BYTES", strings[n]) if n in strings else InputColumn(n, "FP32")
        for n in feature_names
    )
    return InputSchema(n_features=len(columns), columns=columns)


def task_of(estimator: Any) -> Task:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    return "other"
