"""kopf registrations: every MLModel watch event becomes a key on the controller's queue.

Only event handlers are used, so kopf writes nothing to MLModels: no finalizers
(deleting an MLModel never hangs on a stopped operator), no annotations, no
status fields of its own. The controller does the rest. The models' Deployments and
Pods are watched by the controller's own store of children (`children.ChildCache`),
which must have an event before the reconcile it asks for reads it.
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


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    def credentials(**_: Any) -> kopf.ConnectionInfo:
        return login()  # the same credentials as the operator's own client

    @kopf.on.event(naming.GROUP, naming.VERSION, "mlmodels", registry=registry)  # type: ignore[arg-type]
    async def mlmodel_changed(name: str, namespace: str, body: kopf.Body, **_: Any) -> None:
        controller.enqueue(namespace, name, event_priority(body))

    return registry
