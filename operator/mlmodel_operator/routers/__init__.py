"""Traffic routers behind one small interface: build the objects that carry the weights,
and read back the weight an applied object actually carries.

`replicas` needs no extra component (the replica ratio is the split);
`gatewayAPI` writes a weighted HTTPRoute; `istio` a weighted VirtualService. Each
names the CRD it needs, so a cluster without it gets a clear status instead of a
half-applied rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlmodel_operator import desired
from mlmodel_operator.desired import ModelRef

VARIANT_HEADER = "x-mlmodel-variant"


def model_paths(model: str) -> tuple[str, str]:
    """The paths a route sends to the model: its Open Inference Protocol paths (infer,
    ready, metadata, versions) and its KServe v1 predict path. Nothing else: `/metrics`
    and the server-wide health paths stay off the gateway, so clients cannot scrape a
    pod or pad the canary's request counts through it."""
    return f"/v2/models/{model}", f"/v1/models/{model}:predict"


@dataclass(frozen=True)
class RequiredApi:
    """An API a router needs, checked through discovery before it is used."""

    group_version: str  # e.g. "gateway.networking.k8s.io/v1"
    plural: str  # e.g. "httproutes"
    kind: str
    crd: str  # for people: the CRD's name


class Router(Protocol):
    name: str
    required: RequiredApi | None

    def desired(
        self, ref: ModelRef, settings: Mapping[str, Any], *, canary_weight: int
    ) -> list[dict[str, Any]]:
        """Objects that send `canary_weight` percent to `<name>-canary`, the rest to
        `<name>-stable`, and pin requests with the variant header to either side."""
        ...

    def applied_weight(self, obj: Mapping[str, Any]) -> int | None:
        """The canary weight (percent) an applied object really carries."""
        ...


def owned(ref: ModelRef, api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A route object `<name>` owned by the MLModel (deleted with it)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": desired.base_labels(ref.name),
            "ownerReferences": [ref.owner_reference()],
        },
        "spec": spec,
    }


def router_for(name: str) -> Router:
    from mlmodel_operator.routers import gatewayapi, istio, replicas

    routers: dict[str, Router] = {
        "replicas": replicas.ReplicasRouter(),
        "gatewayAPI": gatewayapi.GatewayApiRouter(),
        "istio": istio.IstioRouter(),
    }
    return routers[name]
