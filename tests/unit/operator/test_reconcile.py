"""plan(): what one reconcile of an MLModel applies, scales, deletes, records and announces.

Each scenario feeds a plan's status into the next plan, with the Deployments a cluster
would report in between, so the tests follow a model the way its status would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from mlmodel_operator import reconcile, rollout
from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.loop import Reading
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.reconcile import Event, Inputs, Observed, Plan, plan
from mlmodel_operator.revision import revision_of
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import parse_or_error, parse_spec
from mlmodel_operator.webhooks import Answer

pytestmark = pytest.mark.unit

REF = ModelRef(name="iris", namespace="models", uid="0b5c6a3e-uid")
SETTINGS = Settings(resync_seconds=300.0)
T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
STEPS = [
    {"weight": 25, "pause": {"duration": "1m"}},
    {"weight": 50, "pause": {}},
    {"weight": 100},
]


def model_spec(
    version: str = "v1", *, replicas: int = 4, router: str = "replicas", **rollout_extra: Any
) -> dict[str, Any]:
    traffic: dict[str, Any] = {"router": router}
    if router == "gatewayAPI":
        traffic["gatewayAPI"] = {"parentRefs": [{"name": "web"}], "hostnames": ["iris.example"]}
    return {
        "model": {"uri": f"s3://models/iris/{version}/model.skops", "version": version},
        "serving": {"replicas": replicas},
        "traffic": traffic,
        "rollout": {"steps": STEPS, "scaleDownDelaySeconds": 120, **rollout_extra},
    }


def revision(spec: Mapping[str, Any]) -> str:
    return revision_of(parse_spec(spec), SETTINGS.runtime_image)


V1, V2, V3 = model_spec("v1"), model_spec("v2"), model_spec("v3")
R1, R2, R3 = revision(V1), revision(V2), revision(V3)


def rfc3339(now_s: float) -> str:
    minutes, seconds = divmod(int(now_s - T0), 60)
    return f"2024-05-01T10:{minutes:02d}:{seconds:02d}Z"


def deployment(replicas: int, *, ready: int | None = None, generation: int = 1) -> dict[str, Any]:
    """A Deployment as the API reports it, its controller caught up with `generation`."""
    ready = replicas if ready is None else ready
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def conversion_failed_pod() -> dict[str, Any]:
    report = {"status": "failed", "message": "the ONNX model predicts differently"}
    return {
        "metadata": {"name": f"iris-{R2}-abc12"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "convert",
                    "state": {
                        "terminated": {
                            "exitCode": 7,
                            "reason": "Error",
                            "message": json.dumps(report),
                        }
                    },
                    "restartCount": 0,
                }
            ]
        },
    }


def run(
    spec: Mapping[str, Any],
    status: Mapping[str, Any] | None = None,
    *,
    observed: Mapping[str, Observed] | None = None,
    now_s: float = T0,
    annotations: Mapping[str, str] | None = None,
    router_available: bool = True,
    disruption_budgets: frozenset[str] = frozenset(),
    metrics: Reading | None = None,
    generation: int = 1,
    taken: Mapping[tuple[str, str], str] | None = None,
    settings: Settings = SETTINGS,
    route: Mapping[str, Any] | None = None,
    gateway_controllers: tuple[str, ...] = (),
    webhook_answers: Mapping[str, Answer] | None = None,
    routes: frozenset[tuple[str, str]] = frozenset(),
    autoscalers: frozenset[str] = frozenset(),
    routed_pods: frozenset[str] | None = None,
    services: frozenset[str] = frozenset(),
    ready_backends: frozenset[str] | None = None,
) -> Plan:
    return plan(
        Inputs(
            ref=REF,
            generation=generation,
            spec=parse_or_error(spec),
            status=status or {},
            observed=observed or {},
            settings=settings,
            now=rfc3339(now_s),
            now_s=now_s,
            annotations=annotations or {},
            router_available=router_available,
            disruption_budgets=disruption_budgets,
            metrics=metrics,
            taken=taken or {},
            route=route,
            gateway_controllers=gateway_controllers,
            webhook_answers=webhook_answers or {},
            routes=routes,
            autoscalers=autoscalers,
            routed_pods=routed_pods,
            services=services,
            ready_backends=ready_backends,
        )
    )


def applied(result: Plan) -> list[tuple[str, str]]:
    return [(obj["kind"], obj["metadata"]["name"]) for obj in result.apply]


def deployments(result: Plan) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in result.apply if o["kind"] == "Deployment"}


def service_selectors(result: Plan) -> dict[str, dict[str, str]]:
    return {
        o["metadata"]["name"]: o["spec"]["selector"] for o in result.apply if o["kind"] == "Service"
    }


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    [found] = [c for c in status["conditions"] if c["type"] == kind]
    return dict(found)


def healthy_v1(replicas: int = 4) -> dict[str, Any]:
    """The status of a model whose first revision is serving."""
    first = run(model_spec("v1", replicas=replicas), now_s=T0 - 60)
    ready = {R1: Observed(deployment(replicas))}
    return run(
        model_spec("v1", replicas=replicas), first.status, observed=ready, now_s=T0 - 50
    ).status


def canary_at_first_step(spec: Mapping[str, Any] = V2) -> tuple[Plan, dict[str, Observed]]:
    """V2 canaried over a healthy V1 until its canary is ready and the first step began at T0."""
    waiting = run(spec, healthy_v1(), observed={R1: Observed(deployment(4))}, now_s=T0 - 5)
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1))}
    return run(spec, waiting.status, observed=observed, now_s=T0), observed


class Reconciles:
    """One MLModel reconciled again and again: each `at()` runs plan() at that time with
    the last plan's status, the Deployments in `observed`, and this reconcile's metrics."""

    def __init__(self, spec: Mapping[str, Any], start: Plan, observed: dict[str, Observed]):
        self.spec, self.status, self.observed = spec, start.status, observed

    def at(self, now_s: float, metrics: Reading | None = None) -> Plan:
        result = run(self.spec, self.status, observed=self.observed, now_s=now_s, metrics=metrics)
        self.status = result.status
        return result


def analysed_canary(spec: Mapping[str, Any]) -> Reconciles:
    """`spec` (with an analysis) canaried over a healthy V1, its first step begun at T0."""
    return Reconciles(spec, *canary_at_first_step(spec))


# --- the first revision -----------------------------------------------------------------------


def test_the_first_revision_goes_straight_to_stable() -> None:
    result = run(V1)
    assert applied(result) == [
        ("Deployment", f"iris-{R1}"),
        ("Service", "iris"),
        ("Service", "iris-stable"),
        ("Service", "iris-canary"),
        ("PodDisruptionBudget", f"iris-{R1}"),
    ]
    stable = deployments(result)[f"iris-{R1}"]
    assert stable["metadata"]["labels"]["mlops.dev/variant"] == "stable"
    assert stable["spec"]["replicas"] == 4
    assert service_selectors(result) == {
        "iris": {"mlops.dev/model": "iris"},
        "iris-stable": {"mlops.dev/model": "iris", "mlops.dev/revision": R1},
        "iris-canary": {"mlops.dev/model": "iris", "mlops.dev/revision": R1},
    }
    assert "canary" not in result.status
    assert (result.scale, result.delete) == ([], [])


def test_the_first_revision_is_deploying_then_healthy_once_ready() -> None:
    deploying = run(V1)
    assert deploying.status["phase"] == "Deploying"
    assert deploying.status["revision"] == R1
    assert [(e.type, e.reason) for e in deploying.events] == [("Normal", "Deploying")]
    assert condition(deploying.status, "Ready")["status"] == "False"
    assert condition(deploying.status, "Progressing")["status"] == "True"

    halfway = run(V1, deploying.status, observed={R1: Observed(deployment(4, ready=2))})
    assert halfway.status["phase"] == "Deploying"
    assert halfway.status["ready"] == "2/4"
    assert halfway.events == []  # no new event while the phase holds

    healthy = run(V1, halfway.status, observed={R1: Observed(deployment(4))}, now_s=T0 + 20)
    assert healthy.status["phase"] == "Healthy"
    assert healthy.status["stable"] == {
        "revision": R1,
        "version": "v1",
        "replicas": 4,
        "readyReplicas": 4,
    }
    assert healthy.status["ready"] == "4/4"
    assert healthy.status["message"] == f"revision {R1} (v1) serving, 4/4 ready"
    assert [(e.type, e.reason) for e in healthy.events] == [("Normal", "Healthy")]
    assert condition(healthy.status, "Ready")["status"] == "True"
    assert condition(healthy.status, "Progressing")["status"] == "False"
    assert condition(healthy.status, "Degraded")["status"] == "False"


def test_a_revision_that_stays_stable_is_not_deleted_or_scaled() -> None:
    result = run(V1, healthy_v1(), observed={R1: Observed(deployment(4))})
    assert (result.scale, result.delete, result.events) == ([], [], [])


def test_changing_only_the_replicas_scales_the_stable_without_a_canary() -> None:
    status = healthy_v1()
    result = run(model_spec("v1", replicas=6), status, observed={R1: Observed(deployment(4))})
    assert revision(model_spec("v1", replicas=6)) == R1
    assert deployments(result)[f"iris-{R1}"]["spec"]["replicas"] == 6
    assert "canary" not in result.status
    assert result.status["phase"] != "Progressing"


# --- PodDisruptionBudgets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "existing", "applies_pdb", "deletes"),
    [
        (1, frozenset(), False, []),
        (2, frozenset(), True, []),
        (4, frozenset({f"iris-{R1}"}), True, []),
        (1, frozenset({f"iris-{R1}"}), False, [("PodDisruptionBudget", f"iris-{R1}")]),
        (2, frozenset({"iris-0ld0ld0ld"}), True, [("PodDisruptionBudget", "iris-0ld0ld0ld")]),
    ],
)
def test_a_disruption_budget_guards_the_stable_only_when_it_has_several_replicas(
    replicas: int, existing: frozenset[str], applies_pdb: bool, deletes: list[tuple[str, str]]
) -> None:
    spec = model_spec("v1", replicas=replicas)
    result = run(spec, observed={R1: Observed(deployment(replicas))}, disruption_budgets=existing)
    assert (("PodDisruptionBudget", f"iris-{R1}") in applied(result)) is applies_pdb
    assert result.delete == deletes


def test_a_grpc_route_is_written_with_grpc_and_deleted_when_it_is_turned_off() -> None:
    spec = model_spec("v1", router="gatewayAPI")
    spec["serving"]["grpc"] = True
    spec["traffic"]["gatewayAPI"]["grpc"] = True
    on = run(spec, observed={R1: Observed(deployment(4))})
    assert ("GRPCRoute", "iris") in applied(on)
    assert ("HTTPRoute", "iris") in applied(on)
    off = model_spec("v1", router="gatewayAPI")
    owned = frozenset({("HTTPRoute", "iris"), ("GRPCRoute", "iris")})
    result = run(off, observed={R1: Observed(deployment(4))}, routes=owned)
    assert ("GRPCRoute", "iris") not in applied(result)
    assert result.delete == [("GRPCRoute", "iris")]


# --- a canary ---------------------------------------------------------------------------------


def test_a_new_revision_starts_a_canary_and_leaves_the_stable_untouched() -> None:
    result = run(V2, healthy_v1(), observed={R1: Observed(deployment(4))})
    assert f"iris-{R1}" not in deployments(result)  # never re-applied from the new spec
    assert result.scale == []  # the stable keeps its 4 replicas until the canary is ready
    assert result.delete == []
    canary = deployments(result)[f"iris-{R2}"]
    assert canary["metadata"]["labels"]["mlops.dev/variant"] == "canary"
    assert canary["spec"]["replicas"] == 1  # 25% of 4: the first step's share
    assert service_selectors(result)["iris-canary"]["mlops.dev/revision"] == R2
    assert service_selectors(result)["iris-stable"]["mlops.dev/revision"] == R1
    assert result.status["phase"] == "Progressing"
    assert result.status["stable"]["revision"] == R1
    assert result.status["stable"]["version"] == "v1"
    assert result.status["revision"] == R2
    canary_status = result.status["canary"]
    assert {k: canary_status[k] for k in ("revision", "version", "step", "weight", "attempt")} == {
        "revision": R2,
        "version": "v2",
        "step": rollout.WAITING_FOR_READY,
        "weight": 0,
        "attempt": 1,
    }
    assert canary_status["steps"] == 3
    assert result.requeue_after <= 5


def test_a_ready_canary_enters_the_first_step_and_the_replicas_follow_the_weight() -> None:
    result, _ = canary_at_first_step()
    assert result.status["phase"] == "Progressing"
    assert result.status["canary"]["step"] == 0
    assert result.status["canary"]["weight"] == 25
    assert result.status["message"] == "step 1/3: canary at 25%"
    # 25% of 4 replicas: stable 3, canary 1.
    assert result.scale == [(f"iris-{R1}", 3)]
    assert deployments(result)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert result.status["canary"]["effectiveWeight"] == 20  # 1 of 5 ready pods, until it scales
    assert ("Normal", "StepStarted") in [(e.type, e.reason) for e in result.events]


def test_the_stable_is_not_scaled_again_once_it_has_the_replicas_of_the_step() -> None:
    first_step, observed = canary_at_first_step()
    scaled = {**observed, R1: Observed(deployment(3))}
    result = run(V2, first_step.status, observed=scaled, now_s=T0 + 10)
    assert result.scale == []
    assert result.status["canary"]["effectiveWeight"] == 25


def test_a_gateway_api_canary_moves_weight_in_the_route_and_keeps_the_stable_whole() -> None:
    spec = model_spec("v2", router="gatewayAPI")
    assert revision(spec) == R2  # the router does not change the serving pods
    result, _ = canary_at_first_step(spec)
    assert result.scale == []
    assert deployments(result)[f"iris-{R2}"]["spec"]["replicas"] == 1
    [route] = [o for o in result.apply if o["kind"] == "HTTPRoute"]
    split = route["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in split] == [("iris-stable", 75), ("iris-canary", 25)]
    assert route["spec"]["parentRefs"] == [{"name": "web"}]
    # The weight the cluster carries is read back from the route as the API returns it,
    # never assumed: none yet at the step's first reconcile, 25% once applied.
    assert result.status["canary"]["effectiveWeight"] == 0
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1))}
    later = run(spec, result.status, observed=observed, now_s=T0 + 1, route=route)
    assert later.status["canary"]["effectiveWeight"] == 25


def test_the_step_waits_its_pause_then_moves_on() -> None:
    first_step, observed = canary_at_first_step()
    observed = {**observed, R1: Observed(deployment(3))}
    early = run(V2, first_step.status, observed=observed, now_s=T0 + 59)
    assert early.status["canary"]["step"] == 0
    later = run(V2, early.status, observed=observed, now_s=T0 + 60)
    assert (later.status["canary"]["step"], later.status["canary"]["weight"]) == (1, 50)
    # The canary grows to 2 pods; the stable keeps its 3 until the second one is ready.
    assert later.scale == []
    assert deployments(later)[f"iris-{R2}"]["spec"]["replicas"] == 2
    both_ready = {R1: Observed(deployment(3)), R2: Observed(deployment(2))}
    ready = run(V2, later.status, observed=both_ready, now_s=T0 + 61)
    assert ready.scale == [(f"iris-{R1}", 2)]
    # The second step has `pause: {}`: it holds for a person.
    observed = {R1: Observed(deployment(2)), R2: Observed(deployment(2))}
    held = run(V2, later.status, observed=observed, now_s=T0 + 3600)
    assert held.status["phase"] == "Paused"
    assert held.status["canary"]["step"] == 1
    assert "waiting for promote" in held.status["message"]
    assert condition(held.status, "Progressing")["status"] == "True"


def test_a_broken_canary_is_rolled_back_and_the_stable_restored() -> None:
    first_step, _ = canary_at_first_step()
    observed = {
        R1: Observed(deployment(3)),
        R2: Observed(deployment(1, ready=0), pods=[conversion_failed_pod()]),
    }
    result = run(V2, first_step.status, observed=observed, now_s=T0 + 10)
    assert result.status["phase"] == "RolledBack"
    assert "the ONNX model predicts differently" in result.status["message"]
    assert result.status["message"].endswith(f"revision {R1} (v1) keeps serving")
    assert result.status["canary"]["aborted"] is True
    assert result.status["canary"]["weight"] == 0
    assert result.scale == [(f"iris-{R1}", 4)]
    # The canary's pod goes only once the stable has the replicas to take its traffic.
    assert deployments(result)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert service_selectors(result)["iris-canary"]["mlops.dev/revision"] == R1
    assert ("Warning", "CanaryFailed") in [(e.type, e.reason) for e in result.events]
    assert condition(result.status, "Degraded")["status"] == "True"
    assert condition(result.status, "Ready")["status"] == "True"


ANALYSED = model_spec(
    "v2",
    analysis={
        "interval": "10s",
        "minSamples": 20,
        "failureLimit": 0,
        "metrics": [{"name": "error-rate", "max": 0.05}],
    },
)


def reading(stable: Mapping[str, float], canary: Mapping[str, float]) -> Reading:
    """Cumulative request counters by status code, as the scrape provider reads them."""
    return Reading(stable=Snapshot(requests=stable), canary=Snapshot(requests=canary))


def test_a_failed_analysis_interval_rolls_back_with_its_reason() -> None:
    model = analysed_canary(ANALYSED)
    started = model.at(T0 + 1, reading({"200": 1000}, {"200": 10}))
    assert started.status["phase"] == "Progressing"
    assert started.status["analysis"]["interval"] == 0
    result = model.at(T0 + 12, reading({"200": 1100}, {"200": 50, "500": 60}))
    assert result.status["phase"] == "RolledBack"
    assert "error-rate" in result.status["message"]
    assert result.status["analysis"]["verdict"] == "Fail"
    assert ("Warning", "AnalysisFailed") in [(e.type, e.reason) for e in result.events]


def test_a_running_analysis_brings_the_next_reconcile_to_its_interval() -> None:
    quick = model_spec(
        "v2",
        analysis={
            "interval": "2s",
            "minSamples": 20,
            "metrics": [{"name": "error-rate", "max": 0.05}],
        },
    )
    model = analysed_canary(quick)
    started = model.at(T0 + 1, reading({"200": 100}, {"200": 0}))
    # The step's 1m pause has 59 s left and the resync would be 5 s: the 2 s interval wins.
    assert started.requeue_after <= 2.0
    passed = model.at(T0 + 3, reading({"200": 400}, {"200": 100}))
    assert passed.status["analysis"]["verdict"] == "Pass"
    assert passed.requeue_after <= 2.0


def test_missing_metrics_never_promote_and_hold_the_step() -> None:
    model = analysed_canary(ANALYSED)
    model.at(T0 + 1)
    # The step's 1m pause is over, but no interval could be judged: no promotion.
    held = model.at(T0 + 61)
    assert held.status["phase"] == "Paused"
    assert held.status["canary"]["step"] == 0
    assert "inconclusive" in held.status["message"]
    assert held.status["analysis"]["verdict"] == "Inconclusive"


def test_too_few_requests_are_inconclusive_not_a_pass() -> None:
    model = analysed_canary(ANALYSED)
    model.at(T0 + 1, reading({"200": 100}, {"200": 0}))
    held = model.at(T0 + 61, reading({"200": 105}, {"200": 3}))
    assert held.status["canary"]["step"] == 0
    assert held.status["analysis"]["verdict"] == "Inconclusive"
    assert "fewer than minSamples 20" in held.status["message"]


def test_a_passing_analysis_lets_the_step_end_on_time() -> None:
    model = analysed_canary(ANALYSED)
    model.at(T0 + 1, reading({"200": 100}, {"200": 0}))
    passed = model.at(T0 + 12, reading({"200": 400}, {"200": 100}))
    assert passed.status["analysis"]["verdict"] == "Pass"
    assert passed.status["canary"]["step"] == 0  # the 1m pause is not over yet
    later = model.at(T0 + 61, reading({"200": 800}, {"200": 250}))
    assert later.status["canary"]["step"] == 1


def test_a_new_revision_mid_rollout_restarts_against_the_stable() -> None:
    first_step, observed = canary_at_first_step()
    observed = {**observed, R1: Observed(deployment(3))}  # scaled for the first step
    result = run(V3, first_step.status, observed=observed, now_s=T0 + 10)
    assert result.status["canary"]["revision"] == R3
    assert result.status["canary"]["step"] == rollout.WAITING_FOR_READY
    assert result.status["stable"]["revision"] == R1
    assert ("Normal", "Restarted") in [(e.type, e.reason) for e in result.events]
    # Until the new canary is ready, the stable gets back all its replicas; the replaced
    # canary keeps serving its share until the stable has them.
    assert result.scale == [(f"iris-{R1}", 4)]
    assert ("Deployment", f"iris-{R2}") not in result.delete
    observed = {**observed, R1: Observed(deployment(4)), R3: Observed(deployment(1, ready=0))}
    later = run(V3, result.status, observed=observed, now_s=T0 + 20)
    assert ("Deployment", f"iris-{R2}") in later.delete
    assert ("Deployment", f"iris-{R1}") not in later.delete


def test_going_back_to_the_stable_spec_mid_rollout_drops_the_canary() -> None:
    first_step, observed = canary_at_first_step()
    result = run(V1, first_step.status, observed=observed, now_s=T0 + 10)
    assert "canary" not in result.status
    assert deployments(result)[f"iris-{R1}"]["spec"]["replicas"] == 4
    assert result.delete == [("Deployment", f"iris-{R2}")]


def test_a_rolled_back_canary_keeps_its_pods_until_the_stable_can_take_its_traffic() -> None:
    """With the replicas router a canary at a high step holds most serving pods: they go
    only once the stable's pods are back and ready, never before."""
    first_step, _ = canary_at_first_step()
    abort = {rollout.ABORT: f"{R2}/1"}
    # The canary holds 3 of the 4 pods; the stable is down to 1.
    observed = {R1: Observed(deployment(1)), R2: Observed(deployment(3))}
    rolled_back = run(V2, first_step.status, observed=observed, now_s=T0 + 10, annotations=abort)
    assert rolled_back.scale == [(f"iris-{R1}", 4)]
    assert deployments(rolled_back)[f"iris-{R2}"]["spec"]["replicas"] == 3

    scaling = {R1: Observed(deployment(4, ready=2, generation=2)), R2: Observed(deployment(3))}
    halfway = run(V2, rolled_back.status, observed=scaling, now_s=T0 + 15, annotations=abort)
    assert deployments(halfway)[f"iris-{R2}"]["spec"]["replicas"] == 3

    back = {R1: Observed(deployment(4, generation=2)), R2: Observed(deployment(3))}
    covered = run(V2, halfway.status, observed=back, now_s=T0 + 20, annotations=abort)
    assert deployments(covered)[f"iris-{R2}"]["spec"]["replicas"] == 0


