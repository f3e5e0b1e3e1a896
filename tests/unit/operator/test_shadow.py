"""Shadow steps: a step that mirrors a share of requests to the canary instead of giving
it any; the routers that can copy requests, the one that cannot, and the plan."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.errors import SpecError
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.reconcile import Observed
from mlmodel_operator.routers.gatewayapi import GatewayApiRouter
from mlmodel_operator.routers.istio import IstioRouter
from mlmodel_operator.routers.traefik import TraefikRouter
from mlmodel_operator.spec import Step, parse_spec
from tests.unit.operator.test_reconcile import T0, deployment, healthy_v1, model_spec, revision, run

pytestmark = pytest.mark.unit

REF = ModelRef(name="iris", namespace="models", uid="uid")
GATEWAY = GatewayApiRouter().parse({"parentRefs": [{"name": "web"}]})
ISTIO = IstioRouter().parse({"hosts": ["iris.example.com"]})
SHADOW_THEN_CANARY: list[dict[str, Any]] = [
    {"mirror": 20, "pause": {}},
    {"weight": 50, "pause": {}},
    {"weight": 100},
]


def parsed(steps: list[dict[str, Any]], router: str = "gatewayAPI") -> tuple[Step, ...]:
    traffic: dict[str, Any] = {"router": router}
    if router == "gatewayAPI":
        traffic["gatewayAPI"] = {"parentRefs": [{"name": "web"}]}
    spec = {"model": {"uri": "s3://m/m.skops"}, "traffic": traffic, "rollout": {"steps": steps}}
    return parse_spec(spec).rollout.steps


def test_a_mirror_step_gives_the_canary_copies_and_no_weight() -> None:
    steps = parsed(SHADOW_THEN_CANARY)
    assert [(s.weight, s.mirror) for s in steps] == [(0, 20), (50, 0), (100, 0)]


@pytest.mark.parametrize(
    ("steps", "router", "message"),
    [
        ([{"weight": 10, "mirror": 10}], "gatewayAPI", "weight or mirror"),
        ([{"mirror": 0}], "gatewayAPI", "mirror must be within 1-100"),
        ([{"weight": 10}, {"mirror": 50}], "gatewayAPI", "mirror (shadow) steps come before"),
        ([{"mirror": 50}, {"weight": 100}], "replicas", "cannot mirror requests"),
    ],
)
def test_a_shadow_step_that_cannot_work_is_refused(
    steps: list[dict[str, Any]], router: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parsed(steps, router)


def split_rule(route: dict[str, Any]) -> dict[str, Any]:
    [split] = [r for r in route["spec"]["rules"] if not r["matches"][0].get("headers")]
    rule: dict[str, Any] = split
    return rule


@pytest.mark.parametrize(("mirror", "percent"), [(20, {"percent": 20}), (100, {})])
def test_the_http_route_copies_the_split_to_the_canary(
    mirror: int, percent: dict[str, int]
) -> None:
    [route] = GatewayApiRouter().desired(REF, GATEWAY, canary_weight=0, mirror=mirror)
    split = split_rule(route)
    assert split["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"kind": "Service", "name": "iris-canary", "port": 80},
                **percent,
            },
        }
    ]
    assert [b["weight"] for b in split["backendRefs"]] == [100, 0]
    # A request pinned to a side by the variant header is a person's test: not copied.
    assert all("filters" not in r for r in route["spec"]["rules"] if r is not split)
    [plain] = GatewayApiRouter().desired(REF, GATEWAY, canary_weight=0)
    assert "filters" not in split_rule(plain)


def test_the_virtual_service_mirrors_with_a_percentage() -> None:
    [service] = IstioRouter().desired(REF, ISTIO, canary_weight=0, mirror=20)
    split = next(r for r in service["spec"]["http"] if r["name"] == "split")
    assert split["mirror"] == {
        "host": "iris-canary.models.svc.cluster.local",
        "port": {"number": 80},
    }
    assert split["mirrorPercentage"] == {"value": 20.0}
    assert all("mirror" not in r for r in service["spec"]["http"] if r is not split)


def test_the_plan_mirrors_in_the_shadow_step_then_splits() -> None:
    spec = model_spec("v2", router="gatewayAPI", steps=SHADOW_THEN_CANARY)
    v2 = revision(spec)
    waiting = run(spec, healthy_v1(), observed={}, now_s=T0 - 5)
    ready = {revision(model_spec("v1")): Observed(deployment(4)), v2: Observed(deployment(1))}
    shadow = run(spec, waiting.status, observed=ready, now_s=T0)
    canary = shadow.status["canary"]
    assert (canary["step"], canary["weight"], canary["mirror"]) == (0, 0, 20)
    assert "shadow, 20% of requests copied to the canary" in shadow.status["message"]
    [route] = [o for o in shadow.apply if o["kind"] == "HTTPRoute"]
    assert split_rule(route)["filters"][0]["requestMirror"]["percent"] == 20
    canary_pods = {o["metadata"]["name"]: o["spec"]["replicas"] for o in shadow.apply
                   if o["kind"] == "Deployment"}  # fmt: skip
    assert canary_pods[f"iris-{v2}"] == 1  # 20% of 4 replicas' load

    promote = {"mlops.dev/promote": f"{v2}/1/0"}
    split = run(spec, shadow.status, observed=ready, now_s=T0 + 5, annotations=promote)
    canary = split.status["canary"]
    assert (canary["step"], canary["weight"], canary.get("mirror", 0)) == (1, 50, 0)
    [route] = [o for o in split.apply if o["kind"] == "HTTPRoute"]
    assert "filters" not in split_rule(route)


def test_a_gateway_api_mirror_step_on_traefik_is_refused_and_nothing_is_written() -> None:
    """Traefik answers every request of an HTTPRoute with RequestMirror with 500: the
    operator refuses the rollout there (Degraded, the stable untouched) and names the
    traefik router; on other implementations (or an unreadable Gateway) it proceeds."""
    spec = model_spec("v2", router="gatewayAPI", steps=SHADOW_THEN_CANARY)
    refused = run(spec, healthy_v1(), gateway_controllers=("traefik.io/gateway-controller",))
    assert refused.status["phase"] == "Degraded"
    assert "traffic.router traefik" in refused.status["message"], refused.status["message"]
    assert refused.apply == []
    assert [(e.type, e.reason) for e in refused.events] == [("Warning", "RouterCannotMirror")]
    for controllers in ((), ("gateway.envoyproxy.io/gatewayclass-controller",)):
        going = run(spec, healthy_v1(), gateway_controllers=controllers)
        assert going.status["phase"] != "Degraded", going.status
    # Without mirror steps Traefik's Gateway provider is fine.
    plain = model_spec("v2", router="gatewayAPI", steps=[{"weight": 50}, {"weight": 100}])
    fine = run(plain, healthy_v1(), gateway_controllers=("traefik.io/gateway-controller",))
    assert fine.status["phase"] != "Degraded", fine.status


TRAEFIK = TraefikRouter().parse({"entryPoints": ["web"], "hostnames": ["iris.example.com"]})


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_traefik_splits_with_a_weighted_service_and_mirrors_with_a_mirroring_one() -> None:
    """Traefik's Gateway API provider has no RequestMirror (a route with one answers 500),
    so the traefik router mirrors with a TraefikService of kind mirroring."""
    router = TraefikRouter()
    split = by_kind(router.desired(REF, TRAEFIK, canary_weight=25))
    assert split["TraefikService"]["spec"] == {
        "weighted": {
            "services": [
                {"name": "iris-stable", "port": 80, "weight": 75},
                {"name": "iris-canary", "port": 80, "weight": 25},
            ]
        }
    }
    shadow = by_kind(router.desired(REF, TRAEFIK, canary_weight=0, mirror=20))
    mirroring = shadow["TraefikService"]["spec"]["mirroring"]
    assert (mirroring["name"], mirroring["port"]) == ("iris-stable", 80)
    assert mirroring["mirrors"] == [{"name": "iris-canary", "port": 80, "percent": 20}]
    assert mirroring["mirrorBody"] is True
    assert (
        router.effective_weight(applied=split["TraefikService"], stable_ready=1, canary_ready=1)
        == 25
    )
    assert (
        router.effective_weight(applied=shadow["TraefikService"], stable_ready=1, canary_ready=1)
        == 0
    )
    assert router.effective_weight(applied=None, stable_ready=1, canary_ready=1) is None


def test_traefik_routes_the_model_s_paths_to_the_split_and_pins_by_header() -> None:
    route = by_kind(TraefikRouter().desired(REF, TRAEFIK, canary_weight=10))["IngressRoute"]
    assert route["spec"]["entryPoints"] == ["web"]
    canary, stable, split = route["spec"]["routes"]
    paths = "(PathRegexp(`^/v2/models/iris(/|$)`) || Path(`/v1/models/iris:predict`))"
    assert split["match"] == f"(Host(`iris.example.com`)) && {paths}"
    assert split["services"] == [{"name": "iris", "kind": "TraefikService"}]
    assert canary["match"].endswith("Header(`x-mlmodel-variant`, `canary`)")
    assert canary["services"] == [{"name": "iris-canary", "port": 80}]
    assert stable["services"] == [{"name": "iris-stable", "port": 80}]
    # Any host and entry point without settings.
    bare = TraefikRouter().parse(None)
    route = by_kind(TraefikRouter().desired(REF, bare, canary_weight=0))["IngressRoute"]
    assert "entryPoints" not in route["spec"]
    assert route["spec"]["routes"][2]["match"] == paths


def test_a_traefik_mirror_step_is_accepted() -> None:
    steps = parsed(SHADOW_THEN_CANARY, router="traefik")
    assert [(s.weight, s.mirror) for s in steps] == [(0, 20), (50, 0), (100, 0)]
