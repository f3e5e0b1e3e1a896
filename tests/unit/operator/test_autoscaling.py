"""spec.serving.autoscaling in the pure plan: the HPA owns the stable's replicas, the
operator hands them over once and never writes them again, the canary follows the
stable's current size."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator import rollout
from mlmodel_operator.desired import HANDOVER_MANAGER
from mlmodel_operator.errors import SpecError
from mlmodel_operator.ownership import applies_field
from mlmodel_operator.reconcile import Observed, Plan
from mlmodel_operator.spec import parse_or_error
from tests.unit.operator.test_reconcile import (
    T0,
    applied,
    deployment,
    deployments,
    model_spec,
    revision,
    run,
)

pytestmark = pytest.mark.unit

SCALING = {"minReplicas": 2, "maxReplicas": 10, "cpuUtilization": 70}
CPU = {"requests": {"cpu": "500m", "memory": "256Mi"}}


def autoscaled(version: str, **scaling: Any) -> dict[str, Any]:
    spec = model_spec(version, router="gatewayAPI")
    spec["serving"] = {"autoscaling": {**SCALING, **scaling}, "resources": CPU}
    return spec


A1, A2 = autoscaled("v1"), autoscaled("v2")
R1, R2 = revision(A1), revision(A2)


def applied_by_operator(replicas: int, *, ready: int | None = None) -> dict[str, Any]:
    """A Deployment whose replicas the operator's own apply owns (it created it)."""
    built = deployment(replicas, ready=ready)
    built["metadata"]["managedFields"] = [
        {
            "manager": "mlmodel-operator",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    return built


def scaled_by_hpa(replicas: int, *, ready: int | None = None) -> dict[str, Any]:
    """A Deployment whose replicas the HPA controller set last (an Update through /scale)."""
    built = deployment(replicas, ready=ready)
    built["metadata"]["managedFields"] = [
        {
            "manager": "mlmodel-operator",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:template": {}}},
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "scale",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
    ]
    return built


def hpa(result: Plan) -> dict[str, Any]:
    [found] = [o for o in result.apply if o["kind"] == "HorizontalPodAutoscaler"]
    return found


def serving_v1(replicas: int = 8) -> dict[str, Any]:
    """The status of an autoscaled model whose first revision serves, its HPA at `replicas`."""
    first = run(A1, now_s=T0 - 60)
    ready = {R1: Observed(scaled_by_hpa(replicas))}
    return run(A1, first.status, observed=ready, now_s=T0 - 50).status


def canary(spec: dict[str, Any], stable: int, status: dict[str, Any], now_s: float) -> Plan:
    return run(
        spec,
        status,
        observed={R1: Observed(scaled_by_hpa(stable)), R2: Observed(deployment(1))},
        now_s=now_s,
    )


def test_an_autoscaled_first_revision_is_created_at_its_minimum_then_handed_to_the_hpa() -> None:
    created = run(A1)
    assert deployments(created)[f"iris-{R1}"]["spec"]["replicas"] == 2
    # No HPA before its Deployment exists: it would only report the target missing.
    assert "HorizontalPodAutoscaler" not in [kind for kind, _ in applied(created)]
    assert created.handover == []

    observed = {R1: Observed(applied_by_operator(2, ready=0))}
    next_one = run(A1, created.status, observed=observed, now_s=T0 + 1)
    # The hand-over manager claims replicas before the operator's apply leaves them out.
    assert next_one.handover == [(R1, 2)]
    assert "replicas" not in deployments(next_one)[f"iris-{R1}"]["spec"]
    scaler = hpa(next_one)
    assert scaler["metadata"]["name"] == "iris"
    assert scaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"iris-{R1}",
    }
    assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (2, 10)
    assert scaler["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert scaler["metadata"]["ownerReferences"][0]["kind"] == "MLModel"


def test_once_the_hpa_sizes_the_stable_the_operator_never_writes_its_replicas() -> None:
    status = serving_v1(7)
    result = run(A1, status, observed={R1: Observed(scaled_by_hpa(7))}, now_s=T0)
    assert result.handover == []
    assert result.scale == []
    assert "replicas" not in deployments(result)[f"iris-{R1}"]["spec"]
    assert result.status["stable"]["replicas"] == 7
    # A PDB guards a stable that may run several pods.
    assert ("PodDisruptionBudget", f"iris-{R1}") in applied(result)


def test_a_canary_follows_the_stables_current_size_times_its_weight() -> None:
    status = serving_v1(8)
    waiting = run(A2, status, observed={R1: Observed(scaled_by_hpa(8))}, now_s=T0 - 5)
    # Before its first step: the first step's share of the stable's 8 (25%: 2).
    assert deployments(waiting)[f"iris-{R2}"]["spec"]["replicas"] == 2
    first = canary(A2, 8, waiting.status, T0)
    assert first.status["canary"]["step"] == 0
    assert deployments(first)[f"iris-{R2}"]["spec"]["replicas"] == 2
    # The stable (of the earlier spec) is neither applied nor scaled: the HPA sizes it.
    assert f"iris-{R1}" not in deployments(first)
    assert first.scale == []
    assert hpa(first)["spec"]["scaleTargetRef"]["name"] == f"iris-{R1}"
    # The HPA scales the stable up under load: the canary follows (25% of 12: 3).
    grown = canary(A2, 12, first.status, T0 + 5)
    assert deployments(grown)[f"iris-{R2}"]["spec"]["replicas"] == 3
    shrunk = canary(A2, 3, grown.status, T0 + 6)
    assert deployments(shrunk)[f"iris-{R2}"]["spec"]["replicas"] == 1


def test_at_the_last_step_the_canary_runs_the_stables_whole_size() -> None:
    status = serving_v1(8)
    waiting = run(A2, status, observed={R1: Observed(scaled_by_hpa(8))}, now_s=T0 - 5)
    first = canary(A2, 8, waiting.status, T0)
    last = run(
        A2,
        first.status,
        observed={R1: Observed(scaled_by_hpa(8)), R2: Observed(deployment(2))},
        now_s=T0 + 1,
        annotations={rollout.PROMOTE: f"{R2}/1/0"},  # to step 2 (50%)
    )
    assert last.status["canary"]["step"] == 1
    assert deployments(last)[f"iris-{R2}"]["spec"]["replicas"] == 4
    final = run(
        A2,
        last.status,
        observed={R1: Observed(scaled_by_hpa(8)), R2: Observed(deployment(4))},
        now_s=T0 + 2,
        annotations={rollout.PROMOTE: f"{R2}/1/1"},  # to the last step (100%)
    )
    assert final.status["canary"]["step"] == 2
    assert deployments(final)[f"iris-{R2}"]["spec"]["replicas"] == 8


def fully_promoted(stable: int, canary_size: int) -> Plan:
    """V2 promoted fully by a person at its first step, the HPA having sized the stable
    to `stable` and the operator the canary to `canary_size`."""
    status = serving_v1(8)
    waiting = run(A2, status, observed={R1: Observed(scaled_by_hpa(8))}, now_s=T0 - 5)
    first = canary(A2, 8, waiting.status, T0)
    observed = {
        R1: Observed(scaled_by_hpa(stable)),
        R2: Observed(applied_by_operator(canary_size)),
    }
    return run(
        A2,
        first.status,
        observed=observed,
        now_s=T0 + 1,
        annotations={rollout.PROMOTE: f"{R2}/1/full"},
    )


def test_promotion_hands_the_new_stable_to_the_hpa_at_the_old_stables_size() -> None:
    promoted = fully_promoted(9, 2)
    assert promoted.status["stable"]["revision"] == R2
    assert hpa(promoted)["spec"]["scaleTargetRef"]["name"] == f"iris-{R2}"
    assert hpa(promoted)["metadata"]["labels"]["mlops.dev/revision"] == R2
    # A person's full promote skipped the last step: the operator's apply, which still
    # owns the new stable's replicas, first sizes it as the HPA had sized the old one.
    assert promoted.handover == []
    assert deployments(promoted)[f"iris-{R2}"]["spec"]["replicas"] == 9
    # The old stable keeps its pods for the scale-down delay, unscaled.
    assert promoted.scale == []
    assert ("Deployment", f"iris-{R1}") not in promoted.delete
    # Once it has that size, the hand-over manager claims it at that very value and the
    # operator's apply leaves the field out.
    observed = {R1: Observed(scaled_by_hpa(9)), R2: Observed(applied_by_operator(9, ready=4))}
    next_one = run(A2, promoted.status, observed=observed, now_s=T0 + 2)
    assert next_one.handover == [(R2, 9)]
    assert "replicas" not in deployments(next_one)[f"iris-{R2}"]["spec"]


def test_a_promoted_canary_at_the_stables_size_is_handed_over_at_once() -> None:
    promoted = fully_promoted(8, 8)
    assert promoted.handover == [(R2, 8)]
    assert "replicas" not in deployments(promoted)[f"iris-{R2}"]["spec"]


def test_the_hand_over_never_exceeds_max_replicas() -> None:
    status = serving_v1(8)
    small = autoscaled("v1", maxReplicas=3)
    result = run(small, status, observed={R1: Observed(applied_by_operator(8))}, now_s=T0)
    assert result.handover == []
    assert deployments(result)[f"iris-{R1}"]["spec"]["replicas"] == 3
    later = run(small, status, observed={R1: Observed(applied_by_operator(3))}, now_s=T0 + 1)
    assert later.handover == [(R1, 3)]
    assert "replicas" not in deployments(later)[f"iris-{R1}"]["spec"]


def test_a_rolled_back_canary_keeps_its_pods_until_the_autoscaled_stable_is_ready() -> None:
    status = serving_v1(8)
    waiting = run(A2, status, observed={R1: Observed(scaled_by_hpa(8))}, now_s=T0 - 5)
    first = canary(A2, 8, waiting.status, T0)
    aborted = run(
        A2,
        first.status,
        observed={R1: Observed(scaled_by_hpa(8, ready=6)), R2: Observed(deployment(2))},
        now_s=T0 + 1,
        annotations={rollout.ABORT: f"{R2}/1"},
    )
    assert aborted.status["canary"]["aborted"] is True
    assert deployments(aborted)[f"iris-{R2}"]["spec"]["replicas"] == 2


def test_turning_autoscaling_off_deletes_the_hpa_and_the_operator_sizes_the_stable_again() -> None:
    status = serving_v1(6)
    fixed = model_spec("v1", replicas=5, router="gatewayAPI")
    fixed["serving"]["resources"] = CPU
    assert revision(fixed) == R1  # sizing is not a new revision
    result = run(
        fixed,
        status,
        observed={R1: Observed(scaled_by_hpa(6))},
        now_s=T0,
        autoscalers=frozenset({"iris"}),
    )
    assert ("HorizontalPodAutoscaler", "iris") in result.delete
    assert deployments(result)[f"iris-{R1}"]["spec"]["replicas"] == 5
    assert result.handover == []


def test_requests_per_second_reads_the_pods_metric_of_the_custom_metrics_api() -> None:
    spec = autoscaled("v1", requestsPerSecond=2.5)
    del spec["serving"]["autoscaling"]["cpuUtilization"]
    result = run(spec, serving_v1(3), observed={R1: Observed(scaled_by_hpa(3))}, now_s=T0)
    assert hpa(result)["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "mlmodel_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]


def test_cpu_utilization_without_a_cpu_request_blocks_with_the_reason() -> None:
    spec = autoscaled("v1")
    spec["serving"]["resources"] = {"limits": {"memory": "1Gi"}}
    result = run(spec)
    assert result.apply == []
    assert "cpuUtilization" in result.status["message"]
    assert "serving.resources.requests.cpu" in result.status["message"]


@pytest.mark.parametrize(
    ("serving", "router", "message"),
    [
        ({"replicas": 3, "autoscaling": SCALING}, "gatewayAPI", "exclusive"),
        ({"autoscaling": SCALING}, "replicas", "router"),
        (
            {"autoscaling": {**SCALING, "minReplicas": 11}},
            "gatewayAPI",
            "minReplicas <= maxReplicas",
        ),
        ({"autoscaling": {"maxReplicas": 4}}, "gatewayAPI", "one target"),
        ({"autoscaling": {**SCALING, "requestsPerSecond": 5}}, "gatewayAPI", "one target"),
        ({"autoscaling": {"minReplicas": 2, "cpuUtilization": 50}}, "gatewayAPI", "maxReplicas"),
    ],
)
def test_autoscaling_specs_the_crd_would_refuse_are_spec_errors(
    serving: dict[str, Any], router: str, message: str
) -> None:
    spec = model_spec("v1", router=router)
    spec["serving"] = serving
    error = parse_or_error(spec)
    assert isinstance(error, SpecError)
    assert message in str(error)


def test_applies_field_reads_only_the_managers_own_apply() -> None:
    assert applies_field(applied_by_operator(2), "mlmodel-operator", ("spec", "replicas"))
    assert not applies_field(scaled_by_hpa(2), "mlmodel-operator", ("spec", "replicas"))
    assert not applies_field(applied_by_operator(2), HANDOVER_MANAGER, ("spec", "replicas"))
    assert not applies_field({"metadata": {}}, "mlmodel-operator", ("spec", "replicas"))


def test_pods_the_hpa_added_and_not_ready_yet_are_growth_not_degradation() -> None:
    status = serving_v1(4)
    growing = run(A1, status, observed={R1: Observed(scaled_by_hpa(8, ready=4))}, now_s=T0)
    assert growing.status["phase"] == "Healthy"
    assert growing.status["ready"] == "4/8"
    assert "scaled up by its HPA" in growing.status["message"]
    assert [e.reason for e in growing.events] == []
    # A minReplicas just raised above what serves is growth too (the HPA scales up to it).
    raised = autoscaled("v1", minReplicas=4)
    growing = run(raised, status, observed={R1: Observed(scaled_by_hpa(4, ready=2))}, now_s=T0)
    assert growing.status["phase"] == "Healthy"
    # No pod serving is degraded, as for any stable.
    down = run(A1, status, observed={R1: Observed(scaled_by_hpa(8, ready=0))}, now_s=T0)
    assert down.status["phase"] == "Degraded"
