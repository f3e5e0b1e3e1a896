"""Files made in the training environment for the conversion's checks:
`make_reference` (the model's predictions, for parity) and `make_evaluation_set`
(labelled rows, for the quality gate).

A conversion is proven against the original model re-loaded in the init container;
a reference proves it against what the model predicted where it was trained (another
scikit-learn build, another platform, a preprocessing step the file does not carry
would all show up here). Call it in the training script, with the fitted model and a
sample of the data, and name the file in the MLModel's `spec.conversion.reference`
with the sha256 it returns:

    from mlmodel_runtime.reference import make_reference
    made = make_reference(model, X_test, "reference.npz")
    print(made.sha256)

An evaluation set is labelled holdout rows (`spec.rollout.evaluation.dataset`): every
revision is scored on it by its init container, and a canary scoring worse than the
stable by more than allowed is rolled back before it gets traffic:

    from mlmodel_runtime.reference import make_evaluation_set
    made = make_evaluation_set(X_holdout, y_holdout, "holdout.npz")

Only NumPy is needed (and pandas when the inputs are a DataFrame). The file is an .npz
without object arrays (docs/convert.md, "The reference file"), read back without
pickle. Numeric inputs are rounded to float32 before predicting, because the ONNX
model computes in float32: a reference predicted on float64 values would disagree
with it wherever a tree threshold falls between the two roundings, and that is not a
conversion error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_ROWS = 1000


@dataclass(frozen=True)
class ReferenceFile:
    path: Path
    sha256: str
    rows: int
    task: str  # classification | regression (of the model a reference was made with)


def _is_classifier(model: Any) -> bool:
    try:
        from sklearn.base import is_classifier
    except ImportError:
        return hasattr(model, "classes_")
    return bool(is_classifier(model)) or hasattr(model, "classes_")


def _plain(values: Any) -> npt.NDArray[Any]:
    """An array np.load reads without pickle: object arrays become unicode strings."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


def _as_float32(values: Any) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def _inputs(data: Any, rows: int) -> tuple[Any, dict[str, npt.NDArray[Any]]]:
    """What the model is asked (a DataFrame or a matrix) and the arrays stored for it."""
    if hasattr(data, "columns"):  # a pandas DataFrame: one array per column
        from pandas.api.types import is_numeric_dtype

        frame = data.iloc[:rows].copy()
        for column in frame.columns:
            if is_numeric_dtype(frame[column]):
                frame[column] = _as_float32(frame[column])
        arrays = {str(c): _plain(frame[c].to_numpy()) for c in frame.columns}
        return frame, arrays
    matrix = np.asarray(data)
    if matrix.ndim != 2:
        raise ValueError(f"inputs must be 2-D (rows x features), not {matrix.shape}")
    matrix = _as_float32(matrix[:rows])
    return matrix, {"inputs": matrix}


def _write(path: str | Path, arrays: dict[str, npt.NDArray[Any]], task: str) -> ReferenceFile:
    target = Path(path)
    with target.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    count = int(next(iter(arrays.values())).shape[0])
    return ReferenceFile(path=target, sha256=digest, rows=count, task=task)


def make_evaluation_set(
    data: Any, target: Any, path: str | Path, *, rows: int = DEFAULT_ROWS
) -> ReferenceFile:
    """Write the inputs (at most `rows`) with their true answers `target` to `path`
    (.npz), as the init container scores models on them (its `task` is '': the
    metric named in the MLModel says which kind of model it scores)."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    _, arrays = _inputs(data, rows)
    answers = _plain(np.asarray(target)[:rows])
    if answers.shape[0] != next(iter(arrays.values())).shape[0]:
        raise ValueError("target must have one answer per input row")
    arrays["target"] = answers
    return _write(path, arrays, "")


def make_reference(
    model: Any, data: Any, path: str | Path, *, rows: int = DEFAULT_ROWS
) -> ReferenceFile:
    """Predict `data` (at most `rows` rows) with the fitted `model` here, and write the
    inputs with the predictions to `path` (.npz): `label` and `probabilities` for a
    classifier, `predictions` for a regressor."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    asked, arrays = _inputs(data, rows)
    if _is_classifier(model):
        task = "classification"
        arrays["label"] = _plain(model.predict(asked))
        if hasattr(model, "predict_proba"):
            arrays["probabilities"] = np.asarray(model.predict_proba(asked), dtype=np.float64)
    else:
        task = "regression"
        arrays["predictions"] = np.asarray(model.predict(asked), dtype=np.float64)
    return _write(path, arrays, task)
