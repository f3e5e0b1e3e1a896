"""The quality gate: a canary scoring worse than the stable on the labelled holdout set
is rolled back before its first step; scores compare only on the same dataset and
metric; a missing score never opens the gate."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator import quality, rollout
from mlmodel_operator.reconcile import Observed
from mlmodel_operator.spec import EVALUATION_METRICS, Evaluation, parse_spec
from mlmodel_runtime.convert.evaluation import METRICS
from tests.unit.operator.test_reconcile import R1, T0, deployment, model_spec, revision, run

pytestmark = pytest.mark.unit

DATASET = "e" * 64
GATE = Evaluation("s3://m/holdout.npz", DATASET, "accuracy", max_degradation=0.02)


def report(score: float, *, metric: str = "accuracy", dataset: str = DATASET) -> dict[str, Any]:
    return {
        "status": "ok",
        "evaluation": {"metric": metric, "score": score, "rows": 150,
                       "dataset": {"uri": "s3://m/holdout.npz", "sha256": dataset}},
    }  # fmt: skip


def test_the_metrics_are_the_runtimes_with_the_same_direction() -> None:
    assert {n: m.higher_is_better for n, m in METRICS.items()} == EVALUATION_METRICS


@pytest.mark.parametrize(
    ("canary", "stable", "refused"),
    [
        (report(0.95), report(0.96), ""),  # within maxDegradation
        (report(0.33), report(0.96), "accuracy 0.33 vs stable 0.96 on 150 labelled rows"),
        (report(0.99), report(0.96), ""),  # better
        (report(0.33), report(0.96, dataset="f" * 64), ""),  # another dataset: no baseline
        (report(0.33), report(0.96, metric="f1"), ""),  # another metric: no baseline
        (report(0.33), None, ""),  # a stable from before the gate
        ({"status": "ok"}, report(0.96), "report has no accuracy score"),
    ],
)
def test_the_canary_is_judged_against_the_stable_on_the_same_dataset(
    canary: dict[str, Any], stable: dict[str, Any] | None, refused: str
) -> None:
    why = quality.refusal(GATE, canary, stable, canary_ready=False)
    assert (why == "") == (refused == ""), why
    assert refused in why


def test_for_an_error_metric_lower_is_better() -> None:
    gate = Evaluation("s3://m/h.npz", DATASET, "rmse", max_degradation=5.0)
    assert quality.refusal(gate, report(58.0, metric="rmse"), report(54.0, metric="rmse"),
                           canary_ready=True) == ""  # fmt: skip
    worse = quality.refusal(gate, report(61.0, metric="rmse"), report(54.0, metric="rmse"),
                            canary_ready=True)  # fmt: skip
    assert "worse by 7 > maxDegradation 5" in worse


def test_no_report_waits_until_the_canary_serves_then_refuses() -> None:
    assert quality.refusal(GATE, {}, report(0.96), canary_ready=False) == ""
    assert "could not be read" in quality.refusal(GATE, {}, report(0.96), canary_ready=True)
    assert quality.refusal(None, {}, None, canary_ready=True) == ""


def converted_pod(name: str, score: float) -> dict[str, Any]:
    import json

    return {
        "metadata": {"name": name},
        "status": {
            "initContainerStatuses": [
                {"name": "convert", "restartCount": 0, "state": {"terminated": {
                    "exitCode": 0, "reason": "Completed", "message": json.dumps(report(score))}}}
            ]
        },
    }  # fmt: skip


def gated(version: str) -> dict[str, Any]:
    gate = {"dataset": {"uri": "s3://m/holdout.npz", "sha256": DATASET}, "maxDegradation": 0.02}
    return model_spec(version, evaluation=gate)


def test_a_worse_canary_is_rolled_back_before_its_first_step() -> None:
    v1, v2 = gated("v1"), gated("v2")
    r1, r2 = revision(v1), revision(v2)
    assert r1 != R1  # the gate is part of what the pods run
    stable = {r1: Observed(deployment(4), pods=[converted_pod(f"iris-{r1}-a", 0.96)])}
    first = run(v1, observed=stable, now_s=T0 - 60)
    serving = run(v1, first.status, observed=stable, now_s=T0 - 50)
    assert serving.status["stable"]["conversion"]["evaluation"]["score"] == 0.96

    observed = {**stable, r2: Observed(deployment(1), pods=[converted_pod(f"iris-{r2}-a", 0.33)])}
    result = run(v2, serving.status, observed=observed, now_s=T0)
    assert result.status["phase"] == "RolledBack"
    assert result.status["canary"]["step"] == rollout.WAITING_FOR_READY  # never took traffic
    assert "accuracy 0.33 vs stable 0.96" in result.status["message"]
    assert ("Warning", "EvaluationFailed") in [(e.type, e.reason) for e in result.events]
    assert result.status["history"][-1]["outcome"] == "RolledBack"
    assert result.status["history"][-1]["conversion"]["evaluation"]["score"] == 0.33

    better = {**stable, r2: Observed(deployment(1), pods=[converted_pod(f"iris-{r2}-a", 0.97)])}
    passed = run(v2, serving.status, observed=better, now_s=T0)
    assert passed.status["canary"]["step"] == 0
    assert passed.status["canary"]["conversion"]["evaluation"]["score"] == 0.97


def test_a_gate_that_cannot_work_is_refused() -> None:
    from mlmodel_operator.errors import SpecError

    dataset = {"uri": "s3://m/h.npz", "sha256": DATASET}
    with pytest.raises(SpecError, match="is not one of accuracy, f1, rmse, mae"):
        parse_spec(
            {
                "model": {"uri": "s3://m/m.skops"},
                "rollout": {"evaluation": {"dataset": dataset, "metric": "auc"}},
            }
        )
    with pytest.raises(SpecError, match="an ONNX model is served as is"):
        parse_spec(
            {
                "model": {"uri": "s3://m/m.onnx", "format": "onnx"},
                "rollout": {"evaluation": {"dataset": dataset}},
            }
        )