def test_behind_a_route_a_rolled_back_canary_drains_for_the_scale_down_delay() -> None:
    """With the gatewayAPI router the route goes to weight 0 and the canary Service back to
    the stable at once, but the canary's pods stay for scaleDownDelaySeconds: the gateway
    follows the route a moment later, and a pod gone before then would turn what the
    stale route still sends into 503s. Then they go, and nothing wakes it before."""
    spec = model_spec("v2", router="gatewayAPI", scaleDownDelaySeconds=20)
    delay = 20
    first_step, _ = canary_at_first_step(spec)
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1))}
    abort = {rollout.ABORT: f"{R2}/1"}
    rolled_back = run(spec, first_step.status, observed=observed, now_s=T0 + 10, annotations=abort)
    assert rolled_back.status["phase"] == "RolledBack"
    assert rolled_back.status["canary"]["abortedAt"] == T0 + 10
    [route] = [o for o in rolled_back.apply if o["kind"] == "HTTPRoute"]
    split = route["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in split] == [("iris-stable", 100), ("iris-canary", 0)]
    assert service_selectors(rolled_back)["iris-canary"]["mlops.dev/revision"] == R1
    assert deployments(rolled_back)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert rolled_back.requeue_after == pytest.approx(delay)

    draining = run(spec, rolled_back.status, observed=observed, now_s=T0 + 25, annotations=abort)
    assert deployments(draining)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert draining.requeue_after == pytest.approx(5)
    drained = run(spec, draining.status, observed=observed, now_s=T0 + 30, annotations=abort)
    assert deployments(drained)[f"iris-{R2}"]["spec"]["replicas"] == 0


def test_behind_a_route_a_replaced_canary_drains_for_the_scale_down_delay() -> None:
    spec2 = model_spec("v2", router="gatewayAPI", scaleDownDelaySeconds=20)
    spec3 = model_spec("v3", router="gatewayAPI", scaleDownDelaySeconds=20)
    r2, r3 = revision(spec2), revision(spec3)
    first_step, _ = canary_at_first_step(spec2)
    observed = {R1: Observed(deployment(4)), r2: Observed(deployment(1))}
    replaced = run(spec3, first_step.status, observed=observed, now_s=T0 + 10)
    assert replaced.status["canary"]["revision"] == r3
    assert ("Deployment", f"iris-{r2}") not in replaced.delete
    observed = {**observed, r3: Observed(deployment(1, ready=0))}
    later = run(spec3, replaced.status, observed=observed, now_s=T0 + 29)
    assert ("Deployment", f"iris-{r2}") not in later.delete
    drained = run(spec3, later.status, observed=observed, now_s=T0 + 30)
    assert ("Deployment", f"iris-{r2}") in drained.delete


def test_abort_rolls_back_and_retry_starts_the_next_attempt() -> None:
    first_step, _ = canary_at_first_step()
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(1))}
    abort = {rollout.ABORT: f"{R2}/1"}
    rolled_back = run(V2, first_step.status, observed=observed, now_s=T0 + 10, annotations=abort)
    assert rolled_back.status["phase"] == "RolledBack"
    assert "aborted by a person" in rolled_back.status["message"]
    assert rolled_back.scale == [(f"iris-{R1}", 4)]
    assert deployments(rolled_back)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert ("Warning", "Aborted") in [(e.type, e.reason) for e in rolled_back.events]

    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(0))}
    settled = run(V2, rolled_back.status, observed=observed, now_s=T0 + 60, annotations=abort)
    assert settled.status["phase"] == "RolledBack"
    assert settled.events == []

    retry = {**abort, rollout.RETRY: f"{R2}/1"}
    retried = run(V2, settled.status, observed=observed, now_s=T0 + 90, annotations=retry)
    assert retried.status["phase"] == "Progressing"
    canary = retried.status["canary"]
    assert (canary["attempt"], canary["step"], canary["aborted"]) == (2, -1, False)
    assert deployments(retried)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert service_selectors(retried)["iris-canary"]["mlops.dev/revision"] == R2


