"""Traffic routers: the objects that carry the canary weight, and the weight read back from them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlmodel_operator.errors import SpecError
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.routers import ApiResource, Backends, apis_of, router_for
from mlmodel_operator.routers.gatewayapi import GatewayApiRouter, behind, resolved, split_weights
from mlmodel_operator.routers.istio import IstioRouter
from mlmodel_operator.routers.replicas import ReplicasRouter

pytestmark = pytest.mark.unit

REF = ModelRef(name="iris", namespace="models", uid="0b5c6a3e-uid")
OWNER = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "MLModel",
    "name": "iris",
    "uid": "0b5c6a3e-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}
LABELS = {"app.kubernetes.io/managed-by": "mlmodel-operator", "mlops.dev/model": "iris"}
GATEWAY = {
    "parentRefs": [{"name": "web", "namespace": "gateways", "sectionName": "https"}],
    "hostnames": ["iris.example.com"],
}
ISTIO = {"hosts": ["iris.example.com"], "gateways": ["istio-system/public"]}
STABLE_HOST = "iris-stable.models.svc.cluster.local"
CANARY_HOST = "iris-canary.models.svc.cluster.local"
WEIGHTS = [0, 1, 10, 25, 50, 99, 100]
REPLICAS = ReplicasRouter()
HTTP_PATHS = [
    {"path": {"type": "PathPrefix", "value": "/v2/models/iris"}},
    {"path": {"type": "Exact", "value": "/v1/models/iris:predict"}},
]


def http_route(weight: int, settings: dict[str, Any] = GATEWAY) -> dict[str, Any]:
    router = GatewayApiRouter()
    [route] = router.desired(REF, router.parse(settings), canary_weight=weight)
    return route


def virtual_service(weight: int, settings: dict[str, Any] = ISTIO) -> dict[str, Any]:
    router = IstioRouter()
    [service] = router.desired(REF, router.parse(settings), canary_weight=weight)
    return service


def applied_weight(router: GatewayApiRouter | IstioRouter, obj: dict[str, Any]) -> int | None:
    return router.effective_weight(applied=obj, stable_ready=0, canary_ready=0)


# --- which router, which CRD ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("replicas", None),
        (
            "gatewayAPI",
            ApiResource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
        ),
        (
            "istio",
            ApiResource("networking.istio.io", "v1", "virtualservices", "VirtualService"),
        ),
    ],
)
def test_each_router_names_the_api_it_needs(name: str, required: ApiResource | None) -> None:
    router = router_for(name)
    assert router.name == name
    assert router.api == required


# --- replicas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", WEIGHTS)
def test_the_replicas_router_makes_no_objects(weight: int) -> None:
    router = ReplicasRouter()
    assert router.desired(REF, None, canary_weight=weight) == []
    # Its weight is the share of ready pods, whatever objects exist.
    applied = http_route(weight)
    assert router.effective_weight(applied=applied, stable_ready=3, canary_ready=1) == 25


# --- replica arithmetic (the replicas router) -------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (10, 10, (9, 1)),
        (4, 25, (3, 1)),
        (4, 50, (2, 2)),
        (10, 15, (8, 2)),  # 1.5 canary pods round up
        (3, 10, (2, 1)),  # at least one canary pod as soon as the weight is above 0
        (3, 50, (1, 2)),
        (2, 90, (1, 2)),  # stable keeps one pod until 100% (a surge of one)
        (1, 10, (1, 1)),  # one replica: one of each (50% effective)
        (1, 100, (0, 1)),
        (3, 100, (0, 3)),
        (3, 0, (3, 0)),
        (1, 0, (1, 0)),
        (5, -5, (5, 0)),
        (5, 150, (0, 5)),
    ],
)
def test_the_replicas_router_splits_replicas(
    total: int, weight: int, split: tuple[int, int]
) -> None:
    assert REPLICAS.replicas(total, weight) == split


@pytest.mark.parametrize("weight", [10, 50, 90])
def test_the_replicas_router_never_gives_the_stable_more_than_the_spec_asks(weight: int) -> None:
    stable, _ = REPLICAS.replicas(0, weight)
    assert stable == 0


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 10, 100])
@pytest.mark.parametrize("weight", [1, 10, 25, 33, 50, 75, 99])
def test_the_replicas_router_keeps_both_sides_serving_between_0_and_100(
    total: int, weight: int
) -> None:
    stable, canary = REPLICAS.replicas(total, weight)
    assert stable >= 1
    assert canary >= 1
    assert stable <= total
    assert canary <= total


@pytest.mark.parametrize(
    ("stable_ready", "canary_ready", "weight"),
    [
        (0, 0, 0),  # nothing ready: no traffic to the canary
        (3, 0, 0),
        (0, 3, 100),
        (9, 1, 10),
        (3, 1, 25),
        (1, 1, 50),
        (2, 1, 33),  # rounded
        (1, 2, 67),
        (99, 1, 1),
        (199, 1, 0),  # 0.5% rounds down
    ],
)
def test_the_replicas_routers_effective_weight_is_the_share_of_ready_pods(
    stable_ready: int, canary_ready: int, weight: int
) -> None:
    assert (
        REPLICAS.effective_weight(
            applied=None, stable_ready=stable_ready, canary_ready=canary_ready
        )
        == weight
    )


# --- Gateway API ------------------------------------------------------------------------------


def test_the_http_route_pins_variants_by_header_before_the_weighted_split() -> None:
    route = http_route(25)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    pin_canary, pin_stable, split = route["spec"]["rules"]

    def pin(variant: str) -> list[dict[str, Any]]:
        header = [{"type": "Exact", "name": "x-mlmodel-variant", "value": variant}]
        return [{**path, "headers": header} for path in HTTP_PATHS]

    assert pin_canary == {
        "matches": pin("canary"),
        "backendRefs": [{"kind": "Service", "name": "iris-canary", "port": 80}],
    }
    assert pin_stable == {
        "matches": pin("stable"),
        "backendRefs": [{"kind": "Service", "name": "iris-stable", "port": 80}],
    }
    assert split == {
        "matches": HTTP_PATHS,
        "backendRefs": [
            {"kind": "Service", "name": "iris-stable", "port": 80, "weight": 75},
            {"kind": "Service", "name": "iris-canary", "port": 80, "weight": 25},
        ],
    }


def test_routes_carry_only_the_models_inference_paths_never_metrics() -> None:
    for rule in http_route(25)["spec"]["rules"]:
        paths = {(m["path"]["type"], m["path"]["value"]) for m in rule["matches"]}
        assert paths == {("PathPrefix", "/v2/models/iris"), ("Exact", "/v1/models/iris:predict")}
    for route in virtual_service(25)["spec"]["http"]:
        uris = [m["uri"] for m in route["match"]]
        assert uris == [
            {"exact": "/v2/models/iris"},
            {"prefix": "/v2/models/iris/"},
            {"exact": "/v1/models/iris:predict"},
        ]


def test_the_http_route_attaches_where_the_spec_says_and_is_owned_by_the_model() -> None:
    route = http_route(10)
    assert route["spec"]["parentRefs"] == GATEWAY["parentRefs"]
    assert route["spec"]["hostnames"] == ["iris.example.com"]
    assert route["metadata"] == {
        "name": "iris",
        "namespace": "models",
        "labels": LABELS,
        "ownerReferences": [OWNER],
    }


def test_the_http_route_without_hostnames_takes_the_gateways() -> None:
    route = http_route(10, {"parentRefs": [{"name": "web"}]})
    assert route["spec"]["parentRefs"] == [{"name": "web"}]
    assert "hostnames" not in route["spec"]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_the_http_route_carries_the_weight_it_was_built_with(weight: int) -> None:
    route = http_route(weight)
    weights = [ref["weight"] for ref in route["spec"]["rules"][2]["backendRefs"]]
    assert weights == [100 - weight, weight]
    assert applied_weight(GatewayApiRouter(), route) == weight


def _with_split(backend_refs: list[dict[str, Any]]) -> dict[str, Any]:
    route = http_route(10)
    route["spec"]["rules"][2] = {"backendRefs": backend_refs}
    return route


@pytest.mark.parametrize(
    ("backend_refs", "weight"),
    [
        # Gateway API weights are proportional, not percentages.
        ([{"name": "iris-stable", "weight": 1}, {"name": "iris-canary", "weight": 3}], 75),
        ([{"name": "iris-stable", "weight": 3}, {"name": "iris-canary", "weight": 1}], 25),
        ([{"name": "iris-stable", "weight": 2}, {"name": "iris-canary", "weight": 1}], 33),
        ([{"name": "iris-stable"}, {"name": "iris-canary"}], 50),  # weight defaults to 1
        ([{"name": "iris-stable", "weight": 0}, {"name": "iris-canary", "weight": 0}], 0),
        ([{"name": "iris-stable", "weight": 5}], 0),  # someone removed the canary
        ([{"name": "iris-canary", "weight": 5}], 100),
    ],
)
def test_the_http_routes_applied_weight_is_the_canarys_share(
    backend_refs: list[dict[str, Any]], weight: int
) -> None:
    assert applied_weight(GatewayApiRouter(), _with_split(backend_refs)) == weight


def test_an_http_route_without_a_split_rule_has_no_weight() -> None:
    route = http_route(10)
    del route["spec"]["rules"][2]
    assert applied_weight(GatewayApiRouter(), route) is None


# --- Istio ------------------------------------------------------------------------------------


def test_the_virtual_service_pins_variants_by_header_before_the_weighted_split() -> None:
    service = virtual_service(25)
    assert service["apiVersion"] == "networking.istio.io/v1"
    assert service["kind"] == "VirtualService"
    pin_canary, pin_stable, split = service["spec"]["http"]
    assert pin_canary["match"][0]["headers"] == {"x-mlmodel-variant": {"exact": "canary"}}
    assert all(m["headers"] == pin_canary["match"][0]["headers"] for m in pin_canary["match"])
    assert pin_canary["route"] == [{"destination": {"host": CANARY_HOST, "port": {"number": 80}}}]
    assert all(
        m["headers"] == {"x-mlmodel-variant": {"exact": "stable"}} for m in pin_stable["match"]
    )
    assert pin_stable["route"] == [{"destination": {"host": STABLE_HOST, "port": {"number": 80}}}]
    assert all("headers" not in m for m in split["match"])
    assert split["route"] == [
        {"destination": {"host": STABLE_HOST, "port": {"number": 80}}, "weight": 75},
        {"destination": {"host": CANARY_HOST, "port": {"number": 80}}, "weight": 25},
    ]


def test_the_virtual_service_serves_the_spec_hosts_and_is_owned_by_the_model() -> None:
    service = virtual_service(10)
    assert service["spec"]["hosts"] == ["iris.example.com"]
    assert service["spec"]["gateways"] == ["istio-system/public"]
    assert service["metadata"] == {
        "name": "iris",
        "namespace": "models",
        "labels": LABELS,
        "ownerReferences": [OWNER],
    }


def test_the_virtual_service_without_gateways_is_for_the_mesh() -> None:
    service = virtual_service(10, {"hosts": ["iris"]})
    assert service["spec"]["hosts"] == ["iris"]
    assert "gateways" not in service["spec"]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_the_virtual_service_carries_the_weight_it_was_built_with(weight: int) -> None:
    service = virtual_service(weight)
    weights = [target["weight"] for target in service["spec"]["http"][2]["route"]]
    assert weights == [100 - weight, weight]
    assert sum(weights) == 100  # Istio rejects a split that does not add up to 100
    assert applied_weight(IstioRouter(), service) == weight


@pytest.mark.parametrize(
    ("route", "weight"),
    [
        ([{"destination": {"host": STABLE_HOST}, "weight": 40}], 0),
        (
            [
                {"destination": {"host": STABLE_HOST}, "weight": 40},
                {"destination": {"host": CANARY_HOST}, "weight": 60},
            ],
            60,
        ),
    ],
)
def test_the_virtual_services_applied_weight_reads_the_canary_destination(
    route: list[dict[str, Any]], weight: int
) -> None:
    service = virtual_service(10)
    service["spec"]["http"][2]["route"] = route
    assert applied_weight(IstioRouter(), service) == weight


def test_a_lone_canary_destination_without_a_weight_carries_all_traffic() -> None:
    service = virtual_service(10)
    service["spec"]["http"][2]["route"] = [{"destination": {"host": CANARY_HOST}}]
    assert applied_weight(IstioRouter(), service) == 100


def test_a_virtual_service_without_a_split_route_has_no_weight() -> None:
    service = virtual_service(10)
    del service["spec"]["http"][2]
    assert applied_weight(IstioRouter(), service) is None


# --- gatewayAPI: gRPC -------------------------------------------------------------------------

GRPC_GATEWAY = {**GATEWAY, "grpc": True}


def test_without_grpc_the_gateway_router_writes_only_the_http_route() -> None:
    router = GatewayApiRouter()
    assert [o["kind"] for o in router.desired(REF, router.parse(GATEWAY), canary_weight=10)] == [
        "HTTPRoute"
    ]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_the_grpc_route_carries_the_http_routes_weights_and_pins(weight: int) -> None:
    router = GatewayApiRouter()
    http, grpc = router.desired(REF, router.parse(GRPC_GATEWAY), canary_weight=weight)
    assert grpc["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert grpc["kind"] == "GRPCRoute"
    assert grpc["metadata"]["name"] == "iris"
    assert grpc["metadata"]["ownerReferences"] == [OWNER]
    spec = grpc["spec"]
    assert spec["parentRefs"] == GATEWAY["parentRefs"]
    assert spec["hostnames"] == ["iris.example.com"]
    method = {"method": {"type": "Exact", "service": "inference.GRPCInferenceService"}}
    canary_pin, stable_pin, split = spec["rules"]
    for rule, variant, service in (
        (canary_pin, "canary", "iris-canary"),
        (stable_pin, "stable", "iris-stable"),
    ):
        header = {"type": "Exact", "name": "x-mlmodel-variant", "value": variant}
        assert rule["matches"] == [{**method, "headers": [header]}]
        assert rule["backendRefs"] == [{"kind": "Service", "name": service, "port": 9000}]
    assert split["matches"] == [method]
    assert split["backendRefs"] == [
        {"kind": "Service", "name": "iris-stable", "port": 9000, "weight": 100 - weight},
        {"kind": "Service", "name": "iris-canary", "port": 9000, "weight": weight},
    ]
    # The weight read back (from the HTTPRoute) is the one both routes carry.
    assert applied_weight(router, http) == weight


def test_the_gateway_router_splits_over_the_backends_it_is_given() -> None:
    """Per-revision Services (`Backends`): both routes, every rule, and the mirror."""
    router = GatewayApiRouter()
    backends = Backends("iris-aaaa", "iris-bbbb")
    http, grpc = router.desired(
        REF, router.parse(GRPC_GATEWAY), canary_weight=30, mirror=20, backends=backends
    )
    for route, port in ((http, 80), (grpc, 9000)):
        canary_pin, stable_pin, split = route["spec"]["rules"]
        assert [b["name"] for b in canary_pin["backendRefs"]] == ["iris-bbbb"]
        assert [b["name"] for b in stable_pin["backendRefs"]] == ["iris-aaaa"]
        assert split["backendRefs"] == [
            {"kind": "Service", "name": "iris-aaaa", "port": port, "weight": 70},
            {"kind": "Service", "name": "iris-bbbb", "port": port, "weight": 30},
        ]
    [mirror] = http["spec"]["rules"][-1]["filters"]
    assert mirror["requestMirror"]["backendRef"]["name"] == "iris-bbbb"
    assert split_weights(http) == {"iris-aaaa": 70, "iris-bbbb": 30}
    assert (
        router.effective_weight(applied=http, stable_ready=0, canary_ready=0, backends=backends)
        == 30
    )


def test_without_a_canary_backend_the_route_sends_everything_to_the_stable() -> None:
    router = GatewayApiRouter()
    backends = Backends("iris-aaaa", None)
    http, grpc = router.desired(REF, router.parse(GRPC_GATEWAY), canary_weight=0, backends=backends)
    for route in (http, grpc):
        assert split_weights(route) == {"iris-aaaa": 100}
        assert [len(rule["backendRefs"]) for rule in route["spec"]["rules"]] == [1, 1, 1]
    assert (
        router.effective_weight(applied=http, stable_ready=0, canary_ready=0, backends=backends)
        == 0
    )


def test_staged_backends_are_listed_in_the_split_at_weight_0_only() -> None:
    """A gateway loads a Service the route lists at weight 0 and sends it nothing
    (Traefik skips non-positive weights), before it carries a share."""
    router = GatewayApiRouter()
    backends = Backends("iris-stable", "iris-canary", staged=("iris-aaaa", "iris-bbbb"))
    http, grpc = router.desired(
        REF, router.parse(GRPC_GATEWAY), canary_weight=30, backends=backends
    )
    for route in (http, grpc):
        assert split_weights(route) == {
            "iris-stable": 70,
            "iris-canary": 30,
            "iris-aaaa": 0,
            "iris-bbbb": 0,
        }
        canary_pin, stable_pin, _ = route["spec"]["rules"]
        assert [b["name"] for b in canary_pin["backendRefs"]] == ["iris-canary"]
        assert [b["name"] for b in stable_pin["backendRefs"]] == ["iris-stable"]
    assert (
        router.effective_weight(applied=http, stable_ready=0, canary_ready=0, backends=backends)
        == 30
    )


def _reported(generation: int, *conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "generation": generation},
        "status": {
            "parents": [
                {
                    "conditions": [
                        {"type": kind, "status": status, "observedGeneration": generation}
                        for kind, status in conditions
                    ]
                }
            ]
        },
    }


def test_a_route_is_resolved_once_the_gateway_reports_every_backend_loaded() -> None:
    assert resolved(None)
    assert resolved({"metadata": {"name": "iris", "generation": 3}})  # no gateway reports
    assert resolved(_reported(3, ("Accepted", "True"), ("ResolvedRefs", "True")))
    assert not resolved(_reported(3, ("Accepted", "True"), ("ResolvedRefs", "False")))
    behind_route = _reported(3, ("ResolvedRefs", "True"))
    behind_route["metadata"]["generation"] = 4
    assert not resolved(behind_route)


def test_the_weight_is_read_back_from_a_route_still_naming_the_canary_service() -> None:
    """The reconcile that moves the canary to its own Service reads the route written
    before, which named `<name>-canary`."""
    router = GatewayApiRouter()
    before = http_route(40)
    assert (
        router.effective_weight(
            applied=before, stable_ready=0, canary_ready=0, backends=Backends("iris-a", "iris-b")
        )
        == 40
    )


def test_grpc_routes_need_hostnames() -> None:
    router = GatewayApiRouter()
    with pytest.raises(SpecError, match=re.escape("grpc needs traffic.gatewayAPI.hostnames")):
        router.parse({"parentRefs": GATEWAY["parentRefs"], "grpc": True})


def test_the_gateway_router_lists_grpc_routes_so_an_unwanted_one_is_deleted() -> None:
    assert [api.kind for api in apis_of(GatewayApiRouter())] == ["HTTPRoute", "GRPCRoute"]


def _route(generation: int, *observed: int | None) -> dict[str, Any]:
    """An HTTPRoute at `generation` with one status parent per `observed` generation
    (None: a condition without observedGeneration)."""
    parents = [
        {
            "controllerName": "traefik.io/gateway-controller",
            "parentRef": {"name": f"gw-{n}"},
            "conditions": [
                {"type": "Accepted", "status": "True"}
                | ({} if seen is None else {"observedGeneration": seen}),
            ],
        }
        for n, seen in enumerate(observed)
    ]
    return {"metadata": {"name": "iris", "generation": generation}, "status": {"parents": parents}}


@pytest.mark.parametrize(
    ("route", "lags"),
    [
        (None, False),
        ({"metadata": {"name": "iris", "generation": 3}}, False),  # no gateway wrote status
        (_route(3, 3), False),
        (_route(3, 2), True),  # the gateway has not taken the last write
        (_route(3, 3, 2), True),  # one of two gateways has not
        (_route(3, None), False),  # says nothing about the generation
    ],
)
def test_a_route_is_behind_while_a_gateway_reports_an_older_generation(
    route: dict[str, Any] | None, lags: bool
) -> None:
    assert behind(route) is lags
