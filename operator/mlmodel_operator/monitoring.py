"""Continuous monitoring of the stable after promotion: `spec.monitoring`.

A promoted model keeps being judged against absolute limits, above all against its own
training data (`input-drift`, `output-drift`): the world drifting away from what the
model learnt is its biggest silent failure, and no canary sees it, since stable and
canary drift alike. Each `interval` the stable's window is judged with the canary
analysis's own machinery (`analysis.loop.step`, the stable in the reading's judged
slot, no baseline); a failed interval sets the `Drifting` condition, naming the metric
(and, for drift, the feature) and the figure, with a Warning Event; an interval within
every limit clears it. An inconclusive interval (too few requests, metrics unreadable)
leaves it as it was: too little traffic is not evidence of health.

Monitoring never rolls back a promoted stable. There is nothing to roll back to that
is known to be better: the previous revision was trained on the same (older) data and
drifts at least as much, and taking a model out of service because its inputs changed
turns a quality problem into an outage. Retraining is a person's (or a pipeline's)
decision; the condition, the Event and `mlmodel_operator_drifting` are what an alert
is wired to (docs/analysis.md, "Monitoring after promotion").

Monitoring pauses while a canary takes traffic (the canary analysis judges then; add
`input-drift` to it to compare the canary's inputs with the stable's) and starts
afresh on the revision that comes out of it. Pure: the controller's metrics reader
takes the readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from mlmodel_operator.analysis.judging import Continue, Rollback
from mlmodel_operator.analysis.kinds import REGISTRY
from mlmodel_operator.analysis.loop import AnalysisRecord, Reading, ReadRequest, step
from mlmodel_operator.analysis.metric import MetricSpec
from mlmodel_operator.analysis.spec import (
    MIN_INTERVAL_S,
    AnalysisSpec,
    parse_metrics,
    parse_provider,
)
from mlmodel_operator.conditions import Condition
from mlmodel_operator.durations import parse_duration
from mlmodel_operator.errors import SpecError

CONDITION = "Drifting"
DEFAULT_INTERVAL = "1m"
DEFAULT_MIN_SAMPLES = 100
# Limits for an entry that gives none. On decile buckets a normal feature moved by half
# a standard deviation gives a Jensen-Shannon divergence (base 2) of 0.04, by a whole
# one 0.15; 300 rows drawn from iris's training data give 0.015 at the 99th percentile
# on the worst feature (docs/analysis.md).
DEFAULT_LIMITS: Mapping[str, Mapping[str, float]] = {
    "input-drift": {"max": 0.1},
    "output-drift": {"max": 0.1},
}


@dataclass(frozen=True)
class MonitoringSpec:
    provider: Literal["scrape", "prometheus"] = "scrape"
    prometheus_url: str = ""
    interval_s: float = 60.0
    min_samples: int = DEFAULT_MIN_SAMPLES
    metrics: tuple[MetricSpec, ...] = ()

    def analysis(self) -> AnalysisSpec:
        """The same judgement as a canary interval, on absolute limits: any failed interval
        counts (`failureLimit` 0), an inconclusive one holds (nothing changes)."""
        return AnalysisSpec(
            provider=self.provider,
            prometheus_url=self.prometheus_url,
            interval_s=self.interval_s,
            min_samples=self.min_samples,
            failure_limit=0,
            on_inconclusive="pause",
            metrics=self.metrics,
        )


def parse_monitoring(raw: Mapping[str, Any] | None) -> MonitoringSpec | None:
    """`spec.monitoring` (None: not monitored). Every metric must keep an absolute limit:
    after promotion there is no canary to compare with."""
    if raw is None:
        return None
    provider, url = parse_provider(raw.get("provider"))
    interval_s = parse_duration(str(raw.get("interval") or DEFAULT_INTERVAL))
    if interval_s < MIN_INTERVAL_S:
        raise SpecError(f"monitoring.interval must be at least {MIN_INTERVAL_S:g}s")
    min_samples = int(raw.get("minSamples", DEFAULT_MIN_SAMPLES))
    if min_samples < 1:
        raise SpecError("monitoring.minSamples must be at least 1")
    items = raw.get("metrics") or [{"name": name} for name in DEFAULT_LIMITS]
    metrics = parse_metrics(items, where="monitoring", defaults=DEFAULT_LIMITS)
    for metric in metrics:
        if REGISTRY[metric.name].absolute(metric) != metric:
            raise SpecError(
                f"monitoring metric {metric.key} ({metric.limit}) compares with another "
                "revision; monitoring judges the stable alone after promotion, so give "
                "absolute limits (e.g. max)"
            )
    return MonitoringSpec(
        provider=provider,
        prometheus_url=url,
        interval_s=interval_s,
        min_samples=min_samples,
        metrics=metrics,
    )


@dataclass(frozen=True)
class MonitorRecord:
    """`status.monitoring`: the revision monitored, whether it is drifting (None: no
    interval judged yet), since when and why, and the analysis record of its windows."""

    revision: str
    analysis: AnalysisRecord
    drifting: bool | None = None
    since: float = 0.0  # when `drifting` last changed (Unix seconds)
    reason: str = ""  # the condition's reason: InputDrift, ErrorRate... or WithinLimits
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "drifting": self.drifting,
            "since": self.since,
            "reason": self.reason,
            "message": self.message,
            **self.analysis.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> MonitorRecord | None:
        if not raw or not raw.get("revision"):
            return None
        drifting = raw.get("drifting")
        return cls(
            revision=str(raw["revision"]),
            analysis=AnalysisRecord.from_dict(raw),
            drifting=drifting if isinstance(drifting, bool) else None,
            since=float(raw.get("since", 0.0)),
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
        )

    def condition(self) -> Condition:
        if self.drifting is None:
            return Condition(
                CONDITION,
                False,
                "NotJudged",
                self.message or f"revision {self.revision}: no monitoring interval judged yet",
            )
        return Condition(CONDITION, self.drifting, self.reason, self.message)


@dataclass(frozen=True)
class Monitored:
    record: MonitorRecord
    read: ReadRequest
    due_in: float  # seconds until the current interval ends
    events: tuple[tuple[str, str, str], ...]  # (type, reason, message)


def read_request(spec: MonitoringSpec, revision: str, *, due: float) -> ReadRequest:
    """A read of the stable alone: it takes the judged (canary) slot, nothing the
    baseline one."""
    analysis = spec.analysis()
    return ReadRequest(
        provider=analysis.provider,
        prometheus_url=analysis.prometheus_url,
        stable="",
        canary=revision,
        due=due,
        interval_s=analysis.interval_s,
        custom=tuple(m for m in analysis.metrics if m.query),
        series=analysis.series,
    )


def _reason(name: str) -> str:
    """input-drift -> InputDrift: a condition reason is CamelCase."""
    return "".join(part.capitalize() for part in name.split("#")[0].split("-"))


def monitor(
    spec: MonitoringSpec,
    previous: MonitorRecord | None,
    *,
    revision: str,
    reading: Reading | None,
    now: float,
    read_deadline_s: float,
) -> Monitored:
    """Advance the monitoring of the stable `revision` by one reconcile."""
    target = read_request(spec, revision, due=now)
    if reading is not None and reading.target not in ((), target.target):
        reading = None  # taken for a canary's analysis, or another revision
    if previous is not None and previous.revision != revision:
        previous = None  # a new stable: its own baseline, its own judgement
    progress = step(
        spec=spec.analysis(),
        previous=previous.analysis if previous else None,
        attempt_key=f"monitor/{revision}",
        reading=reading,
        now=now,
        baseline=False,
        read_deadline_s=read_deadline_s,
        judged="stable",
    )
    record = previous or MonitorRecord(revision=revision, analysis=progress.record)
    record = replace(record, analysis=progress.record)
    events: tuple[tuple[str, str, str], ...] = ()
    outcome = progress.outcome if progress.judged else None
    if isinstance(outcome, Rollback):
        failed = [m for m in progress.record.state.metrics if m.verdict == "Fail"]
        reason = _reason(failed[0].name) if failed else "OutOfLimits"
        message = f"revision {revision}: {outcome.reason}"
        if record.drifting is not True:
            events = (
                (
                    "Warning",
                    CONDITION,
                    f"{message}; it keeps serving (monitoring never rolls back)",
                ),
            )
            record = replace(record, drifting=True, since=now)
        record = replace(record, reason=reason, message=message)
    elif isinstance(outcome, Continue):
        message = f"revision {revision} within its monitoring limits: " + "; ".join(
            m.reason for m in progress.record.state.metrics
        )
        if record.drifting is True:
            events = (("Normal", "DriftResolved", message),)
        if record.drifting is not False:
            record = replace(record, drifting=False, since=now)
        record = replace(record, reason="WithinLimits", message=message)
    elif outcome is not None and record.drifting is None:
        # Inconclusive before any verdict: say why (no baseline, too few requests).
        record = replace(record, message=f"revision {revision}: not judged: {outcome.reason}")
    return Monitored(
        record=record,
        read=replace(target, due=progress.read_due),
        due_in=progress.due_in,
        events=events,
    )
