"""The quality gate with real processes: `spec.rollout.evaluation` names a labelled
holdout set; every revision's real fetch and convert init containers (in the runner's
pods) fetch it and score the ONNX model they serve; the operator compares the canary's
score with the stable's before the canary's first step.

Under load through the Service, balanced across the iris classes: a canary with
classes 1 and 2 swapped answers with the true class frequencies (prediction
divergence, also configured, would see nothing), and is rolled back by its score before
it answers a single request; then another good model passes the gate and is promoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localenv import mlmodel, models
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, model_status, wait_healthy, wait_phase
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1, start_load

pytestmark = pytest.mark.e2e


def gated(dataset: Path, sha256: str) -> dict[str, Any]:
    return {
        "steps": [{"weight": 50, "pause": {"duration": "4s"}}],
        "analysis": {
            "interval": "2s",
            "minSamples": 5,
            "metrics": [{"name": "prediction-divergence", "max": 0.1}],
        },
        "evaluation": {
            "dataset": {"uri": f"file://{dataset}", "sha256": sha256},
            "metric": "accuracy",
            "maxDegradation": 0.05,
        },
        "scaleDownDelaySeconds": 1,
        "progressDeadlineSeconds": 120,
    }


def test_a_canary_with_two_classes_swapped_never_gets_traffic_and_a_good_one_passes(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
) -> None:
    dataset, sha256 = models.holdout(tmp_path)
    swapped = models.train_swapped(tmp_path)
    spec = gated(dataset, sha256)
    v1, _ = bring_up_v1(cluster, namespace, iris, operators, spec)
    baseline = model_status(cluster, namespace)["stable"]["conversion"]["evaluation"]
    assert baseline["score"] > 0.9, baseline

    load = start_load(cluster, namespace, iris, seconds=120)
    apply(cluster, mlmodel("iris", namespace, version="v2", model_file=swapped, rollout=spec))
    rolled_back = wait_phase(cluster, namespace, "iris", "RolledBack", timeout=UP_TIMEOUT_S)
    assert "evaluation: accuracy" in rolled_back["message"], rolled_back["message"]
    assert f"vs stable {baseline['score']:.4g}" in rolled_back["message"]
    assert rolled_back["canary"]["step"] == -1, rolled_back["canary"]
    canary = rolled_back["canary"]["revision"]
    [entry] = [e for e in rolled_back["history"] if e["revision"] == canary]
    assert (entry["outcome"], entry["reason"]) == ("RolledBack", rolled_back["canary"]["message"])

    apply(cluster, mlmodel("iris", namespace, version="v3", model_file=iris.v2, rollout=spec))
    status = wait_healthy(cluster, namespace, "v3", timeout=UP_TIMEOUT_S, interval=0.5)
    load.stop()
    result = load.wait()
    assert status["stable"]["conversion"]["evaluation"]["score"] >= baseline["score"] - 0.05
    # The swapped canary answered nothing: every answer came from v1 or v3.
    answered = result.by_revision("200")
    assert canary not in answered, result.counts
    assert answered.get(v1, 0) > 0, result.counts
    assert result.failures() == {}, result.explain()
