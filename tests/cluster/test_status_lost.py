"""Status wiped, and the stable's Deployment deleted by hand, mid-rollout. Status lost
(a restore from a backup of the objects without their status, a hand-edited object):
the operator rebuilds the stable from its Deployment's labels, restarts the canary's
steps, and never promotes it or deletes the serving revision. The stable gone: the
canary is held and the model says why until the spec goes back."""

from __future__ import annotations

from typing import Any

import pytest

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from tests.helpers.kube import (
    apply,
    deployments,
    events_for,
    model_status,
    v2_paused_over_v1,
    wait_healthy,
)

pytestmark = pytest.mark.cluster

SPEC: dict[str, Any] = {
    "serving": {"replicas": 2},
    "rollout": {"steps": [{"weight": 50, "pause": {}}, {"weight": 100}]},
}


def test_a_wiped_status_mid_rollout_keeps_the_stable_and_restarts_the_canary(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    v1, v2 = v2_paused_over_v1(cluster, namespace, SPEC)

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


def test_a_stable_deployment_deleted_mid_rollout_holds_the_canary_until_the_spec_goes_back(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    """The stable's Deployment deleted by hand while a canary is at its first step. The
    operator cannot recreate a stable of an earlier spec (its pod template is that
    spec's), and promoting the unjudged canary in its place is not its call: the model
    turns Degraded saying so, and the canary is held, never promoted. Going back to the
    stable's spec (a GitOps revert) recreates the stable's Deployment and drops the
    canary."""
    operators.start(namespace)
    v1, _ = v2_paused_over_v1(cluster, namespace, SPEC)
    cluster.kubectl("delete", "deployment", f"iris-{v1}", "-n", namespace)
    degraded = wait_for(
        lambda: (s := model_status(cluster, namespace)).get("phase") == "Degraded" and s,
        what="the model to say its stable is gone",
    )
    assert f"the Deployment of stable revision {v1} is missing" in degraded["message"]
    assert degraded["canary"]["step"] == 0
    assert degraded["stable"]["revision"] == v1

    apply(cluster, mlmodel("iris", namespace, version="v1", **SPEC))
    wait_healthy(cluster, namespace, "v1")
    wait_for(
        lambda: [d["metadata"]["name"] for d in deployments(cluster, namespace)] == [f"iris-{v1}"],
        what="the stable recreated and the canary dropped",
    )
    assert "Promoted" not in [e["reason"] for e in events_for(cluster, namespace, "iris")]
