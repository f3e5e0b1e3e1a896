"""Compare the predictions of the original model with those of its ONNX conversion.

Pure: arrays in, figures out. No I/O, no clock, no model objects. `check.py`
runs the models and calls these functions; tests feed them hand-made arrays.

Tolerance follows `numpy.isclose`: a value passes when
``|actual - expected| <= atol + rtol * |expected|``.

Classifiers: labels must agree on every row, except where the original itself
was torn between the two labels (the gap between their original probabilities
is within twice the tolerance) — float32 arithmetic in ONNX may legitimately
break such ties the other way. Those rows are counted as `ambiguous` and shown.
Probabilities must agree within tolerance. Regressors: every output value must
agree within tolerance; the largest absolute and relative differences are
reported (relative difference only over values whose magnitude exceeds atol,
because it is meaningless near zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlmodel_runtime.convert.plan import Tolerance as Tolerance  # callers name it here

WORST_ROWS = 5


@dataclass(frozen=True)
class ParityResult:
    """Figures for the report and metadata.json; `passed` decides the exit code."""

    kind: str  # "classification" | "regression"
    rows: int
    passed: bool
    figures: dict[str, Any]
    worst_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "passed": self.passed,
            **self.figures,
            "worst_rows": self.worst_rows,
        }


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: NumPy scalars become int/float/str."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _labels_equal(expected: npt.NDArray[Any], actual: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    if expected.dtype.kind in "biuf" and actual.dtype.kind in "biuf":
        return np.asarray(expected.astype(np.float64) == actual.astype(np.float64))
    return np.asarray(expected.astype(str) == actual.astype(str))


def _nonfinite(values: npt.NDArray[Any] | None) -> int:
    if values is None or values.dtype.kind not in "fc":
        return 0
    return int(np.count_nonzero(~np.isfinite(values)))


def _class_index(classes: npt.NDArray[Any], labels: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Column of each label in the probabilities; -1 for a label that is not a class."""
    keys = [str(c) for c in classes.tolist()]
    lookup = {k: i for i, k in enumerate(keys)}
    if classes.dtype.kind in "biuf":
        return np.array([lookup.get(str(classes.dtype.type(v)), -1) for v in labels.tolist()])
    return np.array([lookup.get(str(_plain(v)), -1) for v in labels.tolist()])


def compare_classification(
    *,
    classes: npt.NDArray[Any],
    expected_labels: npt.NDArray[Any],
    actual_labels: npt.NDArray[Any],
    expected_probabilities: npt.NDArray[Any] | None,
    actual_probabilities: npt.NDArray[Any] | None,
    tolerance: Tolerance,
    worst: int = WORST_ROWS,
) -> ParityResult:
    """Label agreement and the largest probability difference, with the worst rows."""
    expected_labels = np.asarray(expected_labels).reshape(-1)
    actual_labels = np.asarray(actual_labels).reshape(-1)
    rows = int(expected_labels.shape[0])
    if actual_labels.shape[0] != rows:
        raise ValueError(f"the models returned {actual_labels.shape[0]} labels for {rows} rows")
    agree = _labels_equal(expected_labels, actual_labels)

    compare_probabilities = expected_probabilities is not None and actual_probabilities is not None
    row_diff = np.zeros(rows)
    ambiguous = np.zeros(rows, dtype=bool)
    probabilities_ok = True
    max_diff = 0.0
    if compare_probabilities:
        assert expected_probabilities is not None
        assert actual_probabilities is not None
        exp = np.asarray(expected_probabilities, dtype=np.float64).reshape(rows, -1)
        act = np.asarray(actual_probabilities, dtype=np.float64).reshape(rows, -1)
        if exp.shape != act.shape:
            raise ValueError(f"probabilities have shapes {exp.shape} and {act.shape}")
        diff = np.abs(act - exp)
        allowed = tolerance.atol + tolerance.rtol * np.abs(exp)
        with np.errstate(invalid="ignore"):
            probabilities_ok = bool(np.all(diff <= allowed))
        row_diff = np.nan_to_num(diff.max(axis=1), nan=np.inf) if diff.size else row_diff
        max_diff = float(row_diff.max()) if rows else 0.0
        # A disagreement is a tie broken differently when the original itself
        # barely preferred its label over the converted model's label.
        exp_col = _class_index(classes, expected_labels)
        act_col = _class_index(classes, actual_labels)
        known = (exp_col >= 0) & (act_col >= 0)
        idx = np.arange(rows)
        gap = np.full(rows, np.inf)
        gap[known] = np.abs(exp[idx[known], exp_col[known]] - exp[idx[known], act_col[known]])
        tie_tol = 2 * (tolerance.atol + tolerance.rtol * np.abs(exp).max(axis=1, initial=0.0))
        ambiguous = ~agree & (gap <= tie_tol)

    hard_mismatch = ~agree & ~ambiguous
    passed = bool(not hard_mismatch.any() and probabilities_ok)
    # Worst first: hard label mismatches, then ties, then the largest probability gaps.
    severity = hard_mismatch * 4.0 + ambiguous * 2.0 + np.minimum(row_diff, 1.0)
    order = np.argsort(-severity, kind="stable")[:worst]
    worst_rows = [
        {
            "row": int(i),
            "expected_label": _plain(expected_labels[i]),
            "actual_label": _plain(actual_labels[i]),
            "max_probability_diff": float(row_diff[i]),
        }
        for i in order
        if severity[i] > 0
    ]
    figures: dict[str, Any] = {
        "label_agreement": float(agree.mean()) if rows else 1.0,
        "label_mismatches": int((~agree).sum()),
        "ambiguous_ties": int(ambiguous.sum()),
        "max_probability_diff": max_diff if compare_probabilities else None,
        "rtol": tolerance.rtol,
        "atol": tolerance.atol,
    }
    return ParityResult("classification", rows, passed, figures, worst_rows)