def test_a_persons_pause_holds_the_step_past_its_duration() -> None:
    first_step, _ = canary_at_first_step()
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(1))}
    pause = {rollout.PAUSE: f"{R2}/1"}
    held = run(V2, first_step.status, observed=observed, now_s=T0 + 600, annotations=pause)
    assert held.status["phase"] == "Paused"
    assert held.status["canary"]["step"] == 0
    assert "paused by a person" in held.status["message"]
    resumed = run(V2, held.status, observed=observed, now_s=T0 + 601)
    assert resumed.status["canary"]["step"] == 1


def test_a_fix_for_a_first_revision_that_never_served_is_not_held_by_it() -> None:
    broken = {R1: Observed(deployment(4, ready=0), pods=[conversion_failed_pod()])}
    failed = run(V1, observed=broken)
    assert failed.status["phase"] == "Failed"
    observed = {**broken, R2: Observed(deployment(1))}
    status = failed.status
    for elapsed in (0.0, 30.0, 61.0, 92.0):
        status = run(V2, status, observed=observed, now_s=T0 + elapsed).status
    assert status["phase"] != "Degraded"
    assert status["stable"]["revision"] == R2 or status["canary"]["step"] >= 1


def test_a_model_scaled_to_zero_keeps_its_stable_at_zero_during_a_canary() -> None:
    first = run(model_spec("v1", replicas=0), observed={R1: Observed(deployment(0))})
    observed = {R1: Observed(deployment(0)), R2: Observed(deployment(1))}
    waiting = run(model_spec("v2", replicas=0), first.status, observed=observed, now_s=T0)
    step = run(model_spec("v2", replicas=0), waiting.status, observed=observed, now_s=T0 + 5)
    assert step.status["canary"]["step"] == 0
    assert step.scale == []


