"""spec.serving.autoscaling against the real control plane: kube-controller-manager's
HorizontalPodAutoscaler controller decides the stable's replicas, the operator never
writes them (managedFields say who does), and a canary follows the stable's size.

No metrics API is served here, so the HPA controller acts on its bounds alone: a stable
below minReplicas is scaled up to it, one above maxReplicas down to it, by the same code
path (and the same /scale write) as a metric-driven decision. Raising minReplicas in
the MLModel is how these tests make the HPA scale the stable up mid-canary."""

from __future__ import annotations

from typing import Any

import pytest

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.scenario import get_json
from tests.helpers.kube import apply, deployments, events_for, model_status, wait_healthy
from tests.helpers.plugin import kubectl_mlmodel

pytestmark = pytest.mark.cluster

STEPS = [{"weight": 25, "pause": {}}, {"weight": 50, "pause": {}}, {"weight": 100, "pause": {}}]


def spec(minimum: int, maximum: int = 12) -> dict[str, Any]:
    return {
        "serving": {
            "autoscaling": {"minReplicas": minimum, "maxReplicas": maximum, "cpuUtilization": 70},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        },
        "traffic": {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "web"}]}},
        "rollout": {"steps": STEPS, "scaleDownDelaySeconds": 2},
    }


def deployment(cluster: ControlPlane, namespace: str, revision: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(
        cluster, "deployment", f"iris-{revision}", "-n", namespace, "--show-managed-fields"
    )
    return found


def replicas_owners(obj: dict[str, Any]) -> set[str]:
    """The field managers that own spec.replicas, by the object's managedFields."""
    return {
        entry["manager"]
        for entry in obj["metadata"].get("managedFields") or ()
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    }


def wait_replicas(cluster: ControlPlane, namespace: str, revision: str, count: int) -> None:
    def reached() -> bool:
        found = deployment(cluster, namespace, revision)
        return bool(
            found["spec"].get("replicas") == count
            and found.get("status", {}).get("readyReplicas") == count
        )

    wait_for(reached, timeout=90, what=f"iris-{revision} at {count} ready replicas")


def wait_step(cluster: ControlPlane, namespace: str, step: int) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = model_status(cluster, namespace)
        if (status.get("canary") or {}).get("step") == step and status.get("phase") == "Paused":
            return status
        return None

    found: dict[str, Any] = wait_for(
        reached, timeout=90, what=f"the canary paused at step {step + 1}"
    )
    return found


def test_the_hpa_controller_sizes_the_stable_the_canary_follows_and_promotion_hands_it_over(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, gateway_api: None
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1", **spec(2)))
    v1 = str(wait_healthy(cluster, namespace, "v1")["stable"]["revision"])
    hpa = get_json(cluster, "hpa", "iris", "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"iris-{v1}"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 12)
    # Created at its minimum, then handed over: the operator's apply lets go of replicas.
    wait_for(
        lambda: "mlmodel-operator" not in replicas_owners(deployment(cluster, namespace, v1)),
        what="the operator to hand the stable's replicas over",
    )
    assert deployment(cluster, namespace, v1)["spec"]["replicas"] == 2

    # A higher minimum: the HPA controller (not the operator) scales the stable to it.
    apply(cluster, mlmodel("iris", namespace, version="v1", **spec(4)))
    wait_replicas(cluster, namespace, v1, 4)
    assert "kube-controller-manager" in replicas_owners(deployment(cluster, namespace, v1))
    assert "mlmodel-operator" not in replicas_owners(deployment(cluster, namespace, v1))
    assert model_status(cluster, namespace)["stable"]["revision"] == v1  # no new revision
    # Growth is not degradation: the model stayed Healthy while the new pods started.
    assert "Degraded" not in [e["reason"] for e in events_for(cluster, namespace, "iris")]

    apply(cluster, mlmodel("iris", namespace, version="v2", **spec(4)))
    status = wait_step(cluster, namespace, 0)
    v2 = str(status["canary"]["revision"])
    assert deployment(cluster, namespace, v2)["spec"]["replicas"] == 1  # 25% of 4
    # The HPA scales the stable up while the canary is at 25%: the canary follows.
    apply(cluster, mlmodel("iris", namespace, version="v2", **spec(8)))
    wait_replicas(cluster, namespace, v1, 8)
    wait_replicas(cluster, namespace, v2, 2)  # 25% of 8
    assert "mlmodel-operator" not in replicas_owners(deployment(cluster, namespace, v1))

    kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
    wait_step(cluster, namespace, 1)
    wait_replicas(cluster, namespace, v2, 4)  # 50% of 8
    kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
    wait_step(cluster, namespace, 2)
    # The last step runs the canary at the stable's whole size, ready before promotion.
    wait_replicas(cluster, namespace, v2, 8)

    kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
    wait_healthy(cluster, namespace, "v2")
    hpa = get_json(cluster, "hpa", "iris", "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"iris-{v2}"
    # No dip: the new stable keeps the 8 pods it had, now in the HPA's hands.
    promoted = deployment(cluster, namespace, v2)
    assert promoted["spec"]["replicas"] == 8
    assert "mlmodel-operator" not in replicas_owners(promoted)
    assert replicas_owners(promoted) <= {"handover-to-hpa", "kube-controller-manager"}
    # The HPA acts on the new stable: a lower maximum scales it down.
    apply(cluster, mlmodel("iris", namespace, version="v2", **spec(2, maximum=5)))
    wait_replicas(cluster, namespace, v2, 5)
    assert replicas_owners(deployment(cluster, namespace, v2)) == {"kube-controller-manager"}
    wait_for(
        lambda: [d["metadata"]["name"] for d in deployments(cluster, namespace)] == [f"iris-{v2}"],
        what=f"iris-{v1} to go after the scale-down delay",
    )


def test_a_rolled_back_canary_leaves_the_hpa_on_the_stable_and_turning_it_off_deletes_it(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, gateway_api: None
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1", **spec(3)))
    v1 = str(wait_healthy(cluster, namespace, "v1")["stable"]["revision"])
    apply(cluster, mlmodel("iris", namespace, version="v2", **spec(3)))
    v2 = str(wait_step(cluster, namespace, 0)["canary"]["revision"])
    kubectl_mlmodel(cluster, "abort", "iris", "-n", namespace)
    wait_for(
        lambda: model_status(cluster, namespace).get("phase") == "RolledBack",
        what="the rollback",
    )
    wait_for(
        lambda: deployment(cluster, namespace, v2)["spec"]["replicas"] == 0,
        what="the rolled-back canary to be scaled away",
    )
    assert get_json(cluster, "hpa", "iris", "-n", namespace)["spec"]["scaleTargetRef"]["name"] == (
        f"iris-{v1}"
    )
    wait_replicas(cluster, namespace, v1, 3)

    # Back to fixed replicas: the HPA goes, and the operator sizes the stable again.
    fixed = spec(3)
    fixed["serving"] = {"replicas": 2, "resources": fixed["serving"]["resources"]}
    apply(cluster, mlmodel("iris", namespace, version="v1", **fixed))
    wait_for(
        lambda: not get_json(cluster, "hpa", "-n", namespace)["items"],
        what="the HPA to be deleted",
    )
    wait_replicas(cluster, namespace, v1, 2)
    assert "mlmodel-operator" in replicas_owners(deployment(cluster, namespace, v1))
