"""Gateway API router: one HTTPRoute `<name>` with a weighted split between the stable
revision's Service and the canary's, and header rules that pin a request to one side
(`x-mlmodel-variant: canary|stable`); parentRefs and hostnames from
`spec.traffic.gatewayAPI`. Every rule matches the model's inference paths only.

It splits by revision (`Backends`): its backends are the per-revision Services
`<name>-<revision>`, so a promotion or a rollback is one change of the route, and a
gateway that reports the route's generation (`behind`) no longer sends to the revision
it left, however late its view of the endpoints. A revision's own Service takes its
share only once the gateway has loaded it (the reconciler stages it at weight 0 first,
and `<name>-stable`/`<name>-canary` carry the share until then); without a canary the
route sends everything to the stable's backend.

With `grpc: true` (and the runtime's gRPC port, `spec.serving.grpc`) a GRPCRoute
`<name>` carries the same weights and pins to the Services' gRPC port. Every model's
gRPC calls have the same method names (`inference.GRPCInferenceService/ModelInfer`;
the model is named inside the message), so a GRPCRoute tells models apart by
hostname alone: it needs `hostnames`, and matches only the service's methods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_operator.errors import SpecError
from mlmodel_operator.naming import GRPC_PORT, SERVICE_PORT, ModelRef
from mlmodel_operator.routers import (
    VARIANT_HEADER,
    ApiResource,
    Attachments,
    Backends,
    model_paths,
    owned,
    stable_stays_whole,
)

HTTP_ROUTE = ApiResource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
GRPC_ROUTE = ApiResource("gateway.networking.k8s.io", "v1", "grpcroutes", "GRPCRoute")
GRPC_SERVICE = "inference.GRPCInferenceService"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# Gateway API implementations (GatewayClass controllerName) known to lack the RequestMirror
# filter, and what happens there: a mirror step is refused rather than written.
NO_REQUEST_MIRROR: Mapping[str, str] = {
    "traefik.io/gateway-controller": (
        "Traefik's Gateway API provider has no RequestMirror filter and answers every "
        "request of a route carrying one with 500; traffic.router traefik mirrors with "
        "Traefik's own TraefikService"
    ),
}


def mirror_refusal(controllers: tuple[str, ...]) -> str:
    """Why a mirror step must not be written for Gateways run by `controllers` (their
    GatewayClasses' controllerName), or "" when none is known to lack RequestMirror."""
    for controller in controllers:
        if controller in NO_REQUEST_MIRROR:
            return (
                f"mirror steps cannot run on this Gateway ({controller}): "
                + (NO_REQUEST_MIRROR[controller])
            )
    return ""


@dataclass(frozen=True)
class GatewaySettings:
    parent_refs: tuple[Mapping[str, Any], ...]  # as the Gateway API defines them
    hostnames: tuple[str, ...] = ()
    grpc: bool = False  # a GRPCRoute too


def _backend(name: str, weight: int | None = None, port: int = SERVICE_PORT) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": "Service", "name": name, "port": port}
    if weight is not None:
        ref["weight"] = weight
    return ref


class GatewayApiRouter:
    name = "gatewayAPI"
    api: ApiResource | None = HTTP_ROUTE
    # Listed with the HTTPRoute so that a GRPCRoute no longer asked for is deleted; the
    # GRPCRoute CRD is in the Gateway API's standard channel since v1.1.
    extra_apis: tuple[ApiResource, ...] = (GRPC_ROUTE,)
    mirrors = True  # the RequestMirror filter (with percent: standard CRDs of v1.4, v1.6)
    splits_by_revision = True

    def parse(self, raw: Mapping[str, Any] | None) -> GatewaySettings:
        raw = raw or {}
        if not raw.get("parentRefs"):
            raise SpecError("traffic.router gatewayAPI needs traffic.gatewayAPI.parentRefs")
        settings = GatewaySettings(
            parent_refs=tuple(dict(p) for p in raw["parentRefs"]),
            hostnames=tuple(str(h) for h in raw.get("hostnames") or ()),
            grpc=bool(raw.get("grpc", False)),
        )
        if settings.grpc and not settings.hostnames:
            raise SpecError(
                "traffic.gatewayAPI.grpc needs traffic.gatewayAPI.hostnames: every model's gRPC "
                "calls have the same method names, so a GRPCRoute tells models apart by "
                "hostname"
            )
        return settings

    def attachments(self, settings: GatewaySettings, namespace: str) -> Attachments:
        return Attachments(
            gateways=tuple(
                f"{ref.get('namespace') or namespace}/{ref.get('name', '')}"
                for ref in settings.parent_refs
            ),
            hostnames=settings.hostnames,
        )

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        return stable_stays_whole(total, weight)

    def desired(
        self,
        ref: ModelRef,
        settings: GatewaySettings,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        backends = backends or Backends.variants(ref.name)
        stable, canary = backends.stable, backends.canary
        prefix, predict = model_paths(ref.name)
        # PathPrefix matches whole path elements: /v2/models/iris, not /v2/models/iris2.
        paths = [
            {"path": {"type": "PathPrefix", "value": prefix}},
            {"path": {"type": "Exact", "value": predict}},
        ]

        def pinned(variant: str, service: str) -> dict[str, Any]:
            header = {"type": "Exact", "name": VARIANT_HEADER, "value": variant}
            return {
                "matches": [{**path, "headers": [header]} for path in paths],
                "backendRefs": [_backend(service)],
            }

        split: dict[str, Any] = {"matches": paths, "backendRefs": _split(backends, canary_weight)}
        if mirror and canary is not None:
            # Only the split is copied: a request pinned to a side is a person's test.
            copy: dict[str, Any] = {"backendRef": _backend(canary)}
            if mirror < 100:
                copy["percent"] = mirror
            split["filters"] = [{"type": "RequestMirror", "requestMirror": copy}]
        spec: dict[str, Any] = {
            "parentRefs": [dict(p) for p in settings.parent_refs],
            "rules": [pinned("canary", canary or stable), pinned("stable", stable), split],
        }
        if settings.hostnames:
            spec["hostnames"] = list(settings.hostnames)
        routes = [owned(ref, HTTP_ROUTE, spec)]
        if settings.grpc:
            routes.append(owned(ref, GRPC_ROUTE, _grpc_spec(settings, backends, canary_weight)))
        return routes

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        """Weights are proportional in the Gateway API: canary / (stable + canary), read
        from the rule without header matches (the split). The canary's backend is
        `backends.canary` or `<name>-canary`: a route read before this reconcile may
        still name the one its per-revision Service replaces (never both at once)."""
        del stable_ready, canary_ready
        if applied is None:
            return None
        canaries = {f"{applied['metadata']['name']}-canary"}
        if backends is not None and backends.canary is not None:
            canaries.add(backends.canary)
        weights = split_weights(applied)
        if not weights:
            return None
        total = sum(weights.values())
        if total == 0:
            return 0
        return round(100 * sum(weights.get(name, 0) for name in canaries) / total)


def _split(
    backends: Backends, canary_weight: int, port: int = SERVICE_PORT
) -> list[dict[str, Any]]:
    """The split's backendRefs: the stable's alone without a canary backend, and the
    staged ones at weight 0 (the Gateway API sends nothing to those)."""
    refs = [
        _backend(backends.stable, 100 if backends.canary is None else 100 - canary_weight, port)
    ]
    if backends.canary is not None:
        refs.append(_backend(backends.canary, canary_weight, port))
    refs.extend(_backend(name, 0, port) for name in backends.staged)
    return refs


def split_weights(route: Mapping[str, Any] | None) -> dict[str, int]:
    """The weight of each Service in a route's split (its rule without header matches),
    as the API returned it; {} without a route."""
    for rule in ((route or {}).get("spec") or {}).get("rules") or ():
        if any(m.get("headers") for m in rule.get("matches") or ()):
            continue
        return {str(r["name"]): int(r.get("weight", 1)) for r in rule.get("backendRefs") or ()}
    return {}


def resolved(route: Mapping[str, Any] | None) -> bool:
    """Whether the gateways have loaded every backend of the route as it now is: none is
    `behind`, and none reports `ResolvedRefs` False. Traefik, when a Service or its
    EndpointSlices are missing from its own caches (which lag the API after control-plane
    restarts), answers 500 for that backend's share and says so in this condition. A
    route no gateway has written status on has nothing to wait for."""
    if behind(route):
        return False
    return not any(
        condition.get("type") == "ResolvedRefs" and condition.get("status") == "False"
        for parent in ((route or {}).get("status") or {}).get("parents") or ()
        for condition in parent.get("conditions") or ()
    )


def behind(route: Mapping[str, Any] | None) -> bool:
    """Whether a gateway has yet to take the route as it now is: a parent in its status
    reports conditions observed at an older generation than the route's.

    Gateway API implementations write `status.parents[].conditions[].observedGeneration`
    when they build their configuration from the route (Traefik in the same pass that
    programs it). After kube-apiserver restarts, a gateway's own watches can back off
    for a minute; until it reports the generation the operator wrote, it may still
    send traffic where the previous one said. A route no gateway has written status on
    tells nothing and is not behind."""
    if not route:
        return False
    generation = int((route.get("metadata") or {}).get("generation") or 0)
    for parent in (route.get("status") or {}).get("parents") or ():
        seen = [
            int(condition["observedGeneration"])
            for condition in parent.get("conditions") or ()
            if condition.get("observedGeneration") is not None
        ]
        if seen and max(seen) < generation:
            return True
    return False


def _grpc_spec(settings: GatewaySettings, backends: Backends, canary_weight: int) -> dict[str, Any]:
    """The GRPCRoute's spec: the HTTPRoute's rules for the service's methods, to the
    Services' gRPC port. GRPCRoute has no RequestMirror with percent in the standard
    channel, and mirror steps copy HTTP requests only (docs/rollouts.md)."""
    stable, canary = backends.stable, backends.canary or backends.stable
    method = {"method": {"type": "Exact", "service": GRPC_SERVICE}}

    def pinned(variant: str, service: str) -> dict[str, Any]:
        header = {"type": "Exact", "name": VARIANT_HEADER, "value": variant}
        return {
            "matches": [{**method, "headers": [header]}],
            "backendRefs": [_backend(service, port=GRPC_PORT)],
        }

    split = {"matches": [method], "backendRefs": _split(backends, canary_weight, GRPC_PORT)}
    return {
        "parentRefs": [dict(p) for p in settings.parent_refs],
        "hostnames": list(settings.hostnames),
        "rules": [pinned("canary", canary), pinned("stable", stable), split],
    }