# --- promotion and the previous stable ------------------------------------------------------


def promoted() -> tuple[Plan, dict[str, Observed]]:
    first_step, observed = canary_at_first_step()
    result = run(
        V2,
        first_step.status,
        observed=observed,
        now_s=T0 + 10,
        annotations={rollout.PROMOTE: f"{R2}/1/full"},
        disruption_budgets=frozenset({f"iris-{R1}"}),
    )
    return result, observed


def test_promotion_makes_the_canary_stable_and_keeps_the_old_one_for_the_delay() -> None:
    result, _ = promoted()
    assert result.status["stable"]["revision"] == R2
    assert result.status["stable"]["version"] == "v2"
    assert "canary" not in result.status
    assert result.status["previous"] == {
        "revision": R1,
        "deleteAfter": T0 + 10 + 120,
        "replacedAt": T0 + 10,
    }
    assert result.status["message"].startswith(f"revision {R2} (v2) promoted to stable")
    new_stable = deployments(result)[f"iris-{R2}"]
    assert new_stable["metadata"]["labels"]["mlops.dev/variant"] == "stable"
    assert new_stable["spec"]["replicas"] == 4
    assert f"iris-{R1}" not in deployments(result)
    assert ("Deployment", f"iris-{R1}") not in result.delete
    assert service_selectors(result)["iris-stable"]["mlops.dev/revision"] == R2
    assert ("PodDisruptionBudget", f"iris-{R2}") in applied(result)
    assert ("PodDisruptionBudget", f"iris-{R1}") in result.delete
    assert ("Normal", "Promoted") in [(e.type, e.reason) for e in result.events]


@pytest.mark.parametrize(
    ("after", "deleted"),
    [(0.0, False), (60.0, False), (119.0, False), (120.0, True), (3600.0, True)],
)
def test_the_previous_stable_is_deleted_only_after_the_scale_down_delay(
    after: float, deleted: bool
) -> None:
    result, _ = promoted()
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(4))}
    promoted_at = T0 + 10
    later = run(V2, result.status, observed=observed, now_s=promoted_at + after)
    assert (("Deployment", f"iris-{R1}") in later.delete) is deleted
    assert ("previous" in later.status) is not deleted
    assert ("Deployment", f"iris-{R2}") not in later.delete
    if not deleted:
        assert later.requeue_after <= 120 - after


