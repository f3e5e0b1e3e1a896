"""Istio router: one VirtualService `<name>` routing `spec.traffic.istio.hosts` with the
same weighted split and the same `x-mlmodel-variant` header rules as the HTTPRoute,
matching the model's inference paths only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_operator.errors import SpecError
from mlmodel_operator.naming import SERVICE_PORT, ModelRef
from mlmodel_operator.routers import (
    VARIANT_HEADER,
    ApiResource,
    Attachments,
    Backends,
    model_paths,
    owned,
    stable_stays_whole,
)

VIRTUAL_SERVICE = ApiResource("networking.istio.io", "v1", "virtualservices", "VirtualService")


@dataclass(frozen=True)
class IstioSettings:
    hosts: tuple[str, ...]
    gateways: tuple[str, ...] = ()  # none: the mesh's sidecars


class IstioRouter:
    name = "istio"
    api: ApiResource | None = VIRTUAL_SERVICE
    extra_apis: tuple[ApiResource, ...] = ()
    mirrors = True  # mirror and mirrorPercentage of an HTTP route
    splits_by_revision = False

    def parse(self, raw: Mapping[str, Any] | None) -> IstioSettings:
        raw = raw or {}
        if not raw.get("hosts"):
            raise SpecError("traffic.router istio needs traffic.istio.hosts")
        return IstioSettings(
            hosts=tuple(str(h) for h in raw["hosts"]),
            gateways=tuple(str(g) for g in raw.get("gateways") or ()),
        )

    def attachments(self, settings: IstioSettings, namespace: str) -> Attachments:
        return Attachments(
            gateways=tuple(
                gateway if "/" in gateway else f"{namespace}/{gateway}"
                for gateway in settings.gateways
                if gateway != "mesh"  # the sidecars of the mesh, not a shared gateway
            ),
            hostnames=settings.hosts,
        )

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        return stable_stays_whole(total, weight)

    def desired(
        self,
        ref: ModelRef,
        settings: IstioSettings,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        namespace = ref.namespace
        backends = backends or Backends.variants(ref.name)

        def host(service: str) -> str:
            return f"{service}.{namespace}.svc.cluster.local"

        stable = host(backends.stable)
        canary = host(backends.canary or backends.stable)

        def destination(name: str, weight: int | None = None) -> dict[str, Any]:
            route: dict[str, Any] = {
                "destination": {"host": name, "port": {"number": SERVICE_PORT}}
            }
            if weight is not None:
                route["weight"] = weight
            return route

        prefix, predict = model_paths(ref.name)
        # Istio's prefix is a string prefix: /v2/models/iris would also take iris2.
        uris = [{"exact": prefix}, {"prefix": prefix + "/"}, {"exact": predict}]

        def pinned(variant: str, service: str) -> dict[str, Any]:
            header = {VARIANT_HEADER: {"exact": variant}}
            return {
                "name": f"pin-{variant}",
                "match": [{"uri": uri, "headers": header} for uri in uris],
                "route": [destination(service)],
            }

        split: dict[str, Any] = {
            "name": "split",
            "match": [{"uri": uri} for uri in uris],
            "route": [destination(stable, 100 - canary_weight), destination(canary, canary_weight)],
        }
        if mirror:
            split["mirror"] = {"host": canary, "port": {"number": SERVICE_PORT}}
            split["mirrorPercentage"] = {"value": float(mirror)}
        spec: dict[str, Any] = {
            "hosts": list(settings.hosts),
            "http": [
                pinned("canary", canary),
                pinned("stable", stable),
                split,
            ],
        }
        if settings.gateways:
            spec["gateways"] = list(settings.gateways)
        return [owned(ref, VIRTUAL_SERVICE, spec)]

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        """The canary destination's weight in the route without header matches."""
        del stable_ready, canary_ready
        if applied is None:
            return None
        canary = (backends or Backends.variants(applied["metadata"]["name"])).canary
        if canary is None:
            return 0
        for route in applied.get("spec", {}).get("http", ()):
            if any(m.get("headers") for m in route.get("match") or ()):
                continue
            targets = route.get("route", ())
            for target in targets:
                if target["destination"]["host"].startswith(f"{canary}."):
                    # Istio sends everything to a lone destination without a weight.
                    return int(target.get("weight", 100 if len(targets) == 1 else 0))
            return 0
        return None
