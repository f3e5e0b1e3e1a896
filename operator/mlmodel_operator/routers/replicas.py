"""The default router: no objects at all. The `<name>` Service selects every revision,
so the share of ready canary pods is the canary's share of traffic."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlmodel_operator.naming import ModelRef
from mlmodel_operator.routers import ApiResource, Attachments, Backends


class ReplicasRouter:
    name = "replicas"
    api: ApiResource | None = None
    extra_apis: tuple[ApiResource, ...] = ()
    mirrors = False  # pods are the split: nothing could copy a request
    splits_by_revision = False

    def parse(self, raw: Mapping[str, Any] | None) -> None:
        del raw
        return None

    def attachments(self, settings: Any, namespace: str) -> Attachments:
        del settings, namespace
        return Attachments()

    def replicas(self, total: int, weight: int) -> tuple[int, int]:
        """(stable, canary) replicas approximating `weight` percent for the canary when
        the replica count is the only traffic split.

        >>> ReplicasRouter().replicas(10, 10)
        (9, 1)
        >>> ReplicasRouter().replicas(4, 50)
        (2, 2)
        >>> ReplicasRouter().replicas(1, 10)   # one replica each: 50% effective, status says so
        (1, 1)
        >>> ReplicasRouter().replicas(3, 100)
        (0, 3)
        >>> ReplicasRouter().replicas(3, 0)
        (3, 0)
        >>> ReplicasRouter().replicas(0, 50)   # scaled to zero: the canary still gets a pod
        (0, 1)
        """
        if weight <= 0:
            return total, 0
        if weight >= 100:
            return 0, max(total, 1)
        canary = max(1, math.ceil(total * weight / 100))
        stable = max(1, total - canary) if total > 0 else 0
        return stable, canary

    def desired(
        self,
        ref: ModelRef,
        settings: Any,
        *,
        canary_weight: int,
        mirror: int = 0,
        backends: Backends | None = None,
    ) -> list[dict[str, Any]]:
        del ref, settings, canary_weight, mirror, backends
        return []

    def effective_weight(
        self,
        *,
        applied: Mapping[str, Any] | None,
        stable_ready: int,
        canary_ready: int,
        backends: Backends | None = None,
    ) -> int | None:
        """The share of ready pods that are canary."""
        del applied, backends
        total = stable_ready + canary_ready
        return round(100 * canary_ready / total) if total else 0
