"""The default router: no objects at all. The `<name>` Service selects every revision,
so the share of ready canary pods is the canary's share of traffic; the replica
arithmetic is `rollout.replica_split`, the achieved weight `rollout.effective_weight`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator.desired import ModelRef
from mlmodel_operator.routers import RequiredApi


class ReplicasRouter:
    name = "replicas"
    required: RequiredApi | None = None

    def desired(
        self, ref: ModelRef, settings: Mapping[str, Any], *, canary_weight: int
    ) -> list[dict[str, Any]]:
        del ref, settings, canary_weight
        return []

    def applied_weight(self, obj: Mapping[str, Any]) -> int | None:
        del obj
        return None
