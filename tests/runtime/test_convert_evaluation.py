"""The quality gate's score: `fetch --evaluation-uri` puts a labelled holdout set beside
the model, `convert --source --evaluation-metric M` scores the ONNX model it will serve
on it and reports the score (the operator compares canary with stable). Real
processes; the metrics checked against scikit-learn's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

from mlmodel_runtime.convert.evaluation import METRICS
from mlmodel_runtime.reference import make_evaluation_set
from tests.runtime.convert_fixtures import MATRIX, diabetes, dump_skops, iris, run_cli, run_fetch

pytestmark = pytest.mark.runtime


def fit(case_id: str) -> Any:
    return next(c for c in MATRIX if c.id == case_id).build()


def scored(model: Any, dataset: Path, sha256: str, metric: str, tmp: Path) -> Any:
    source = tmp / "source"
    model_file = dump_skops(model, tmp / "m.skops")
    extra = ["--evaluation-uri", str(dataset), "--evaluation-sha256", sha256]
    fetched = run_fetch(["--uri", str(model_file), "--out", str(source), *extra])
    assert fetched.code == 0, fetched.report
    assert fetched.report["evaluation"]["sha256"] == sha256
    return run_cli(["--source", str(source), "--format", "skops", "--out", str(tmp / "out"),
                    "--evaluation-metric", metric])  # fmt: skip


def test_a_classifier_is_scored_on_the_holdout_and_the_report_says_on_what(
    tmp_path: Path,
) -> None:
    x, y = iris()
    model = fit("logistic_regression")
    made = make_evaluation_set(x, y, tmp_path / "holdout.npz")
    assert made.rows == 150
    converted = scored(model, made.path, made.sha256, "accuracy", tmp_path)
    assert converted.code == 0, converted.report
    evaluation = converted.report["evaluation"]
    expected = accuracy_score(y, model.predict(x.astype(np.float32).astype(np.float64)))
    assert evaluation["score"] == pytest.approx(expected, abs=1e-6)
    assert (evaluation["metric"], evaluation["rows"], evaluation["higherIsBetter"]) == (
        "accuracy",
        150,
        True,
    )
    assert evaluation["dataset"]["sha256"] == made.sha256
    assert f"accuracy {expected:.4g} on 150 labelled rows" in converted.report["message"]


def test_a_model_that_swaps_two_classes_scores_low_and_still_converts(tmp_path: Path) -> None:
    """The conversion is faithful to it (parity passes): judging it is the operator's
    comparison with the stable, not the converter's."""
    x, y = iris()
    swapped = np.where(y == 1, 2, np.where(y == 2, 1, y))
    model = fit("logistic_regression").fit(x, swapped)
    made = make_evaluation_set(x, y, tmp_path / "holdout.npz")
    converted = scored(model, made.path, made.sha256, "f1", tmp_path)
    assert converted.code == 0, converted.report
    assert converted.report["parity"]["passed"] is True
    assert converted.report["evaluation"]["score"] < 0.5


def test_a_regressor_is_scored_by_its_error(tmp_path: Path) -> None:
    x, y = diabetes()
    model = fit("ridge")
    made = make_evaluation_set(x, y, tmp_path / "holdout.npz", rows=200)
    converted = scored(model, made.path, made.sha256, "rmse", tmp_path)
    assert converted.code == 0, converted.report
    predicted = model.predict(x[:200].astype(np.float32).astype(np.float64))
    rmse = float(np.sqrt(mean_squared_error(y[:200], predicted)))
    assert converted.report["evaluation"]["score"] == pytest.approx(rmse, rel=1e-4)
    assert converted.report["evaluation"]["higherIsBetter"] is False


def test_a_metric_of_another_task_or_without_a_dataset_is_a_usage_error(tmp_path: Path) -> None:
    x, y = iris()
    made = make_evaluation_set(x, y, tmp_path / "holdout.npz")
    wrong_task = scored(fit("logistic_regression"), made.path, made.sha256, "rmse", tmp_path)
    assert wrong_task.code == 2, wrong_task.report
    assert "scores a regression model" in wrong_task.report["message"]
    model_file = dump_skops(fit("logistic_regression"), tmp_path / "alone.skops")
    alone = run_cli(["--uri", str(model_file), "--format", "skops", "--out",
                     str(tmp_path / "alone"), "--evaluation-metric", "accuracy"])  # fmt: skip
    assert alone.code == 2, alone.report
    assert "needs both a labelled dataset and --evaluation-metric" in alone.report["message"]


@pytest.mark.parametrize("name", ["accuracy", "f1", "rmse", "mae"])
def test_each_metric_is_the_usual_formula(name: str) -> None:
    rng = np.random.default_rng(3)
    truth: Any
    answer: Any
    if METRICS[name].task == "classification":
        truth, answer = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
        usual = {"accuracy": accuracy_score, "f1": lambda t, a: f1_score(t, a, average="macro")}
    else:
        truth, answer = rng.normal(size=200), rng.normal(size=200)
        usual = {
            "rmse": lambda t, a: float(np.sqrt(mean_squared_error(t, a))),
            "mae": mean_absolute_error,
        }
    assert METRICS[name].score(truth, answer) == pytest.approx(usual[name](truth, answer))


def test_numeric_labels_match_whatever_their_type() -> None:
    """A holdout target stored as floats scores a classifier answering int64 labels."""
    truth = np.array([0.0, 1.0, 2.0, 1.0])
    answer = np.array([0, 1, 2, 2], dtype=np.int64)
    assert METRICS["accuracy"].score(truth, answer) == 0.75
    assert METRICS["accuracy"].score(np.array(["a", "b"]), np.array(["a", "a"])) == 0.5
