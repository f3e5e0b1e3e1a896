"""The names the operator gives things: API group, labels, ports, owned-object names.

Pure constants and tiny helpers shared by the modules that build objects
(`desired`, the routers) and the ones that find them again (`controller`); stable,
since tests, docs, scripts and people's label selectors rely on them (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUP = "mlops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLModel"

MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "mlmodel-operator"
# The operator's server-side apply field manager (and its Events' reporting component).
FIELD_MANAGER = OPERATOR
MODEL_LABEL = "mlops.dev/model"
REVISION_LABEL = "mlops.dev/revision"
VARIANT_LABEL = "mlops.dev/variant"

HTTP_PORT = 8080
# The runtime's Open Inference Protocol gRPC port (spec.serving.grpc), in the pod and the
# Services alike.
GRPC_PORT = 9000
SERVICE_PORT = 80


@dataclass(frozen=True)
class ModelRef:
    """The MLModel that owns the objects."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def deployment_name(model: str, revision: str) -> str:
    return f"{model}-{revision}"


def base_labels(model: str) -> dict[str, str]:
    return {MANAGED_BY: OPERATOR, MODEL_LABEL: model}


def owned_metadata(ref: ModelRef, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Metadata of an object the MLModel controls (deleted with it)."""
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": labels,
        "ownerReferences": [ref.owner_reference()],
    }
