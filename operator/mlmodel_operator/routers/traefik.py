"""Traefik router: Traefik's own CRDs, for the mirror (shadow) steps Traefik's Gateway API
provider cannot do.

Traefik v3.6 implements no `RequestMirror` filter: an HTTPRoute carrying one is
loaded with an error, and Traefik answers every request it matches with 500 — a
gatewayAPI mirror step on Traefik would take the model down. Traefik mirrors with
a TraefikService of kind `mirroring` instead, which this router writes:

- TraefikService `<name>`: the split, `weighted` between the `<name>-stable` and
  `<name>-canary` Services by the canary's weight; during a mirror step (weight 0)
  `mirroring` instead: every request goes to `<name>-stable`, and `mirror` percent
  of them are copied to `<name>-canary`, whose answers Traefik discards.
- IngressRoute `<name>`: the model's inference paths on `spec.traffic.traefik`'s
  entry points and hostnames go to that TraefikService, except requests with
  `x-mlmodel-variant: canary|stable`, which go to that side.

The TraefikService holds the weights, so it is the router's `api`: the weight the
cluster carries is read back from it. Needs Traefik's kubernetesCRD provider
(`--providers.kubernetesCRD`) and its CRDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

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

TRAEFIK_SERVICE = ApiResource("traefik.io", "v1alpha1", "traefikservices", "TraefikService")
INGRESS_ROUTE = ApiResource("traefik.io", "v1alpha1", "ingressroutes", "IngressRoute")
# Traefik buffers a mirrored request's body to send it twice; beyond this it serves the
# request without copying it (inference bodies are far smaller; the runtime's JSON limit
# is 2 MiB by default).
MIRROR_MAX_BODY_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class TraefikSettings:
    entry_points: tuple[str, ...] = ()  # none: every entry point of the Traefik instance
    hostnames: tuple[str, ...] = ()


def _service(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": SERVICE_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _match(model: str, hostnames: tuple[str, ...], variant: str | None = None) -> str:
    """Traefik's v3 rule: the model's paths (whole path elements: /v2/models/iris, not
    /v2/models/iris2), its hostnames, and a variant header when pinned."""
    prefix, predict = model_paths(model)
    rule = f"(PathRegexp(`^{prefix}(/|$)`) || Path(`{predict}`))"
    if hostnames:
        rule = "(" + " || ".join(f"Host(`{h}`)" for h in hostnames) + f") && {rule}"
    if variant is not None:
        rule += f" && Header(`{VARIANT_HEADER}`, `{variant}`)"
    return rule


class TraefikRouter:
    name = "traefik"
    api: ApiResource | None = TRAEFIK_SERVICE
    extra_apis: tuple[ApiResource, ...] = (INGRESS_ROUTE,)
    mirrors = True  # a TraefikService of kind mirroring
    splits_by_revision = False

    def parse(self, raw: Mapping[str, Any] | None) -> TraefikSettings:
        raw = raw or {}
        return TraefikSettings(
            entry_points=tuple(str(e) for e in raw.get("entryPoints") or ()),
            hostnames=tuple(str(h) for h in raw.get("hostnames") or ()),
        )

    def attachments(self, settings: TraefikSettings, namespace: str) -> Attachments:
        """No Gateway (entry points belong to the Traefik instance); without hostnames
        the IngressRoute matches every host, claimed as `*`, which an allow-list of
        hostnames refuses."""
        del namespace
        return Attachments(hostnames=settings.hostnames or ("*",))

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        return stable_stays_whole(total, weight)

    def desired(
        self,
        ref: ModelRef,
        settings: TraefikSettings,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        backends = backends or Backends.variants(ref.name)
        stable, canary = backends.stable, backends.canary or backends.stable
        if mirror:
            # Mirror steps give the canary no weight: the stable answers everything.
            split: dict[str, Any] = {
                "mirroring": {
                    **_service(stable),
                    "mirrorBody": True,
                    "maxBodySize": MIRROR_MAX_BODY_BYTES,
                    "mirrors": [{**_service(canary), "percent": mirror}],
                }
            }
        else:
            split = {
                "weighted": {
                    "services": [
                        _service(stable, 100 - canary_weight),
                        _service(canary, canary_weight),
                    ]
                }
            }

        def route(service: dict[str, Any], variant: str | None) -> dict[str, Any]:
            return {
                "kind": "Rule",
                "match": _match(ref.name, settings.hostnames, variant),
                "services": [service],
            }

        ingress: dict[str, Any] = {
            "routes": [
                route(_service(canary), "canary"),
                route(_service(stable), "stable"),
                route({"name": ref.name, "kind": "TraefikService"}, None),
            ]
        }
        if settings.entry_points:
            ingress["entryPoints"] = list(settings.entry_points)
        return [owned(ref, TRAEFIK_SERVICE, split), owned(ref, INGRESS_ROUTE, ingress)]

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        """The canary's share of the weighted split; 0 while mirroring (copies are not
        answers a client gets)."""
        del stable_ready, canary_ready
        if applied is None:
            return None
        spec = applied.get("spec") or {}
        if "mirroring" in spec:
            return 0
        canary = (backends or Backends.variants(applied["metadata"]["name"])).canary
        services = (spec.get("weighted") or {}).get("services") or ()
        weights = {s["name"]: int(s.get("weight", 1)) for s in services}
        total = sum(weights.values())
        if not weights:
            return None
        return 0 if total == 0 or canary is None else round(100 * weights.get(canary, 0) / total)