def promoted_again_at_40(
    spec: Mapping[str, Any], revision: str, observed: dict[str, Observed]
) -> Plan:
    """After `promoted()` (v2 over v1 at +10): `spec` applied at +30, its canary stepping
    at +35 and promoted by a person at +40, well inside v1's delay (to +130)."""
    result, _ = promoted()
    waiting = run(spec, result.status, observed=observed, now_s=T0 + 30)
    stepping = run(spec, waiting.status, observed=observed, now_s=T0 + 35)
    assert stepping.status["canary"]["revision"] == revision
    return run(
        spec,
        stepping.status,
        observed=observed,
        now_s=T0 + 40,
        annotations={rollout.PROMOTE: f"{revision}/1/full"},
    )


def test_a_promotion_within_the_last_ones_delay_keeps_each_old_stable_for_its_own() -> None:
    """v2 promoted over v1 at +10, then v3 over v2 at +40: v1 keeps its delay (to +130)
    and v2 gets its own (to +160). Replacing `previous` alone deleted v1 at once, in the
    middle of the drain its delay was there for."""
    observed = {
        R1: Observed(deployment(3)),
        R2: Observed(deployment(4)),
        R3: Observed(deployment(1)),
    }
    again = promoted_again_at_40(V3, R3, observed)
    assert again.status["stable"]["revision"] == R3
    assert again.status["previous"]["revision"] == R2
    assert again.status["retiring"] == [
        {"revision": R1, "deleteAfter": T0 + 10 + 120, "replacedAt": T0 + 10}
    ]
    assert not {("Deployment", f"iris-{R1}"), ("Deployment", f"iris-{R2}")} & set(again.delete)
    assert again.requeue_after <= T0 + 130 - (T0 + 40)
    settled = {**observed, R3: Observed(deployment(4))}
    before_v1_due = run(V3, again.status, observed=settled, now_s=T0 + 129)
    assert ("Deployment", f"iris-{R1}") not in before_v1_due.delete
    v1_due = run(V3, before_v1_due.status, observed=settled, now_s=T0 + 130)
    assert ("Deployment", f"iris-{R1}") in v1_due.delete
    assert ("Deployment", f"iris-{R2}") not in v1_due.delete
    assert "retiring" not in v1_due.status
    assert v1_due.status["previous"]["revision"] == R2
    v2_due = run(V3, v1_due.status, observed={R2: settled[R2], R3: settled[R3]}, now_s=T0 + 160)
    assert ("Deployment", f"iris-{R2}") in v2_due.delete
    assert "previous" not in v2_due.status


def test_an_old_stable_still_routed_outlives_the_newer_one_and_is_then_previous() -> None:
    """v1 retiring (to +130), v2 previous (to +160): at +160 the EndpointSlices still list
    v1's pod (held, as the previous stable would be) but not v2's: v2 goes at its own
    time, v1 stays and is shown as status.previous, looked at again every recheck."""
    observed = {
        R1: Observed(deployment(3), pods=[pod("v1-0")]),
        R2: Observed(deployment(4), pods=[pod("v2-0")]),
        R3: Observed(deployment(1), pods=[pod("v3-0")]),
    }
    again = promoted_again_at_40(V3, R3, observed)
    later = run(
        V3,
        again.status,
        observed={**observed, R3: Observed(deployment(4), pods=[pod("v3-0")])},
        now_s=T0 + 160,
        routed_pods=frozenset({"v1-0", "v3-0"}),
    )
    assert ("Deployment", f"iris-{R2}") in later.delete
    assert ("Deployment", f"iris-{R1}") not in later.delete
    assert later.status["previous"]["revision"] == R1
    assert later.status["previous"]["deleteAfter"] == T0 + 160 + 120
    assert "retiring" not in later.status
    assert later.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)


def test_a_revert_to_a_retiring_stable_takes_it_out_of_the_retiring_ones() -> None:
    """v2 over v1, then v1 again over v2 within v1's delay: v1 is the stable, so it is
    neither previous nor retiring; v2 is previous."""
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(4))}
    back = promoted_again_at_40(V1, R1, observed)
    assert back.status["stable"]["revision"] == R1
    assert back.status["previous"]["revision"] == R2
    assert "retiring" not in back.status
    assert not {("Deployment", f"iris-{R1}"), ("Deployment", f"iris-{R2}")} & set(back.delete)


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}}


@pytest.mark.parametrize(
    ("after", "routed", "deleted"),
    [
        (120.0, None, True),  # EndpointSlices not read: the delay alone decides
        (120.0, frozenset({"new-0", "old-0"}), False),  # still listed: it still serves
        (120.0, frozenset({"new-0"}), True),  # let go of: it goes
        (120.0 + 299.0, frozenset({"old-0"}), False),
        (120.0 + 300.0, frozenset({"old-0"}), True),  # the wait is bounded
    ],
)
def test_the_previous_stable_stays_while_the_services_endpoints_still_list_its_pods(
    after: float, routed: frozenset[str] | None, deleted: bool
) -> None:
    """After restarts of kube-apiserver, kube-controller-manager's endpoints can lag the
    API by a minute: a pod deleted after the delay alone was still sent traffic."""
    result, _ = promoted()
    observed = {
        R1: Observed(deployment(3), pods=[pod("old-0")]),
        R2: Observed(deployment(4), pods=[pod("new-0")]),
    }
    later = run(V2, result.status, observed=observed, now_s=T0 + 10 + after, routed_pods=routed)
    assert (("Deployment", f"iris-{R1}") in later.delete) is deleted
    assert ("previous" in later.status) is not deleted
    if not deleted:
        assert later.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)


def test_the_delay_counts_from_when_the_gateway_took_the_new_route() -> None:
    """A gateway whose watches back off after API server restarts can take a route a
    minute late, and sends the stable's share to the old pods until it does."""
    result, _ = promoted()
    observed = {
        R1: Observed(deployment(3), pods=[pod("old-0")]),
        R2: Observed(deployment(4), pods=[pod("new-0")]),
    }
    behind = {
        "metadata": {"name": "iris", "generation": 5},
        "status": {
            "parents": [
                {"conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 4}]}
            ]
        },
    }
    taken = {
        **behind,
        "status": {
            "parents": [
                {"conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 5}]}
            ]
        },
    }
    promoted_at, delay = T0 + 10, 120
    held = run(V2, result.status, observed=observed, now_s=promoted_at + 200, route=behind)
    assert ("Deployment", f"iris-{R1}") not in held.delete
    assert held.status["previous"]["deleteAfter"] == promoted_at + 200 + delay
    assert held.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)
    # Taken at +202: the old stable keeps the whole delay from then.
    kept = run(V2, held.status, observed=observed, now_s=promoted_at + 202, route=taken)
    assert ("Deployment", f"iris-{R1}") not in kept.delete
    assert kept.status["previous"]["deleteAfter"] == promoted_at + 200 + delay
    gone = run(V2, kept.status, observed=observed, now_s=promoted_at + 320, route=taken)
    assert ("Deployment", f"iris-{R1}") in gone.delete
    assert "previous" not in gone.status
    # A gateway that never takes it holds the old stable for a bounded time only.
    bound = promoted_at + delay + reconcile.ROUTED_HOLD_MAX_S
    late = run(V2, held.status, observed=observed, now_s=bound, route=behind)
    assert ("Deployment", f"iris-{R1}") in late.delete
    assert "previous" not in late.status


def test_a_status_from_before_replaced_at_is_held_for_a_bounded_time_too() -> None:
    """A status written by an operator without `replacedAt` gets one fixed from its
    `deleteAfter` at the first hold, so moving `deleteAfter` does not move the bound."""
    result, _ = promoted()
    legacy = {**result.status, "previous": {"revision": R1, "deleteAfter": T0 + 10 + 120}}
    observed = {
        R1: Observed(deployment(3), pods=[pod("old-0")]),
        R2: Observed(deployment(4), pods=[pod("new-0")]),
    }
    listed = frozenset({"old-0"})
    held = run(V2, legacy, observed=observed, now_s=T0 + 10 + 200, routed_pods=listed)
    assert held.status["previous"]["replacedAt"] == T0 + 10
    assert held.status["previous"]["deleteAfter"] == T0 + 10 + 200 + 120
    bound = T0 + 10 + 120 + reconcile.ROUTED_HOLD_MAX_S
    late = run(V2, held.status, observed=observed, now_s=bound, routed_pods=listed)
    assert "previous" not in late.status


def test_a_rolled_back_canary_drains_while_the_endpoints_still_list_it() -> None:
    spec = model_spec("v2", router="gatewayAPI", scaleDownDelaySeconds=20)
    first_step, _ = canary_at_first_step(spec)
    observed = {
        R1: Observed(deployment(4), pods=[pod("stable-0")]),
        R2: Observed(deployment(1), pods=[pod("canary-0")]),
    }
    abort = {rollout.ABORT: f"{R2}/1"}
    rolled_back = run(spec, first_step.status, observed=observed, now_s=T0 + 10, annotations=abort)
    listed = frozenset({"stable-0", "canary-0"})
    held = run(
        spec,
        rolled_back.status,
        observed=observed,
        now_s=T0 + 40,
        annotations=abort,
        routed_pods=listed,
    )
    assert deployments(held)[f"iris-{R2}"]["spec"]["replicas"] == 1
    assert held.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)
    gone = run(
        spec,
        held.status,
        observed=observed,
        now_s=T0 + 42,
        annotations=abort,
        routed_pods=frozenset({"stable-0"}),
    )
    assert deployments(gone)[f"iris-{R2}"]["spec"]["replicas"] == 0


