"""One step of canary analysis inside a reconcile: when an interval has ended, judge it.

Pure glue between `analysis` (windows, verdicts, outcomes) and the rollout: the
controller hands over the latest reading a metrics provider took (`Reading`, read off
the reconcile path, so it carries the time it was taken), and `step` returns the new
`status.analysis`, the outcome the rollout obeys until the next interval ends, and
when it next wants a reading. A window runs between two readings' times, never the
reconcile's: a reading taken before the window started is stale and judges nothing,
and an interval whose reading does not come within the read deadline is judged
Inconclusive ("no metrics were read"). Everything that must survive a restart is in
`status.analysis`: the attempt it belongs to, when the window started, the
window-start snapshots of the provider's cumulative values, the verdict counts and the
last outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlmodel_operator.analysis.exposition import MetricsTextError, Snapshot
from mlmodel_operator.analysis.judging import (
    AnalysisState,
    Continue,
    Outcome,
    Pause,
    Rollback,
    decide,
    judge,
)
from mlmodel_operator.analysis.kinds import REGISTRY, Series
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict
from mlmodel_operator.analysis.spec import AnalysisSpec
from mlmodel_operator.analysis.windows import window


@dataclass(frozen=True)
class Reading:
    """What a provider read this reconcile for the stable and the canary revision.

    Both providers read cumulative values (counters since the pods started, summed over
    a revision's pods); windows are taken against the snapshots kept at the window's
    start. `error`: the provider could not read (unreachable, bad answer): the interval
    is Inconclusive, never a Pass.
    """

    stable: Snapshot | None = None
    canary: Snapshot | None = None
    custom: Mapping[str, float | None] = field(default_factory=dict)
    error: str = ""
    taken_at: float | None = None  # Unix seconds; None: taken now (by the caller's clock)
    # ReadRequest.target it was taken for; () when the caller does not say.
    target: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadRequest:
    """What the analysis wants read, decided by the plan and carried out by the
    controller's metrics reader: the provider, whom to read, and from when on a
    reading is wanted (a reading taken at or after `due` serves)."""

    provider: str  # scrape | prometheus
    stable: str
    canary: str
    due: float
    prometheus_url: str = ""
    interval_s: float = 30.0
    custom: tuple[MetricSpec, ...] = ()
    series: frozenset[Series] = frozenset(Series)  # what the metrics need read

    @property
    def target(self) -> tuple[str, str, str, str]:
        """Readings for another target (other revisions, provider or URL) never count."""
        return (self.provider, self.prometheus_url, self.stable, self.canary)


@dataclass(frozen=True)
class AnalysisRecord:
    """What `status.analysis` keeps for the canary attempt under analysis: the verdict
    counts, the attempt it belongs to, when the current window started, the snapshots
    taken at that moment (the provider's cumulative values), and the last outcome."""

    state: AnalysisState
    attempt: str  # "<revision>/<attempt>"
    window_start: float
    start: Mapping[str, Snapshot] = field(default_factory=dict)  # "stable"/"canary"
    outcome: Outcome | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.state.to_status()
        out["attempt"] = self.attempt
        out["windowStart"] = self.window_start
        out["start"] = {side: snapshot.to_dict() for side, snapshot in self.start.items()}
        if self.outcome is not None:
            out["outcome"] = {"kind": type(self.outcome).__name__, "reason": self.outcome.reason}
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AnalysisRecord:
        outcome = raw.get("outcome") or {}
        kinds: dict[str, type[Continue] | type[Pause] | type[Rollback]] = {
            "Continue": Continue,
            "Pause": Pause,
            "Rollback": Rollback,
        }
        kind = kinds.get(str(outcome.get("kind")))
        start: dict[str, Snapshot] = {}
        for side, snapshot in (raw.get("start") or {}).items():
            try:
                start[str(side)] = Snapshot.from_dict(snapshot)
            except MetricsTextError:
                continue  # unreadable: the window starts again at the next reading
        return cls(
            state=AnalysisState.from_status(raw),
            attempt=str(raw.get("attempt", "")),
            window_start=float(raw.get("windowStart", 0.0)),
            start=start,
            outcome=None if kind is None else kind(str(outcome.get("reason", ""))),
        )


@dataclass(frozen=True)
class Progress:
    record: AnalysisRecord
    judged: bool  # an interval ended in this reconcile
    due_in: float  # seconds until the current interval ends (or, past it, until the
    # missing reading is given up on)
    read_due: float  # Unix seconds from which a (new) reading is wanted

    @property
    def outcome(self) -> Outcome | None:
        """What the rollout obeys until the next interval (None: none judged yet)."""
        return self.record.outcome

    @property
    def status(self) -> dict[str, Any]:
        return self.record.to_dict()


def _snapshots(reading: Reading | None) -> dict[str, Snapshot]:
    if reading is None or reading.error:
        return {}
    return {
        side: snapshot
        for side, snapshot in (("stable", reading.stable), ("canary", reading.canary))
        if snapshot is not None
    }


def absolute_only(metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    """The metrics and limits that need no baseline. At 100% the stable gets no traffic
    (with the replicas router it has no pods at all), so a comparison with it can only
    be Inconclusive: each kind keeps its absolute limits, if it has any."""
    kept = (REGISTRY[metric.name].absolute(metric) for metric in metrics)
    return tuple(metric for metric in kept if metric is not None)


def step(
    *,
    spec: AnalysisSpec,
    previous: AnalysisRecord | None,
    attempt_key: str,
    reading: Reading | None,
    now: float,
    baseline: bool = True,
    read_deadline_s: float = 5.0,
) -> Progress:
    """Advance the analysis of the canary attempt `attempt_key` ("<revision>/<attempt>").

    `baseline` False (the canary takes all traffic): only absolute limits are judged,
    and with none configured the interval passes on the canary's health alone.
    `read_deadline_s`: how long past an interval's end its reading may take before the
    interval is judged without one."""
    if not baseline:
        spec = replace(spec, metrics=absolute_only(spec.metrics))
    taken = now if reading is None or reading.taken_at is None else reading.taken_at
    fresh = _snapshots(reading)
    if previous is None or previous.attempt != attempt_key:
        record = AnalysisRecord(
            state=AnalysisState(),
            attempt=attempt_key,
            window_start=taken if fresh else now,
            start=fresh,
        )
        return _waiting(spec, record, now, wanted=not fresh, read_deadline_s=read_deadline_s)
    started = previous.window_start
    current = reading is not None and taken > started
    if current and fresh and not previous.start:
        # The first reading of this attempt (or the first since the provider failed):
        # the window starts then rather than being judged without a beginning.
        record = replace(previous, window_start=taken, start=fresh)
        return _waiting(spec, record, now, wanted=False, read_deadline_s=read_deadline_s)
    ended = started + spec.interval_s
    if current and taken >= ended:
        elapsed = taken - started
    elif now >= ended + read_deadline_s:
        # The interval's reading never came (or the provider keeps failing before the
        # window could start): judge without it, which is Inconclusive.
        reading, fresh, taken, elapsed = None, {}, now, now - started
    else:
        wanted = not previous.start
        return _waiting(spec, previous, now, wanted=wanted, read_deadline_s=read_deadline_s)
    if not spec.metrics:
        passed = Continue("no limit applies without a baseline; the canary takes all traffic")
        record = replace(previous, window_start=taken, start=fresh, outcome=passed)
        return _waiting(spec, record, now, wanted=not fresh, read_deadline_s=read_deadline_s)
    results = _judge(spec, previous.start, reading, elapsed)
    state, outcome = decide(
        previous.state,
        results,
        failure_limit=spec.failure_limit,
        on_inconclusive=spec.on_inconclusive,
    )
    record = AnalysisRecord(
        state=state, attempt=attempt_key, window_start=taken, start=fresh, outcome=outcome
    )
    waiting = _waiting(spec, record, now, wanted=not fresh, read_deadline_s=read_deadline_s)
    return replace(waiting, judged=True)


def _waiting(
    spec: AnalysisSpec,
    record: AnalysisRecord,
    now: float,
    *,
    wanted: bool,
    read_deadline_s: float,
) -> Progress:
    """Nothing (more) to judge now: the window runs from `record.window_start`. `wanted`:
    the window has no starting snapshot yet, so a reading is wanted at once, not at its
    end. Past the window's end the reading is on its way (its arrival brings the next
    reconcile), so the fallback is the moment it is given up on."""
    ended = record.window_start + spec.interval_s
    due_in = ended - now if ended > now else max(0.0, ended + read_deadline_s - now)
    return Progress(
        record=record,
        judged=False,
        due_in=due_in,
        read_due=now if wanted else ended,
    )


def _needs_baseline(metrics: tuple[MetricSpec, ...]) -> bool:
    return any(REGISTRY[m.name].needs_baseline(m) for m in metrics)


def _judge(
    spec: AnalysisSpec,
    start: Mapping[str, Snapshot],
    reading: Reading | None,
    elapsed: float,
) -> list[MetricResult]:
    missing = ""
    if reading is None:
        missing = "no metrics were read"
    elif reading.error:
        missing = f"metrics provider: {reading.error}"
    elif reading.canary is None:
        missing = "no metrics from the canary pods"
    elif reading.stable is None and _needs_baseline(spec.metrics):
        missing = "no metrics from the stable pods"
    elif "canary" not in start:
        missing = "the window had no starting snapshot"
    if missing or reading is None or reading.canary is None:
        return [
            MetricResult(
                name=m.key,
                stable=None,
                canary=None,
                limit=m.limit,
                verdict=Verdict.INCONCLUSIVE,
                reason=missing,
            )
            for m in spec.metrics
        ]
    stable = window(start.get("stable") or Snapshot(), reading.stable or Snapshot())
    canary = window(start["canary"], reading.canary)
    return judge(
        spec.metrics,
        stable,
        canary,
        min_samples=spec.min_samples,
        interval_s=elapsed,
        custom_values=reading.custom,
    )
