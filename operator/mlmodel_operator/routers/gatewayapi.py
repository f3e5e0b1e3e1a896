"""Gateway API router: one HTTPRoute `<name>` with a weighted split between the
`<name>-stable` and `<name>-canary` Services, and header rules that pin a request
to one side (`x-mlmodel-variant: canary|stable`); parentRefs and hostnames from
`spec.traffic.gatewayAPI`. Every rule matches the model's inference paths only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator import desired
from mlmodel_operator.desired import ModelRef
from mlmodel_operator.routers import VARIANT_HEADER, RequiredApi, model_paths, owned


def _backend(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": "Service", "name": name, "port": desired.SERVICE_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


class GatewayApiRouter:
    name = "gatewayAPI"
    required: RequiredApi | None = RequiredApi(
        group_version="gateway.networking.k8s.io/v1",
        plural="httproutes",
        kind="HTTPRoute",
        crd="httproutes.gateway.networking.k8s.io",
    )

    def desired(
        self, ref: ModelRef, settings: Mapping[str, Any], *, canary_weight: int
    ) -> list[dict[str, Any]]:
        stable, canary = f"{ref.name}-stable", f"{ref.name}-canary"
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

        spec: dict[str, Any] = {
            "parentRefs": [dict(p) for p in settings.get("parentRefs", ())],
            "rules": [
                pinned("canary", canary),
                pinned("stable", stable),
                {
                    "matches": paths,
                    "backendRefs": [
                        _backend(stable, 100 - canary_weight),
                        _backend(canary, canary_weight),
                    ],
                },
            ],
        }
        if hostnames := settings.get("hostnames"):
            spec["hostnames"] = list(hostnames)
        return [owned(ref, "gateway.networking.k8s.io/v1", "HTTPRoute", spec)]

    def applied_weight(self, obj: Mapping[str, Any]) -> int | None:
        """Weights are proportional in the Gateway API: canary / (stable + canary)."""
        name = obj["metadata"]["name"]
        for rule in obj.get("spec", {}).get("rules", ()):
            refs = rule.get("backendRefs") or []
            if rule.get("matches") and any(m.get("headers") for m in rule["matches"]):
                continue
            weights = {r["name"]: int(r.get("weight", 1)) for r in refs}
            total = sum(weights.values())
            if total == 0:
                return 0
            return round(100 * weights.get(f"{name}-canary", 0) / total)
        return None
