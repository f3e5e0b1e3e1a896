"""Parity against the training environment in a cluster: `spec.conversion.reference`
fetched by the real fetch init container beside the model and checked by the real
convert container, in the runner's pods, with the operator as its ServiceAccount.

The reference is made as the docs say, with `mlmodel-runtime reference` on the saved
model and sample rows. v2 converted as trained passes and is promoted, its report
naming the reference; v3 ships another model under v2's reference (a conversion that
no longer predicts what training saw) and is rolled back with the parity report,
before it took any traffic, while v1's successor keeps serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localenv import mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, wait_healthy, wait_phase
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1, reference_of

pytestmark = pytest.mark.e2e

QUICK = {
    "steps": [{"weight": 50, "pause": {"duration": "2s"}}],
    "scaleDownDelaySeconds": 1,
    "progressDeadlineSeconds": 120,
}


def with_reference(version: str, model: Path, reference: dict[str, str]) -> dict[str, Any]:
    conversion = {"parity": {"samples": 32}, "reference": reference}
    return {"version": version, "model_file": model, "rollout": QUICK, "conversion": conversion}


def test_a_reference_made_in_training_passes_and_a_model_that_disagrees_is_rolled_back(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
) -> None:
    bring_up_v1(cluster, namespace, iris, operators, QUICK)
    reference = reference_of(iris.v2, tmp_path)
    apply(cluster, mlmodel("iris", namespace, **with_reference("v2", iris.v2, reference)))
    status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
    parity = status["stable"]["conversion"]["parity"]
    assert parity["vs_reference"]["passed"] is True, parity
    assert parity["reference"]["sha256"] == reference["sha256"], parity
    assert parity["rows"] == 150

    # v1's forest under v2's reference: its conversion is faithful to it, but it does
    # not predict what training saw for v2.
    apply(cluster, mlmodel("iris", namespace, **with_reference("v3", iris.v1, reference)))
    rolled_back = wait_phase(cluster, namespace, "iris", "RolledBack", timeout=UP_TIMEOUT_S)
    assert "(exit 7)" in rolled_back["message"], rolled_back["message"]
    assert rolled_back["stable"]["version"] == "v2"
    assert rolled_back["canary"]["step"] == -1, rolled_back["canary"]  # never took traffic
    [entry] = [e for e in rolled_back["history"] if e["version"] == "v3"]
    report = entry["conversion"]
    assert report["error"] == "parity", report
    assert report["parity"]["vs_original"]["passed"] is True
    assert report["parity"]["vs_reference"]["passed"] is False
    assert report["parity"]["vs_reference"]["worst_rows"]
    assert report["parity"]["reference"]["sha256"] == reference["sha256"]
