"""status.history: every revision rolled out, when, and how it ended. Pure.

The canary's own status lives only as long as the rollout: after a rollback its pods go
and with them its conversion report, and a promotion clears status.canary altogether. A
person asking "what ran here last week, and why was v7 rolled back?" needs a record that
outlives both. Each rollout attempt is one entry, appended when it starts (outcome
Progressing) and closed once when it ends; entries keep the model source the spec named
for that revision, which is what `kubectl mlmodel undo` writes back.

`record` takes the history an earlier reconcile wrote and what this reconcile decided
(`Change`), and returns the next history: it never reads clocks or the API, so a new
leader continues the same history from status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mlmodel_operator.rollout import CanaryState

DEFAULT_LIMIT = 10


class Outcome(StrEnum):
    PROGRESSING = "Progressing"  # the canary rolling out now
    DEPLOYED = "Deployed"  # became the stable without a canary (the first revision)
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"  # by a failure of its pods or by the analysis
    ABORTED = "Aborted"  # by a person
    SUPERSEDED = "Superseded"  # replaced by another revision before it ended

    @property
    def served(self) -> bool:
        """It became the stable: a revision `undo` goes back to by default."""
        return self in (Outcome.DEPLOYED, Outcome.PROMOTED)


def _time(seconds: float) -> str:
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(text: Any) -> float:
    if not text:
        return 0.0
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Entry:
    revision: str
    version: str
    attempt: int
    outcome: Outcome
    started: float  # Unix seconds (written as RFC 3339)
    finished: float = 0.0  # 0 while Progressing
    reason: str = ""
    digest: str = ""  # sha256 of the model file its first pod fetched
    model: Mapping[str, Any] = field(default_factory=dict)  # spec.model as it was
    conversion: Mapping[str, Any] | None = None  # the report, kept for a failed revision

    def records(self, canary: CanaryState) -> bool:
        """This entry is that rollout attempt. The revision and attempt alone do not say
        it: a revision rolled out again later (after an undo, say) starts at attempt 1
        again; its start time, to the second as written, tells the two apart."""
        return (self.revision, self.attempt, int(self.started)) == (
            canary.revision,
            canary.attempt,
            int(canary.started_at),
        )

    @property
    def open(self) -> bool:
        return self.outcome is Outcome.PROGRESSING

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "version": self.version,
            "attempt": self.attempt,
            "outcome": str(self.outcome),
            "startedAt": _time(self.started),
        }
        if self.finished:
            out["finishedAt"] = _time(self.finished)
        if self.reason:
            out["reason"] = self.reason
        if self.digest:
            out["digest"] = self.digest
        if self.model:
            out["model"] = dict(self.model)
        if self.conversion:
            out["conversion"] = dict(self.conversion)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Entry | None:
        try:
            outcome = Outcome(str(raw.get("outcome", "")))
        except ValueError:
            return None
        if not raw.get("revision"):
            return None
        return cls(
            revision=str(raw["revision"]),
            version=str(raw.get("version", raw["revision"])),
            attempt=int(raw.get("attempt", 1)),
            outcome=outcome,
            started=_seconds(raw.get("startedAt")),
            finished=_seconds(raw.get("finishedAt")),
            reason=str(raw.get("reason", "")),
            digest=str(raw.get("digest", "")),
            model=dict(raw.get("model") or {}),
            conversion=raw.get("conversion") or None,
        )


def from_status(raw: Sequence[Mapping[str, Any]] | None) -> tuple[Entry, ...]:
    return tuple(e for e in (Entry.from_dict(r) for r in raw or ()) if e is not None)


@dataclass(frozen=True)
class Change:
    """What one reconcile decided, as the history needs it."""

    now: float
    revision: str  # the revision the spec asks for
    version: str
    model: Mapping[str, Any]  # spec.model (of `revision`)
    stable_before: str  # "" before the first revision
    stable: str
    canary: CanaryState | None  # the canary's state after this reconcile's step, if any
    promoted: bool = False  # the canary was promoted this reconcile
    aborted_by_person: bool = False
    message: str = ""  # the rollout's message this reconcile (a promotion's says how)
    digests: Mapping[str, str] = field(default_factory=dict)  # revision -> pinned sha256
    reports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # failed pods'


def record(
    history: Sequence[Entry], change: Change, limit: int = DEFAULT_LIMIT
) -> tuple[Entry, ...]:
    entries = list(history)

    def source(revision: str) -> Mapping[str, Any]:
        return change.model if revision == change.revision else {}

    def close(index: int, outcome: Outcome, reason: str) -> None:
        entry = entries[index]
        conversion = change.reports.get(entry.revision) if outcome is Outcome.ROLLED_BACK else None
        entries[index] = replace(
            entry, outcome=outcome, finished=change.now, reason=reason, conversion=conversion
        )

    canary = change.canary
    if canary is not None and not any(e.records(canary) for e in entries):
        entries.append(
            Entry(
                revision=canary.revision,
                version=canary.version,
                attempt=canary.attempt,
                outcome=Outcome.PROGRESSING,
                started=canary.started_at,
                model=source(canary.revision),
            )
        )
    for index, entry in enumerate(entries):
        if not entry.open:
            continue
        if canary is None or not entry.records(canary):
            by = canary.revision if canary is not None else change.stable
            close(index, Outcome.SUPERSEDED, f"replaced by revision {by} before it finished")
        elif change.promoted:
            close(index, Outcome.PROMOTED, change.message or "promoted")
        elif canary.aborted:
            outcome = Outcome.ABORTED if change.aborted_by_person else Outcome.ROLLED_BACK
            close(index, outcome, canary.message)
    if change.stable != change.stable_before and not change.promoted:
        # A stable without a canary: the first revision, or one replacing a first revision
        # that never served (which is then superseded, not a revision that ran).
        reason = "the first revision"
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            if entry.revision == change.stable_before and entry.outcome is Outcome.DEPLOYED:
                entries[index] = replace(
                    entry,
                    outcome=Outcome.SUPERSEDED,
                    reason=f"never served; replaced by revision {change.stable}",
                )
                reason = f"replaces revision {change.stable_before}, which never served"
                break
        entries.append(
            Entry(
                revision=change.stable,
                version=change.version if change.stable == change.revision else change.stable,
                attempt=1,
                outcome=Outcome.DEPLOYED,
                started=change.now,
                finished=change.now,
                reason=reason,
                model=source(change.stable),
            )
        )
    entries = [
        replace(e, digest=change.digests[e.revision])
        if not e.digest and change.digests.get(e.revision)
        else e
        for e in entries
    ]
    return tuple(entries[-limit:]) if limit > 0 else ()