# --- per-revision Services (a router that splits by revision) --------------------------------


def split_of(result: Plan) -> list[tuple[str, int]]:
    [route] = [o for o in result.apply if o["kind"] == "HTTPRoute"]
    return [(b["name"], b["weight"]) for b in route["spec"]["rules"][-1]["backendRefs"]]


def pinned_to(result: Plan) -> dict[str, str]:
    [route] = [o for o in result.apply if o["kind"] == "HTTPRoute"]
    return {
        rule["matches"][0]["headers"][0]["value"]: rule["backendRefs"][0]["name"]
        for rule in route["spec"]["rules"][:-1]
    }


def test_a_gateway_api_route_moves_to_each_revisions_own_service_once_it_has_ready_endpoints() -> (
    None
):
    """A Service whose selector moves (`-stable`, `-canary`) is seen by a gateway through
    EndpointSlices that lag after control-plane restarts; a revision's own Service never
    changes its pods. It is routed to once a gateway can use it, and never left again."""
    spec = model_spec("v2", router="gatewayAPI")
    first_step, observed = canary_at_first_step(spec)  # at 25% (EndpointSlices not read)
    status = first_step.status

    def at(ready: frozenset[str] | None, route: Mapping[str, Any] | None = None) -> Plan:
        return run(spec, status, observed=observed, now_s=T0, ready_backends=ready, route=route)

    first = at(None)
    assert service_selectors(first)[f"iris-{R1}"] == {
        "mlops.dev/model": "iris",
        "mlops.dev/revision": R1,
    }
    assert service_selectors(first)[f"iris-{R2}"]["mlops.dev/revision"] == R2
    assert split_of(first) == [("iris-stable", 75), ("iris-canary", 25)]  # not read: as before
    # Ready endpoints: staged at weight 0, for the gateway to load first.
    only_stable = at(frozenset({f"iris-{R1}"}))
    assert split_of(only_stable) == [("iris-stable", 75), ("iris-canary", 25), (f"iris-{R1}", 0)]
    staged = at(frozenset({f"iris-{R1}", f"iris-{R2}"}))
    assert split_of(staged) == [
        ("iris-stable", 75),
        ("iris-canary", 25),
        (f"iris-{R1}", 0),
        (f"iris-{R2}", 0),
    ]
    [written] = [o for o in staged.apply if o["kind"] == "HTTPRoute"]

    def reported(route: Mapping[str, Any], loaded: str) -> dict[str, Any]:
        condition = {"type": "ResolvedRefs", "status": loaded, "observedGeneration": 2}
        return {
            **route,
            "metadata": {**route["metadata"], "generation": 2},
            "status": {"parents": [{"conditions": [condition]}]},
        }

    # The gateway has not loaded them (Traefik: a Service missing from its caches).
    waiting = at(frozenset({f"iris-{R1}", f"iris-{R2}"}), route=reported(written, "False"))
    assert split_of(waiting) == split_of(staged)
    assert pinned_to(waiting) == {"canary": "iris-canary", "stable": "iris-stable"}
    both = at(frozenset({f"iris-{R1}", f"iris-{R2}"}), route=reported(written, "True"))
    assert split_of(both) == [(f"iris-{R1}", 75), (f"iris-{R2}", 25)]
    assert pinned_to(both) == {"canary": f"iris-{R2}", "stable": f"iris-{R1}"}
    [route] = [o for o in both.apply if o["kind"] == "HTTPRoute"]
    # Routed to once: kept while its endpoints are (for a moment) not ready, and the
    # weight the route carries is read back by the revision's Service name.
    kept = at(frozenset(), route={**route, "metadata": {**route["metadata"], "generation": 3}})
    assert split_of(kept) == [(f"iris-{R1}", 75), (f"iris-{R2}", 25)]
    assert kept.status["canary"]["effectiveWeight"] == 25


def test_a_ready_canary_takes_its_share_only_once_the_gateway_has_loaded_its_service() -> None:
    """Never through `iris-canary`, whose selector has just moved from the revision
    before: a gateway with stale endpoints would send the share to that one's pods."""
    spec = model_spec("v2", router="gatewayAPI")
    waiting = run(spec, healthy_v1(), observed={R1: Observed(deployment(4))}, now_s=T0 - 5)
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1))}
    ready = frozenset({f"iris-{R1}", f"iris-{R2}"})
    staged = run(spec, waiting.status, observed=observed, now_s=T0, ready_backends=ready)
    assert staged.status["canary"]["step"] == -1
    assert f"the gateway has not yet loaded its Service iris-{R2}" in staged.status["message"]
    assert (f"iris-{R2}", 0) in split_of(staged)
    [route] = [o for o in staged.apply if o["kind"] == "HTTPRoute"]
    loaded = run(
        spec, staged.status, observed=observed, now_s=T0 + 2, ready_backends=ready, route=route
    )
    assert loaded.status["canary"]["step"] == 0
    assert split_of(loaded) == [(f"iris-{R1}", 75), (f"iris-{R2}", 25)]
    # Without the RBAC to read EndpointSlices there is nothing to wait for.
    unread = run(spec, waiting.status, observed=observed, now_s=T0)
    assert unread.status["canary"]["step"] == 0


def test_a_settled_model_looks_again_soon_until_its_revisions_service_can_be_routed_to() -> None:
    """Nothing the operator watches changes when EndpointSlices catch up with a pod."""
    spec = model_spec("v1", router="gatewayAPI")
    first = run(spec, now_s=T0 - 60)
    status = run(spec, first.status, observed={R1: Observed(deployment(4))}, now_s=T0 - 50).status
    observed = {R1: Observed(deployment(4))}
    waiting = run(spec, status, observed=observed, ready_backends=frozenset())
    assert split_of(waiting) == [("iris-stable", 100), ("iris-canary", 0)]
    assert waiting.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)
    ready = frozenset({f"iris-{R1}"})
    staged = run(spec, status, observed=observed, ready_backends=ready)
    assert split_of(staged) == [("iris-stable", 100), ("iris-canary", 0), (f"iris-{R1}", 0)]
    assert staged.requeue_after == pytest.approx(reconcile.ROUTED_RECHECK_S)
    [route] = [o for o in staged.apply if o["kind"] == "HTTPRoute"]
    used = run(spec, status, observed=observed, ready_backends=ready, route=route)
    assert split_of(used) == [(f"iris-{R1}", 100)]
    assert used.requeue_after == SETTINGS.resync_seconds


