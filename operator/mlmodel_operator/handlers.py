"""kopf registrations: every watch event becomes a key on the controller's queue.

Only event handlers are used, so kopf writes nothing to MLModels: no finalizers
(deleting an MLModel never hangs on a stopped operator), no annotations, no
status fields of its own. The controller does the rest.
"""

from __future__ import annotations

from typing import Any

import kopf

from mlmodel_operator import naming
from mlmodel_operator.controller import Controller, event_priority
from mlmodel_operator.kube import login


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.posting.enabled = False  # the controller posts its own Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Deployments and Pods are watched only where the operator made them, filtered by
    # the API server: without it every Pod and Deployment of the cluster would stream
    # through the operator (the `labels=` filters below are only kopf's, client-side).
    managed = f"{naming.MANAGED_BY}={naming.OPERATOR}"
    settings.watching.label_selectors["apps", "v1", "deployments"] = managed
    settings.watching.label_selectors["v1", "pods"] = managed


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    managed = {naming.MANAGED_BY: naming.OPERATOR}

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    def credentials(**_: Any) -> kopf.ConnectionInfo:
        return login()  # the same credentials as the operator's own client

    @kopf.on.event(naming.GROUP, naming.VERSION, "mlmodels", registry=registry)  # type: ignore[arg-type]
    async def mlmodel_changed(name: str, namespace: str, body: kopf.Body, **_: Any) -> None:
        controller.enqueue(namespace, name, event_priority(body))

    @kopf.on.event("apps", "v1", "deployments", labels=managed, registry=registry)  # type: ignore[arg-type]
    async def deployment_changed(labels: dict[str, str], namespace: str, **_: Any) -> None:
        if model := labels.get(naming.MODEL_LABEL):
            controller.soon(namespace, model)

    @kopf.on.event("", "v1", "pods", labels=managed, registry=registry)  # type: ignore[arg-type]
    async def pod_changed(labels: dict[str, str], namespace: str, **_: Any) -> None:
        if model := labels.get(naming.MODEL_LABEL):
            controller.soon(namespace, model)

    return registry
