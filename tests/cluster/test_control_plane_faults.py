"""The control plane failing under a rollout: kube-apiserver and etcd killed (SIGKILL)
mid-step and restarted a few seconds later, shorter than the operator's lease. The
operator keeps leading and keeps its place (the step is in status, in etcd), duplicates
nothing, and the rollout goes on when a person promotes."""

from __future__ import annotations

from typing import Any

import pytest

from localenv import wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.scenario import get_json
from tests.helpers.kube import deployments, model_status, v2_paused_over_v1, wait_healthy
from tests.helpers.plugin import kubectl_mlmodel

pytestmark = pytest.mark.cluster

SPEC: dict[str, Any] = {
    "serving": {"replicas": 2},
    "rollout": {
        "steps": [{"weight": 50, "pause": {}}, {"weight": 100, "pause": {"duration": "1s"}}],
        "scaleDownDelaySeconds": 2,
    },
}


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_control_plane_component_killed_mid_step_loses_nothing(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, component: str
) -> None:
    operator = operators.start(namespace)
    v1, v2 = v2_paused_over_v1(cluster, namespace, SPEC)

    cluster.restart(component, down_s=3)

    # Still leading (3 s down is within its 15 s lease) and still at the same place.
    assert operator.alive(), operator.output()[-3000:]
    status = model_status(cluster, namespace)
    assert (status["phase"], status["canary"]["step"]) == ("Paused", 0), status
    assert status["stable"]["revision"] == v1
    # It acts again: a promote goes through to the end.
    kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
    wait_healthy(cluster, namespace, "v2", timeout=120)
    wait_for(
        lambda: [d["metadata"]["name"] for d in deployments(cluster, namespace)] == [f"iris-{v2}"],
        what=f"iris-{v1} to go after the scale-down delay",
    )
    services = sorted(
        s["metadata"]["name"] for s in get_json(cluster, "services", "-n", namespace)["items"]
    )
    assert services == ["iris", "iris-canary", "iris-stable"]
    assert operator.alive()
