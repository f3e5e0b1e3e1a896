"""Status wiped mid-rollout (a restore from a backup of the objects without their status,
a hand-edited object): the operator rebuilds the stable from its Deployment's labels,
restarts the canary's steps, and never promotes it or deletes the serving revision."""

from __future__ import annotations

from typing import Any

import pytest

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from tests.helpers.kube import apply, deployments, events_for, model_status, wait_healthy

pytestmark = pytest.mark.cluster

SPEC: dict[str, Any] = {
    "serving": {"replicas": 2},
    "rollout": {"steps": [{"weight": 50, "pause": {}}, {"weight": 100}]},
}


def test_a_wiped_status_mid_rollout_keeps_the_stable_and_restarts_the_canary(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1", **SPEC))
    v1 = wait_healthy(cluster, namespace, "v1")["stable"]["revision"]
    apply(cluster, mlmodel("iris", namespace, version="v2", **SPEC))
    paused = wait_for(
        lambda: (s := model_status(cluster, namespace)).get("phase") == "Paused" and s,
        what="the canary paused at its first step",
    )
    v2 = paused["canary"]["revision"]

    cluster.kubectl(
        "patch",
        "mlmodel",
        "iris",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": null}',
    )
    rebuilt = wait_for(
        lambda: (s := model_status(cluster, namespace)).get("phase") == "Paused" and s,
        what="the rollout rebuilt and paused again",
    )
    assert rebuilt["stable"]["revision"] == v1
    assert rebuilt["canary"]["revision"] == v2
    assert rebuilt["canary"]["step"] == 0
    names = {d["metadata"]["name"] for d in deployments(cluster, namespace)}
    assert names == {f"iris-{v1}", f"iris-{v2}"}
    reasons = [e["reason"] for e in events_for(cluster, namespace, "iris")]
    assert "StatusRebuilt" in reasons
    assert "Promoted" not in reasons