def gateway_promoted() -> tuple[Plan, dict[str, Observed], frozenset[str]]:
    spec = model_spec("v2", router="gatewayAPI")
    first_step, observed = canary_at_first_step(spec)
    ready = frozenset({f"iris-{R1}", f"iris-{R2}"})
    staged = run(spec, first_step.status, observed=observed, now_s=T0 + 5, ready_backends=ready)
    [route] = [o for o in staged.apply if o["kind"] == "HTTPRoute"]
    result = run(
        spec,
        staged.status,
        observed=observed,
        now_s=T0 + 10,
        annotations={rollout.PROMOTE: f"{R2}/1/full"},
        ready_backends=ready,
        route=route,
    )
    return result, observed, ready


def test_a_promotion_is_one_route_change_to_the_new_revisions_service() -> None:
    result, _, _ = gateway_promoted()
    assert split_of(result) == [(f"iris-{R2}", 100)]
    assert pinned_to(result) == {"canary": f"iris-{R2}", "stable": f"iris-{R2}"}
    # The old stable keeps its Service while it is kept: a gateway behind the route may
    # still send it requests.
    assert f"iris-{R1}" in service_selectors(result)


def test_a_revisions_service_goes_with_its_deployment() -> None:
    result, _, ready = gateway_promoted()
    spec = model_spec("v2", router="gatewayAPI")
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(4))}
    owned = frozenset({"iris", "iris-stable", "iris-canary", f"iris-{R1}", f"iris-{R2}"})
    later = run(
        spec,
        result.status,
        observed=observed,
        now_s=T0 + 10 + 120,
        services=owned,
        ready_backends=ready,
    )
    assert ("Deployment", f"iris-{R1}") in later.delete
    assert ("Service", f"iris-{R1}") in later.delete
    assert f"iris-{R1}" not in service_selectors(later)
    assert not {("Service", name) for name in ("iris", "iris-stable", "iris-canary")} & set(
        later.delete
    )
    # A Service left behind (its Deployment deleted by an earlier operator that died
    # before deleting it) goes too.
    leftover = run(spec, later.status, observed={R2: observed[R2]}, now_s=T0 + 200, services=owned)
    assert ("Service", f"iris-{R1}") in leftover.delete
    assert ("Service", f"iris-{R2}") not in leftover.delete


def test_a_router_that_does_not_split_by_revision_has_no_per_revision_services() -> None:
    owned = frozenset({"iris", "iris-stable", "iris-canary", f"iris-{R1}"})
    result = run(V1, healthy_v1(), observed={R1: Observed(deployment(4))}, services=owned)
    assert set(service_selectors(result)) == {"iris", "iris-stable", "iris-canary"}
    assert [d for d in result.delete if d[0] == "Service"] == [("Service", f"iris-{R1}")]


# --- blocked plans ----------------------------------------------------------------------------


def test_an_invalid_spec_fails_with_its_reason_and_changes_nothing() -> None:
    status = healthy_v1()
    bad = {**V2, "rollout": {"steps": [{"weight": 50}, {"weight": 10}]}}
    result = run(bad, status, observed={R1: Observed(deployment(4))}, generation=2)
    assert (result.apply, result.scale, result.delete) == ([], [], [])
    assert result.status["phase"] == "Failed"
    assert "must not decrease" in result.status["message"]
    assert result.status["stable"] == status["stable"]  # still recorded as serving
    assert result.status["observedGeneration"] == 2
    assert condition(result.status, "Degraded")["reason"] == "InvalidSpec"
    assert condition(result.status, "Ready")["status"] == "True"
    assert result.events == [Event("Warning", "InvalidSpec", result.status["message"])]
    again = run(bad, result.status, observed={R1: Observed(deployment(4))}, generation=2)
    assert again.events == []
    assert again.status["phase"] == "Failed"


def test_an_unknown_router_is_an_invalid_spec() -> None:
    bad = {**V1, "traffic": {"router": "nginx"}}
    result = run(bad, healthy_v1(), observed={R1: Observed(deployment(4))})
    assert result.status["phase"] == "Failed"
    assert condition(result.status, "Degraded")["reason"] == "InvalidSpec"


@pytest.mark.parametrize(
    ("status", "serving"),
    [
        ("healthy", f"revision {R1} keeps serving"),
        ("none", "nothing is deployed"),
    ],
)
def test_a_missing_router_crd_blocks_the_rollout_and_says_so(status: str, serving: str) -> None:
    spec = model_spec("v2", router="gatewayAPI")
    before = healthy_v1() if status == "healthy" else {}
    result = run(spec, before, observed={R1: Observed(deployment(4))}, router_available=False)
    assert (result.apply, result.scale, result.delete) == ([], [], [])
    assert result.status["phase"] == "Degraded"
    message = result.status["message"]
    assert "httproutes.gateway.networking.k8s.io" in message
    assert serving in message
    assert condition(result.status, "Degraded")["reason"] == "RouterUnavailable"
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "RouterUnavailable")]
    assert result.requeue_after == SETTINGS.resync_seconds


def test_the_replicas_router_needs_no_crd() -> None:
    result = run(V1, router_available=False)
    assert result.status["phase"] == "Deploying"
    assert result.apply


# --- conditions and requeue -------------------------------------------------------------------


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    healthy = run(V1, observed={R1: Observed(deployment(4))}, now_s=T0)
    since = rfc3339(T0)
    assert {c["lastTransitionTime"] for c in healthy.status["conditions"]} == {since}

    still = run(V1, healthy.status, observed={R1: Observed(deployment(4))}, now_s=T0 + 90)
    assert {c["lastTransitionTime"] for c in still.status["conditions"]} == {since}

    sick = run(V1, still.status, observed={R1: Observed(deployment(4, ready=0))}, now_s=T0 + 120)
    assert sick.status["phase"] == "Degraded"
    assert condition(sick.status, "Ready")["lastTransitionTime"] == rfc3339(T0 + 120)
    assert condition(sick.status, "Degraded")["lastTransitionTime"] == rfc3339(T0 + 120)
    assert condition(sick.status, "Progressing")["lastTransitionTime"] == since


def test_a_settled_model_is_resynced_at_the_configured_interval() -> None:
    result = run(V1, healthy_v1(), observed={R1: Observed(deployment(4))})
    assert result.requeue_after == SETTINGS.resync_seconds


@pytest.mark.parametrize("stage", ["deploying", "waiting", "step"])
def test_a_model_in_motion_is_requeued_soon(stage: str) -> None:
    if stage == "deploying":
        result = run(V1)
    elif stage == "waiting":
        result = run(V2, healthy_v1(), observed={R1: Observed(deployment(4))})
    else:
        result, _ = canary_at_first_step()
    assert result.requeue_after <= 5.0


def test_a_stable_deleted_by_hand_mid_rollout_is_not_scaled_and_status_says_so() -> None:
    """Scaling a Deployment that is gone would fail on every reconcile (404 forever)."""
    first_step, _ = canary_at_first_step()
    observed = {R2: Observed(deployment(1))}
    result = run(V2, first_step.status, observed=observed, now_s=T0 + 10)
    assert result.scale == []
    assert result.status["stable"]["readyReplicas"] == 0
    assert result.status["phase"] == "Degraded"
    assert f"the Deployment of stable revision {R1} is missing" in result.status["message"]


def test_a_name_held_by_another_object_is_never_taken_over() -> None:
    """An MLModel named like an existing Service (say `redis`) must not adopt it."""
    result = run(V1, taken={("Service", "iris"): "not managed by any MLModel"})
    assert (result.apply, result.scale, result.delete) == ([], [], [])
    assert result.status["phase"] == "Degraded"
    assert "Service iris (not managed by any MLModel) already exists" in result.status["message"]
    assert ("Warning", "NameTaken") in [(e.type, e.reason) for e in result.events]


