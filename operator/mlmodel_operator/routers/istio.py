"""Istio router: one VirtualService `<name>` routing `spec.traffic.istio.hosts` with the
same weighted split and the same `x-mlmodel-variant` header rules as the HTTPRoute,
matching the model's inference paths only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator import desired
from mlmodel_operator.desired import ModelRef
from mlmodel_operator.routers import VARIANT_HEADER, RequiredApi, model_paths, owned


class IstioRouter:
    name = "istio"
    required: RequiredApi | None = RequiredApi(
        group_version="networking.istio.io/v1",
        plural="virtualservices",
        kind="VirtualService",
        crd="virtualservices.networking.istio.io",
    )

    def desired(
        self, ref: ModelRef, settings: Mapping[str, Any], *, canary_weight: int
    ) -> list[dict[str, Any]]:
        namespace = ref.namespace

        def host(service: str) -> str:
            return f"{service}.{namespace}.svc.cluster.local"

        stable, canary = host(f"{ref.name}-stable"), host(f"{ref.name}-canary")

        def destination(name: str, weight: int | None = None) -> dict[str, Any]:
            route: dict[str, Any] = {
                "destination": {"host": name, "port": {"number": desired.SERVICE_PORT}}
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

        spec: dict[str, Any] = {
            "hosts": list(settings.get("hosts", ())),
            "http": [
                pinned("canary", canary),
                pinned("stable", stable),
                {
                    "name": "split",
                    "match": [{"uri": uri} for uri in uris],
                    "route": [
                        destination(stable, 100 - canary_weight),
                        destination(canary, canary_weight),
                    ],
                },
            ],
        }
        if gateways := settings.get("gateways"):
            spec["gateways"] = list(gateways)
        return [owned(ref, "networking.istio.io/v1", "VirtualService", spec)]

    def applied_weight(self, obj: Mapping[str, Any]) -> int | None:
        name = obj["metadata"]["name"]
        for route in obj.get("spec", {}).get("http", ()):
            if any(m.get("headers") for m in route.get("match") or ()):
                continue
            targets = route.get("route", ())
            for target in targets:
                if target["destination"]["host"].startswith(f"{name}-canary."):
                    # Istio sends everything to a lone destination without a weight.
                    return int(target.get("weight", 100 if len(targets) == 1 else 0))
            return 0
        return None
