"""status.history and `kubectl mlmodel history` / `undo`, with real processes: the
operator as its ServiceAccount, real fetch, convert and serve in the runner's pods.

Four rollouts: v2 promoted; a v3 whose file fails its digest rolled back (its report
kept in history after its pods are gone); v4 superseded mid-rollout by v5, promoted.
`history` lists them in order; `undo` writes v2's model back into spec, and the
operator rolls it out as a canary again.
"""

from __future__ import annotations

from typing import Any

import pytest

from localenv import mlmodel, pods_of, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.scenario import get_json
from tests.helpers.kube import apply, model_status, wait_healthy, wait_phase
from tests.helpers.plugin import kubectl_mlmodel
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1

pytestmark = pytest.mark.e2e

QUICK = {
    "steps": [{"weight": 50, "pause": {"duration": "2s"}}],
    "scaleDownDelaySeconds": 1,
    "progressDeadlineSeconds": 120,
}
HELD = {**QUICK, "steps": [{"weight": 50, "pause": {}}]}  # waits for a promote


def outcomes(status: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["version"], e["outcome"]) for e in status.get("history") or ()]


def test_history_records_each_rollout_and_undo_goes_back_to_the_last_model_that_served(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    v1, _ = bring_up_v1(cluster, namespace, iris, operators, QUICK)
    apply(cluster, mlmodel("iris", namespace, version="v2", model_file=iris.v2, rollout=QUICK))
    wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)

    # v3: v1's file under a digest that is not its own; the fetch container refuses it.
    wrong = {"sha256": iris.sha256(iris.v2)}
    v3 = mlmodel("iris", namespace, version="v3", model_file=iris.v1, model=wrong, rollout=QUICK)
    apply(cluster, v3)
    rolled_back = wait_phase(cluster, namespace, "iris", "RolledBack", timeout=UP_TIMEOUT_S)
    bad = rolled_back["canary"]["revision"]
    wait_for(lambda: not pods_of(cluster, namespace, bad), what=f"the pods of {bad} to be deleted")
    [entry] = [e for e in model_status(cluster, namespace)["history"] if e["revision"] == bad]
    assert entry["outcome"] == "RolledBack", entry
    assert "fetching the model failed (exit 4)" in entry["reason"], entry
    assert (entry["conversion"]["status"], entry["conversion"]["error"]) == (
        "failed",
        "integrity",
    ), entry

    # v4 held at its first step, then replaced by v5 before anyone promoted it.
    apply(cluster, mlmodel("iris", namespace, version="v4", model_file=iris.v1, rollout=HELD))
    wait_phase(cluster, namespace, "iris", "Paused", timeout=UP_TIMEOUT_S)
    apply(cluster, mlmodel("iris", namespace, version="v5", model_file=iris.v2, rollout=QUICK))
    status = wait_healthy(cluster, namespace, "v5", timeout=UP_TIMEOUT_S, interval=0.5)
    assert outcomes(status) == [
        ("v1", "Deployed"),
        ("v2", "Promoted"),
        ("v3", "RolledBack"),
        ("v4", "Superseded"),
        ("v5", "Promoted"),
    ]
    assert all(e["digest"] for e in status["history"] if e["version"] != "v3"), status["history"]
    assert status["history"][0]["revision"] == v1

    listed = kubectl_mlmodel(cluster, "history", "iris", "-n", namespace).stdout.splitlines()
    rows = [line.removeprefix("*").split() for line in listed[1:]]
    assert [(row[1], row[3]) for row in rows] == outcomes(status), listed
    assert listed[-1].startswith("*"), listed  # v5 serves

    told = kubectl_mlmodel(cluster, "undo", "iris", "-n", namespace).stdout
    v2_revision = status["history"][1]["revision"]
    assert f"set back to revision {v2_revision} (v2)" in told, told
    model = get_json(cluster, "mlmodel", "iris", "-n", namespace)["spec"]["model"]
    assert model == status["history"][1]["model"], model
    # The same revision as before (same model, same serving): rolled out as a canary
    # again, then promoted, and recorded as a second rollout of it.
    status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
    assert status["stable"]["revision"] == v2_revision
    assert outcomes(status)[-1] == ("v2", "Promoted")
    assert len(status["history"]) == 6