def test_a_serving_model_whose_new_name_clashes_keeps_serving_and_says_why() -> None:
    first_step, observed = canary_at_first_step()
    taken = {("Deployment", f"iris-{R3}"): "controlled by MLModel other"}
    result = run(V3, first_step.status, observed=observed, now_s=T0 + 10, taken=taken)
    assert (result.apply, result.delete) == ([], [])
    assert result.status["stable"]["revision"] == R1
    assert condition(result.status, "Ready")["status"] == "True"
    assert f"Deployment iris-{R3} (controlled by MLModel other)" in result.status["message"]


# --- the administrator's policies and the metrics the analysis wants ---------------------------


def test_a_policy_violation_blocks_the_model_and_the_stable_keeps_serving() -> None:
    first_step, observed = canary_at_first_step()
    pickled = {**V3, "model": {**V3["model"], "format": "sklearn", "allowUnsafePickle": True}}
    strict = Settings(resync_seconds=300.0, forbid_unsafe_pickle=True)
    result = run(pickled, first_step.status, observed=observed, now_s=T0 + 10, settings=strict)
    assert (result.apply, result.delete) == ([], [])
    assert "refused by the cluster's policy" in result.status["message"]
    assert ("Warning", "PolicyViolation") in [(e.type, e.reason) for e in result.events]
    assert result.status["stable"]["revision"] == R1


PROMETHEUS = model_spec("v2", analysis={"provider": {"prometheus": {}}, "interval": "10s"})


def test_an_mlmodel_naming_no_prometheus_reads_the_operators_own() -> None:
    settings = Settings(resync_seconds=300.0, prometheus_url="http://prometheus.monitoring:9090")
    waiting = run(
        PROMETHEUS, healthy_v1(), observed={R1: Observed(deployment(4))}, settings=settings
    )
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1))}
    result = run(PROMETHEUS, waiting.status, observed=observed, now_s=T0, settings=settings)
    assert result.read is not None
    assert result.read.provider == "prometheus"
    assert result.read.prometheus_url == "http://prometheus.monitoring:9090"
    assert (result.read.stable, result.read.canary) == (R1, R2)


def test_prometheus_without_any_url_is_an_invalid_spec() -> None:
    result = run(PROMETHEUS, healthy_v1(), observed={R1: Observed(deployment(4))})
    assert result.status["phase"] == "Failed"
    assert "no default Prometheus (--prometheus-url)" in result.status["message"]


def test_an_analysed_canary_asks_for_a_reading_at_once_then_at_each_intervals_end() -> None:
    model = analysed_canary(ANALYSED)
    first = model.at(T0 + 1)
    assert first.read is not None
    assert first.read.due == T0 + 1  # nothing to start the window with yet
    started = model.at(T0 + 2, reading({"200": 100}, {"200": 0}))
    assert started.read is not None
    assert started.read.due == T0 + 12
    # Without a canary (promoted, or no rollout) nothing is read.
    assert run(V1, healthy_v1(), observed={R1: Observed(deployment(4))}).read is None


def test_a_reading_taken_for_other_revisions_is_never_judged() -> None:
    model = analysed_canary(ANALYSED)
    model.at(T0 + 1, reading({"200": 100}, {"200": 0}))
    foreign = Reading(
        stable=Snapshot(requests={"200": 900}),
        canary=Snapshot(requests={"200": 10, "500": 500}),
        taken_at=T0 + 12,
        target=("scrape", "", R1, R3),
    )
    held = model.at(T0 + 12.5, foreign)
    assert held.status["analysis"]["interval"] == 0
    assert held.status["phase"] == "Progressing"


# --- the model digest each revision pins ----------------------------------------------------------


def converted_pod(sha256: str) -> dict[str, Any]:
    report = {
        "status": "ok",
        "source": {"uri": "s3://models/iris/v1/model.skops", "sha256": sha256},
    }
    return {
        "metadata": {"name": f"iris-{R1}-{sha256[:5]}"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "convert",
                    "state": {"terminated": {"exitCode": 0, "message": json.dumps(report)}},
                }
            ]
        },
    }


def pins(result: Plan) -> dict[str, str] | None:
    found = [o for o in result.apply if o["kind"] == "ConfigMap"]
    return dict(found[0]["data"]) if found else None


def test_the_digest_a_revision_first_fetched_is_pinned_for_its_later_pods() -> None:
    first = run(V1, now_s=T0 - 60)
    assert pins(first) is None  # nothing fetched yet: nothing pinned
    fetched = {R1: Observed(deployment(4), pods=[converted_pod("aa" * 32)])}
    pinned = run(V1, first.status, observed=fetched, now_s=T0 - 50)
    assert pinned.status["stable"]["digest"] == "aa" * 32
    assert pins(pinned) == {R1: "aa" * 32}
    # A pod that somehow read other bytes later (before the pin reached it) changes nothing.
    other = {R1: Observed(deployment(4), pods=[converted_pod("bb" * 32)])}
    later = run(V1, pinned.status, observed=other, now_s=T0 - 40)
    assert later.status["stable"]["digest"] == "aa" * 32
    assert pins(later) == {R1: "aa" * 32}


def test_a_promoted_canary_keeps_the_digest_it_pinned() -> None:
    first_step, observed = canary_at_first_step()
    canary_pod = converted_pod("cc" * 32)
    observed = {**observed, R2: Observed(deployment(1), pods=[canary_pod])}
    pinned = run(V2, first_step.status, observed=observed, now_s=T0 + 1)
    assert pinned.status["canary"]["digest"] == "cc" * 32
    assert pins(pinned) == {R2: "cc" * 32}
    promoted = run(
        V2,
        pinned.status,
        observed={R1: Observed(deployment(3)), R2: Observed(deployment(1))},
        now_s=T0 + 2,
        annotations={rollout.PROMOTE: f"{R2}/1/full"},
    )
    assert promoted.status["stable"]["revision"] == R2
    assert promoted.status["stable"]["digest"] == "cc" * 32


def test_a_canary_whose_fetch_keeps_failing_is_rolled_back_at_its_deadline_saying_why() -> None:
    waiting = run(V2, healthy_v1(), observed={R1: Observed(deployment(4))}, now_s=T0)
    report = {"status": "failed", "exit_code": 3, "message": "HTTP 503", "retryable": True}
    fetching = {
        "metadata": {"name": f"iris-{R2}-x"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "fetch",
                    "state": {"terminated": {"exitCode": 3, "message": json.dumps(report)}},
                }
            ]
        },
    }
    observed = {R1: Observed(deployment(4)), R2: Observed(deployment(1, ready=0), [fetching])}
    held = run(V2, waiting.status, observed=observed, now_s=T0 + 60)
    assert held.status["phase"] == "Progressing"
    assert "fetching the model failed and is retried: HTTP 503" in held.status["message"]
    late = run(V2, held.status, observed=observed, now_s=T0 + 601)
    assert late.status["phase"] == "RolledBack"
    assert "canary not ready within 600s" in late.status["message"]
    assert "HTTP 503" in late.status["message"]


def test_a_crash_looping_canary_is_rolled_back_even_while_the_metrics_provider_fails() -> None:
    """A provider answering garbage is an Inconclusive reading, never an error that skips
    the reconcile: the canary's crash loop still rolls it back."""
    model = analysed_canary(ANALYSED)
    model.at(T0 + 1, Reading(error="prometheus at http://p:9090: expected an instant vector"))
    crashing = {
        "metadata": {"name": f"iris-{R2}-crash"},
        "status": {
            "containerStatuses": [
                {
                    "name": "serve",
                    "ready": False,
                    "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1}},
                }
            ]
        },
    }
    model.observed = {R1: Observed(deployment(3)), R2: Observed(deployment(1, ready=0), [crashing])}
    result = model.at(T0 + 5, Reading(error="prometheus at http://p:9090: the answer is not JSON"))
    assert result.status["phase"] == "RolledBack"
    assert "CrashLoopBackOff" in result.status["message"]
