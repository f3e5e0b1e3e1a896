"""The MLModel status as a typed value, and the one place it is read from and written to
the object.

Pure. The plan builds a `Status` and `to_dict` is what the controller writes; `from_dict`
reads what an earlier reconcile (maybe another operator replica) wrote, tolerating
fields it does not know and missing ones. The field names are the CRD's (`crds/`), which
people, the kubectl plugin and GitOps health checks read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlmodel_operator import history as hist
from mlmodel_operator.analysis.loop import AnalysisRecord
from mlmodel_operator.monitoring import CONDITION, MonitorRecord
from mlmodel_operator.rollout import CanaryState, state_from_status, state_to_status


class Phase(StrEnum):
    PENDING = "Pending"
    DEPLOYING = "Deploying"
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    ROLLED_BACK = "RolledBack"
    DEGRADED = "Degraded"
    FAILED = "Failed"

    @property
    def warning(self) -> bool:
        """A phase that people should look at: its Event is a Warning."""
        return self in (Phase.FAILED, Phase.DEGRADED, Phase.ROLLED_BACK)

    @property
    def moving(self) -> bool:
        """A rollout or a deployment is under way (the Progressing condition)."""
        return self in (Phase.DEPLOYING, Phase.PROGRESSING, Phase.PAUSED)

    @property
    def settled(self) -> bool:
        """Nothing will change without a new spec, a person or a failure: resync slowly."""
        return self in (Phase.HEALTHY, Phase.FAILED, Phase.ROLLED_BACK)


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    DRIFTING = CONDITION  # only with spec.monitoring (`monitoring.py`)


def _phase(raw: Any) -> Phase | None:
    try:
        return Phase(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class RevisionStatus:
    """The stable revision: which one, and how many of its pods serve."""

    revision: str
    version: str
    replicas: int = 0
    ready_replicas: int = 0
    conversion: Mapping[str, Any] | None = None  # the init container's report
    digest: str = ""  # sha256 of the model file its first pod fetched (pinned)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "version": self.version,
            "replicas": self.replicas,
            "readyReplicas": self.ready_replicas,
        }
        if self.conversion:
            out["conversion"] = dict(self.conversion)
        if self.digest:
            out["digest"] = self.digest
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RevisionStatus | None:
        if not raw.get("revision"):
            return None
        return cls(
            revision=str(raw["revision"]),
            version=str(raw.get("version", raw["revision"])),
            replicas=int(raw.get("replicas", 0)),
            ready_replicas=int(raw.get("readyReplicas", 0)),
            conversion=raw.get("conversion") or None,
            digest=str(raw.get("digest", "")),
        )


@dataclass(frozen=True)
class CanaryStatus:
    """The canary: where its rollout stands (`rollout.CanaryState`) and what serves."""

    state: CanaryState
    steps: int
    replicas: int = 0
    ready_replicas: int = 0
    effective_weight: int = 0  # the share of traffic the cluster carries, as observed
    conversion: Mapping[str, Any] | None = None
    digest: str = ""  # sha256 of the model file its first pod fetched (pinned)

    def to_dict(self) -> dict[str, Any]:
        out = state_to_status(self.state, self.steps)
        out["replicas"] = self.replicas
        out["readyReplicas"] = self.ready_replicas
        out["effectiveWeight"] = self.effective_weight
        if self.conversion:
            out["conversion"] = dict(self.conversion)
        if self.digest:
            out["digest"] = self.digest
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CanaryStatus | None:
        state = state_from_status(raw)
        if state is None:
            return None
        return cls(
            state=state,
            steps=int(raw.get("steps", 0)),
            replicas=int(raw.get("replicas", 0)),
            ready_replicas=int(raw.get("readyReplicas", 0)),
            effective_weight=int(raw.get("effectiveWeight", 0)),
            conversion=raw.get("conversion") or None,
            digest=str(raw.get("digest", "")),
        )


@dataclass(frozen=True)
class PreviousStable:
    """The stable a promotion replaced (at `replaced_at`), kept serving until
    `delete_after` (Unix seconds). `delete_after` moves later while the data plane still
    routes to it; `replaced_at` bounds how long it may (a status written before the
    field existed counts from `delete_after`)."""

    revision: str
    delete_after: float
    replaced_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"revision": self.revision, "deleteAfter": self.delete_after}
        if self.replaced_at is not None:
            out["replacedAt"] = self.replaced_at
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PreviousStable | None:
        if not raw.get("revision"):
            return None
        replaced = raw.get("replacedAt")
        return cls(
            revision=str(raw["revision"]),
            delete_after=float(raw.get("deleteAfter", 0)),
            replaced_at=None if replaced is None else float(replaced),
        )


@dataclass(frozen=True)
class Status:
    phase: Phase | None = None
    observed_generation: int = 0
    message: str = ""
    ready: str = ""  # "ready/desired" replicas of the stable
    revision: str = ""  # the revision the spec asks for
    stable: RevisionStatus | None = None
    canary: CanaryStatus | None = None
    previous: PreviousStable | None = None
    # Stables replaced before `previous`, each still inside its own delay: a promotion
    # during another's scaleDownDelaySeconds must not cut the older one's short.
    retiring: tuple[PreviousStable, ...] = ()
    analysis: AnalysisRecord | None = None
    monitoring: MonitorRecord | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    history: tuple[hist.Entry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.phase is not None:
            out["phase"] = str(self.phase)
        out["observedGeneration"] = self.observed_generation
        out["message"] = self.message
        if self.ready:
            out["ready"] = self.ready
        if self.revision:
            out["revision"] = self.revision
        if self.stable is not None:
            out["stable"] = self.stable.to_dict()
        if self.canary is not None:
            out["canary"] = self.canary.to_dict()
        if self.previous is not None:
            out["previous"] = self.previous.to_dict()
        if self.retiring:
            out["retiring"] = [older.to_dict() for older in self.retiring]
        if self.analysis is not None:
            out["analysis"] = self.analysis.to_dict()
        if self.monitoring is not None:
            out["monitoring"] = self.monitoring.to_dict()
        if self.history:
            out["history"] = [entry.to_dict() for entry in self.history]
        out["conditions"] = [dict(c) for c in self.conditions]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Status:
        analysis = raw.get("analysis")
        return cls(
            phase=_phase(raw.get("phase")),
            observed_generation=int(raw.get("observedGeneration", 0)),
            message=str(raw.get("message", "")),
            ready=str(raw.get("ready", "")),
            revision=str(raw.get("revision", "")),
            stable=RevisionStatus.from_dict(raw.get("stable") or {}),
            canary=CanaryStatus.from_dict(raw.get("canary") or {}),
            previous=PreviousStable.from_dict(raw.get("previous") or {}),
            retiring=tuple(
                older
                for entry in raw.get("retiring") or ()
                if (older := PreviousStable.from_dict(entry)) is not None
            ),
            analysis=AnalysisRecord.from_dict(analysis) if analysis else None,
            monitoring=MonitorRecord.from_dict(raw.get("monitoring")),
            conditions=tuple(raw.get("conditions") or ()),
            history=hist.from_status(raw.get("history")),
        )
