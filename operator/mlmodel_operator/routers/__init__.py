"""Traffic routers: the one registry of the ways a canary's share of traffic is carried.

A router is one module with one object implementing `Router` (Flagger's router
interface, adapted): it reads its own settings from `spec.traffic.<name>`, builds the
objects that carry the weights, says how the weight maps to replica counts, reads back
the weight the cluster really carries, names the API it needs (for discovery, RBAC and
the API paths), and says which gateways and hostnames it claims (for the
administrator's policies). `REGISTRY` at the bottom is the only list of routers; the
spec parser, the planner, the API client, the policies, and the tests that check the
CRD's router enum and the RBAC rules all read it. Adding a router is one module and
one line in `REGISTRY`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlmodel_operator import naming
from mlmodel_operator.naming import ModelRef

VARIANT_HEADER = "x-mlmodel-variant"


@dataclass(frozen=True)
class ApiResource:
    """A Kubernetes API resource a router writes: found through discovery before use, so
    a cluster without its CRD gets a clear status instead of a half-applied rollout."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """The API path prefix: /apis/<group>/<version>, or /api/v1 for the core API."""
        return f"/apis/{self.api_version}" if self.group else f"/api/{self.version}"

    @property
    def crd(self) -> str:
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True)
class Attachments:
    """What a router's objects claim outside the MLModel's own namespace-scoped names:
    gateways (`namespace/name`) and hostnames. The administrator's policies bound them."""

    gateways: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backends:
    """The Services a route sends to: the stable's and the canary's (None: no canary
    backend; the split and the pinned canary rule go to the stable).

    The `<name>-stable` and `<name>-canary` Services (`variants`) move their selectors
    at every promotion and rollback, and a gateway routes by their EndpointSlices,
    which lag the API after control-plane restarts. A router that `splits_by_revision`
    is given per-revision Services (`<name>-<revision>`) instead, whose endpoints never
    change while the revision lives: a promotion is then one route change, which the
    gateway reports having taken (docs/rollouts.md)."""

    stable: str
    canary: str | None
    # Listed in the split at weight 0 (no traffic), so that a gateway loads them before
    # they carry any: a revision's own Service before it replaces a variant one.
    staged: tuple[str, ...] = ()

    @classmethod
    def variants(cls, model: str) -> Backends:
        return cls(f"{model}-stable", f"{model}-canary")


class Router(Protocol):
    """One way to carry the canary's share of traffic. `settings` is whatever `parse`
    returns (a frozen dataclass of the router's own)."""

    name: str  # the value of spec.traffic.router, and the key of its settings there
    # The object kind that carries the weights (one object `<name>`), or None (none).
    api: ApiResource | None
    extra_apis: tuple[ApiResource, ...]  # other kinds it writes (Traefik's IngressRoute)
    mirrors: bool  # can copy a share of requests to the canary (shadow steps)
    # Is given per-revision Services to split over (`Backends`), not the variant ones.
    splits_by_revision: bool

    def parse(self, raw: Mapping[str, Any] | None) -> Any:
        """Settings from `spec.traffic.<name>`; raises SpecError for what the schema
        cannot express."""
        ...

    def attachments(self, settings: Any, namespace: str) -> Attachments: ...

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        """(stable, canary) replicas for a canary at `weight` percent of traffic."""
        ...

    def desired(
        self,
        ref: ModelRef,
        settings: Any,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        """Objects that send `canary_weight` percent to the canary's Service, the rest to
        the stable's (`backends`; None: `Backends.variants`), copy `mirror` percent of
        the split's requests to the canary (a router that `mirrors`), and pin requests
        with the variant header to either side."""
        ...

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        """The canary's share of traffic the cluster carries now: from the router's object
        as the API returned it (`applied`, None if absent), or from ready pods."""
        ...


def owned(ref: ModelRef, api: ApiResource, spec: dict[str, Any]) -> dict[str, Any]:
    """A route object `<name>` owned by the MLModel (deleted with it)."""
    return {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": naming.owned_metadata(ref, ref.name, naming.base_labels(ref.name)),
        "spec": spec,
    }


def model_paths(model: str) -> tuple[str, str]:
    """The paths a route sends to the model: its Open Inference Protocol paths (infer,
    ready, metadata, versions) and its KServe v1 predict path. Nothing else: `/metrics`
    and the server-wide health paths stay off the gateway, so clients cannot scrape a
    pod or pad the canary's request counts through it."""
    return f"/v2/models/{model}", f"/v1/models/{model}:predict"


def stable_stays_whole(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for routers that split requests by weight: the stable
    keeps every replica (it must be able to take all traffic back at once), the canary
    gets its weight's share of them, and at least one pod to be ready and observed.

    >>> stable_stays_whole(4, 25)
    (4, 1)
    >>> stable_stays_whole(4, 60)
    (4, 3)
    >>> stable_stays_whole(4, 0)
    (4, 1)
    """
    return total, max(1, math.ceil(total * weight / 100))


def router_for(name: str) -> Router:
    """The registered router `name`; KeyError for an unknown one (the spec parser says
    which names exist)."""
    return REGISTRY[name]


def apis_of(router: Router) -> tuple[ApiResource, ...]:
    """Every API resource `router` writes, the one carrying the weights first."""
    return (router.api, *router.extra_apis) if router.api is not None else router.extra_apis


def router_apis() -> dict[str, ApiResource]:
    """The API resources the routers write, by kind."""
    return {api.kind: api for router in REGISTRY.values() for api in apis_of(router)}


# The registry: at the end, because each router module imports the helpers above.
from mlmodel_operator.routers import gatewayapi, istio, replicas, traefik  # noqa: E402

REGISTRY: dict[str, Router] = {
    router.name: router
    for router in (
        replicas.ReplicasRouter(),
        gatewayapi.GatewayApiRouter(),
        istio.IstioRouter(),
        traefik.TraefikRouter(),
    )
}
