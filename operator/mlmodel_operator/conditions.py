"""Status conditions in the standard Kubernetes shape.

Pure. `lastTransitionTime` is kept unless the condition's status changes, as
every Kubernetes controller does; `now` is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    wanted: Sequence[Condition],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    by_type = {c.get("type"): c for c in previous}
    merged = []
    for condition in wanted:
        status = "True" if condition.status else "False"
        old = by_type.get(condition.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        merged.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
            }
        )
    return merged
