"""Parity arithmetic: hand-made predictions in, verdicts and figures out."""

from __future__ import annotations

import numpy as np
import pytest

from mlmodel_runtime.convert.parity import (
    Tolerance,
    compare_classification,
    compare_regression,
    count_nonfinite,
)

pytestmark = pytest.mark.unit
TOL = Tolerance(rtol=1e-4, atol=1e-5)
CLASSES = np.array([0, 1, 2])


def _proba(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def test_identical_classifier_outputs_pass() -> None:
    p = _proba([0.7, 0.2, 0.1], [0.1, 0.1, 0.8])
    result = compare_classification(
        classes=CLASSES, expected_labels=np.array([0, 2]), actual_labels=np.array([0, 2]),
        expected_probabilities=p, actual_probabilities=p.astype(np.float32), tolerance=TOL,
    )  # fmt: skip
    assert result.passed
    assert result.figures["label_agreement"] == 1.0
    assert result.figures["max_probability_diff"] < 1e-7
    assert result.worst_rows == [] or result.worst_rows[0]["max_probability_diff"] < 1e-7


def test_label_disagreement_fails_and_is_worst_row() -> None:
    p = _proba([0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1])
    result = compare_classification(
        classes=CLASSES, expected_labels=np.array([0, 2, 1]), actual_labels=np.array([0, 1, 1]),
        expected_probabilities=p, actual_probabilities=p, tolerance=TOL,
    )  # fmt: skip
    assert not result.passed
    assert result.figures["label_mismatches"] == 1
    assert result.figures["label_agreement"] == pytest.approx(2 / 3)
    assert result.worst_rows[0] == {
        "row": 1, "expected_label": 2, "actual_label": 1, "max_probability_diff": 0.0
    }  # fmt: skip


def test_tie_broken_the_other_way_is_ambiguous_not_a_failure() -> None:
    expected = _proba([0.5, 0.5, 0.0])
    actual = _proba([0.499999, 0.500001, 0.0])
    result = compare_classification(
        classes=CLASSES, expected_labels=np.array([0]), actual_labels=np.array([1]),
        expected_probabilities=expected, actual_probabilities=actual, tolerance=TOL,
    )  # fmt: skip
    assert result.passed
    assert result.figures["ambiguous_ties"] == 1


def test_probability_outside_tolerance_fails() -> None:
    expected = _proba([0.6, 0.3, 0.1])
    actual = _proba([0.6, 0.3 + 1e-3, 0.1 - 1e-3])
    result = compare_classification(
        classes=CLASSES, expected_labels=np.array([0]), actual_labels=np.array([0]),
        expected_probabilities=expected, actual_probabilities=actual, tolerance=TOL,
    )  # fmt: skip
    assert not result.passed
    assert result.figures["max_probability_diff"] == pytest.approx(1e-3)


def test_string_labels_and_missing_probabilities() -> None:
    result = compare_classification(
        classes=np.array(["a", "b"]), expected_labels=np.array(["a", "b"]),
        actual_labels=np.array(["a", "b"], dtype=object), expected_probabilities=None,
        actual_probabilities=None, tolerance=TOL,
    )  # fmt: skip
    assert result.passed
    assert result.figures["max_probability_diff"] is None


@pytest.mark.parametrize(
    ("expected", "actual", "passed", "max_abs", "max_rel"),
    [
        ([100.0, 200.0], [100.0, 200.0], True, 0.0, 0.0),
        ([100.0, 200.0], [100.005, 200.0], True, 0.005, 5e-5),
        ([100.0, 200.0], [100.0, 200.1], False, 0.1, 5e-4),
        ([0.0, 1.0], [5e-6, 1.0], True, 5e-6, 0.0),  # near zero: relative is meaningless
        ([0.0, 1.0], [1e-3, 1.0], False, 1e-3, 0.0),
    ],
)
def test_regression_figures(
    expected: list[float], actual: list[float], passed: bool, max_abs: float, max_rel: float
) -> None:
    result = compare_regression(expected=np.array(expected), actual=np.array(actual), tolerance=TOL)
    assert result.passed is passed
    assert result.figures["max_abs_diff"] == pytest.approx(max_abs, rel=1e-6, abs=1e-12)
    assert result.figures["max_rel_diff"] == pytest.approx(max_rel, rel=1e-3, abs=1e-12)
    assert (len(result.worst_rows) > 0) is not passed


def test_regression_shapes_n_by_1_and_worst_rows_order() -> None:
    expected = np.arange(10, dtype=np.float64) * 10
    actual = expected.reshape(-1, 1).copy()
    actual[3] += 1.0
    actual[7] += 5.0
    result = compare_regression(expected=expected, actual=actual, tolerance=TOL, worst=5)
    assert not result.passed
    assert [r["row"] for r in result.worst_rows] == [7, 3]
    assert result.figures["values_outside_tolerance"] == 2


def test_nan_is_never_within_tolerance() -> None:
    result = compare_regression(
        expected=np.array([1.0, 2.0]), actual=np.array([1.0, np.nan]), tolerance=TOL
    )
    assert not result.passed
    assert count_nonfinite(np.array([1.0, np.nan, np.inf]), None, np.array([1, 2])) == 2