def compare_regression(
    *,
    expected: npt.NDArray[Any],
    actual: npt.NDArray[Any],
    tolerance: Tolerance,
    worst: int = WORST_ROWS,
) -> ParityResult:
    """Largest absolute and relative differences, with the worst rows."""
    exp = np.asarray(expected, dtype=np.float64)
    rows = int(exp.shape[0]) if exp.ndim else 1
    exp = exp.reshape(rows, -1)
    act = np.asarray(actual, dtype=np.float64).reshape(rows, -1)
    if exp.shape != act.shape:
        raise ValueError(f"predictions have shapes {exp.shape} and {act.shape}")
    diff = np.abs(act - exp)
    allowed = tolerance.atol + tolerance.rtol * np.abs(exp)
    with np.errstate(invalid="ignore", divide="ignore"):
        within = diff <= allowed
        passed = bool(np.all(within))
        significant = np.abs(exp) > tolerance.atol
        rel = np.where(significant, diff / np.where(significant, np.abs(exp), 1.0), 0.0)
        excess = np.nan_to_num(diff - allowed, nan=np.inf).max(axis=1, initial=-np.inf)
    abs_row = np.nan_to_num(diff, nan=np.inf).max(axis=1, initial=0.0)
    rel_row = np.nan_to_num(rel, nan=np.inf).max(axis=1, initial=0.0)
    order = np.argsort(-excess, kind="stable")[:worst]
    worst_rows = [
        {
            "row": int(i),
            "expected": [float(v) for v in exp[i][:4]],
            "actual": [float(v) for v in act[i][:4]],
            "abs_diff": float(abs_row[i]),
            "rel_diff": float(rel_row[i]),
        }
        for i in order
        if not bool(within[i].all())
    ]
    figures: dict[str, Any] = {
        "max_abs_diff": float(abs_row.max()) if rows else 0.0,
        "max_rel_diff": float(rel_row.max()) if rows else 0.0,
        "values_outside_tolerance": int((~within).sum()),
        "rtol": tolerance.rtol,
        "atol": tolerance.atol,
    }
    return ParityResult("regression", rows, passed, figures, worst_rows)


def count_nonfinite(*arrays: npt.NDArray[Any] | None) -> int:
    """NaN and infinities across float arrays; a model that emits them is not served."""
    return sum(_nonfinite(a) for a in arrays)
