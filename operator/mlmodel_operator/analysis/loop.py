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

Sequential mode (`analysis.mode: sequential`) adds, at every reading rather than at an
interval's end, the increase since the previous reading to totals kept since the
attempt started, and runs each metric kind's anytime-valid test on them: the moment
one rejects, the outcome is Rollback. Intervals still end as in interval mode: then
the kinds without such a test are judged on their window, and the tested ones Pass
only with minSamples behind them, so the rollout's steps advance as before.
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
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Totals, Verdict
from mlmodel_operator.analysis.spec import AnalysisSpec
from mlmodel_operator.analysis.windows import window
from mlmodel_operator.policy import display_url
from mlmodel_operator.webhooks import Answer, Hook

# Sequential mode reads this often (seconds): a test that may stop at any read is only
# as quick as its reads. One metrics read per second per model under analysis.
SEQUENTIAL_READ_S = 1.0
# A window starts only with a reading of every side it compares. When the one wanted
# at a window's start lacks a side (the canary's pod Ready in the Deployment's status
# but not yet in the pod list the reading was asked with, a provider that failed), the
# next is asked for this long after it: soon enough that the first window starts with
# the step, not an interval later, and never a read loop as fast as reads return.
READ_AGAIN_S = 0.5


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
    # The rollout webhooks called with this reading (by URL): judged with the interval.
    webhooks: Mapping[str, Answer] = field(default_factory=dict)


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
    # `rollout` webhooks to call with this reading, each with its body: only with the
    # reading that ends an interval.
    webhooks: tuple[tuple[Hook, Mapping[str, Any]], ...] = ()

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
    # Sequential mode: the latest reading's snapshots and when it was taken, the sums of
    # every reading's increase since the attempt started, and the stable's counters at
    # the attempt's first reading (its history).
    last: Mapping[str, Snapshot] = field(default_factory=dict)
    last_read: float = 0.0
    totals: Mapping[str, Snapshot] = field(default_factory=dict)
    stable_before: Snapshot | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.state.to_status()
        out["attempt"] = self.attempt
        out["windowStart"] = self.window_start
        out["start"] = {side: snapshot.to_dict() for side, snapshot in self.start.items()}
        if self.last_read:
            out["sequential"] = {
                "lastRead": self.last_read,
                "last": {side: snapshot.to_dict() for side, snapshot in self.last.items()},
                "totals": {side: snapshot.to_dict() for side, snapshot in self.totals.items()},
                "stableBefore": (
                    None if self.stable_before is None else self.stable_before.to_dict()
                ),
            }
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
        sequential = raw.get("sequential") or {}
        before = _snapshots_of({"stable": sequential.get("stableBefore")})
        return cls(
            state=AnalysisState.from_status(raw),
            attempt=str(raw.get("attempt", "")),
            window_start=float(raw.get("windowStart", 0.0)),
            # unreadable snapshots: the window starts again at the next reading
            start=_snapshots_of(raw.get("start")),
            outcome=None if kind is None else kind(str(outcome.get("reason", ""))),
            last=_snapshots_of(sequential.get("last")),
            last_read=float(sequential.get("lastRead", 0.0)),
            totals=_snapshots_of(sequential.get("totals")),
            stable_before=before.get("stable"),
        )


def _snapshots_of(raw: Mapping[str, Any] | None) -> dict[str, Snapshot]:
    """Stored snapshots by side; a missing or unreadable one is left out."""
    out: dict[str, Snapshot] = {}
    for side, snapshot in (raw or {}).items():
        if snapshot is None:
            continue
        try:
            out[str(side)] = Snapshot.from_dict(snapshot)
        except MetricsTextError:
            continue
    return out


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
    judged: str = "canary",
) -> Progress:
    """Advance the analysis of the canary attempt `attempt_key` ("<revision>/<attempt>").

    `baseline` False (the canary takes all traffic): only absolute limits are judged,
    and with none configured the interval passes on the canary's health alone.
    `read_deadline_s`: how long past an interval's end its reading may take before the
    interval is judged without one. `judged`: what the revision in the reading's canary
    slot is called in reasons (monitoring judges the stable there)."""
    # Each tested metric's share of alpha is fixed by the spec, not by what is judged at
    # 100%: a test's threshold must not drop mid-attempt.
    alpha = spec.alpha_of(spec.metrics)
    if not baseline:
        spec = replace(spec, metrics=absolute_only(spec.metrics))
    taken = now if reading is None or reading.taken_at is None else reading.taken_at
    fresh = _snapshots(reading)
    # What a window may start with: a reading of every side it will compare.
    start = fresh if _complete(spec, fresh) else {}
    again = taken + READ_AGAIN_S if reading is not None else now
    if previous is None or previous.attempt != attempt_key:
        record = AnalysisRecord(
            state=AnalysisState(),
            attempt=attempt_key,
            window_start=taken if start else now,
            start=start,
        )
        if spec.sequential and fresh:
            record = _accumulate(record, fresh, taken)
        return _waiting(
            spec, record, now, wanted=not start, again=again, read_deadline_s=read_deadline_s
        )
    tested: dict[str, MetricResult] = {}
    if spec.sequential:
        if fresh and taken > previous.last_read:
            previous = _accumulate(previous, fresh, taken)
        tested = _test(spec, previous, alpha)
        rejected = [r for r in tested.values() if r.verdict is Verdict.FAIL]
        if rejected:
            return _rejected(spec, previous, tested, rejected, now, read_deadline_s)
        previous = replace(
            previous, state=replace(previous.state, metrics=_shown(spec, previous, tested))
        )
    started = previous.window_start
    current = reading is not None and taken > started
    unread = "no metrics were read"
    if current and start and not previous.start:
        # The first whole reading of this attempt (or the first since the provider
        # failed): the window starts then rather than being judged without a beginning.
        record = replace(previous, window_start=taken, start=start)
        return _waiting(spec, record, now, wanted=False, read_deadline_s=read_deadline_s)
    ended = started + spec.interval_s
    if current and taken >= ended:
        elapsed = taken - started
    elif now >= ended + read_deadline_s:
        # The interval's reading never came (or the provider keeps failing before the
        # window could start): judge without it, which is Inconclusive, saying why: the
        # provider's last error (a Prometheus that hangs fails each read at the deadline,
        # just as the interval is given up on), else the deadline missed.
        if reading is not None and reading.error:
            unread = f"metrics provider: {reading.error}"
        else:
            unread = f"no reading within {read_deadline_s:g} s of the interval's end"
        reading, fresh, start, taken, elapsed = None, {}, {}, now, now - started
        again = now
    else:
        wanted = not previous.start
        return _waiting(
            spec, previous, now, wanted=wanted, again=again, read_deadline_s=read_deadline_s
        )
    if not spec.metrics:
        passed = Continue("no limit applies without a baseline; the canary takes all traffic")
        record = replace(previous, window_start=taken, start=start, outcome=passed)
        return _waiting(
            spec, record, now, wanted=not start, again=again, read_deadline_s=read_deadline_s
        )
    results = _judge(spec, previous.start, reading, elapsed, judged, unread)
    if tested and reading is not None and not reading.error:
        # The tested metrics' verdicts are on everything since the attempt started.
        results = [tested.get(r.name, r) for r in results]
    state, outcome = decide(
        previous.state,
        results,
        failure_limit=spec.failure_limit,
        on_inconclusive=spec.on_inconclusive,
    )
    record = replace(previous, state=state, window_start=taken, start=start, outcome=outcome)
    waiting = _waiting(
        spec, record, now, wanted=not start, again=again, read_deadline_s=read_deadline_s
    )
    return replace(waiting, judged=True)


# --- sequential mode ------------------------------------------------------------------------


def _accumulate(
    record: AnalysisRecord, fresh: Mapping[str, Snapshot], taken: float
) -> AnalysisRecord:
    """Add what each side served since the previous reading to the attempt's totals.

    A side's first reading only sets where its counting starts: the counters then may
    hold a previous attempt's traffic (a retried canary's pods keep theirs), which is
    not this attempt's. The stable's first reading is also its history, which bounds
    its rate (`Totals.stable_before`)."""
    totals = dict(record.totals)
    stable_before = record.stable_before
    for side, snapshot in fresh.items():
        last = record.last.get(side)
        if last is None:
            if side == "stable":
                stable_before = stable_before or snapshot
            continue
        served = window(last, snapshot)
        totals[side] = totals[side].merge(served) if side in totals else served
    return replace(
        record,
        last={**record.last, **fresh},
        last_read=taken,
        totals=totals,
        stable_before=stable_before,
    )


def _test(spec: AnalysisSpec, record: AnalysisRecord, alpha: float) -> dict[str, MetricResult]:
    """Each sequentially tested metric's verdict on the attempt's totals, by key."""
    totals = Totals(
        stable=record.totals.get("stable") or Snapshot(),
        canary=record.totals.get("canary") or Snapshot(),
        stable_before=record.stable_before or Snapshot(),
        min_samples=spec.min_samples,
        alpha=alpha,
    )
    out: dict[str, MetricResult] = {}
    for metric in spec.metrics:
        kind = REGISTRY[metric.name]
        if kind.sequential and (tested := kind.test(metric, totals)) is not None:
            out[metric.key] = tested
    return out


def _shown(
    spec: AnalysisSpec, record: AnalysisRecord, tested: Mapping[str, MetricResult]
) -> tuple[MetricResult, ...]:
    """What status shows per metric: the tested ones' current evidence, the others'
    verdict on the last interval."""
    judged = {r.name: r for r in record.state.metrics}
    shown = (tested.get(m.key) or judged.get(m.key) for m in spec.metrics)
    return tuple(r for r in shown if r is not None)


def _rejected(
    spec: AnalysisSpec,
    record: AnalysisRecord,
    tested: Mapping[str, MetricResult],
    rejected: list[MetricResult],
    now: float,
    read_deadline_s: float,
) -> Progress:
    """A test rejected at this reading: roll back now, whatever failureLimit says. The
    test's guarantee holds at every reading, so waiting for more failed intervals would
    only add a bad canary's time in service, never certainty."""
    failures = dict(record.state.metric_failures)
    for r in rejected:
        failures[r.name] = failures.get(r.name, 0) + 1
    state = replace(
        record.state,
        intervals=record.state.intervals + 1,  # a judgement, as an interval's end is
        failures=record.state.failures + 1,
        last_verdict=str(Verdict.FAIL),
        metrics=_shown(spec, record, tested),
        metric_failures=failures,
    )
    reason = "; ".join(r.reason for r in rejected) + " (sequential test)"
    record = replace(record, state=state, outcome=Rollback(reason))
    waiting = _waiting(spec, record, now, wanted=False, read_deadline_s=read_deadline_s)
    return replace(waiting, judged=True)


def _waiting(
    spec: AnalysisSpec,
    record: AnalysisRecord,
    now: float,
    *,
    wanted: bool,
    read_deadline_s: float,
    again: float = 0.0,
) -> Progress:
    """Nothing (more) to judge now: the window runs from `record.window_start`. `wanted`:
    the window has no starting snapshot yet, so a reading is wanted now, not at its
    end; `again`: not before then (READ_AGAIN_S after a reading that could not start
    it). Past the window's end the reading is on its way (its arrival brings the next
    reconcile), so the fallback is the moment it is given up on. Sequential mode wants
    a reading every SEQUENTIAL_READ_S as well."""
    ended = record.window_start + spec.interval_s
    due_in = ended - now if ended > now else max(0.0, ended + read_deadline_s - now)
    read_due = max(now, again) if wanted else ended
    if spec.sequential and not wanted:
        # The metrics reader reads then by itself and its reading brings the reconcile;
        # the reconcile's own requeue stays with the interval.
        next_read = record.last_read + SEQUENTIAL_READ_S if record.last_read else now
        read_due = min(read_due, next_read)
    return Progress(record=record, judged=False, due_in=due_in, read_due=read_due)


def _needs_baseline(metrics: tuple[MetricSpec, ...]) -> bool:
    return any(REGISTRY[m.name].needs_baseline(m) for m in metrics)


def _complete(spec: AnalysisSpec, snapshots: Mapping[str, Snapshot]) -> bool:
    """Whether a window may start with `snapshots`: one begun without the canary's would
    end Inconclusive for want of a beginning, one begun without the stable's (when a
    limit compares with it) would count the stable's whole history as its window."""
    if "canary" not in snapshots:
        return False
    return "stable" in snapshots or not _needs_baseline(spec.metrics)


def _judge(
    spec: AnalysisSpec,
    start: Mapping[str, Snapshot],
    reading: Reading | None,
    elapsed: float,
    judged: str = "canary",
    unread: str = "no metrics were read",
) -> list[MetricResult]:
    missing = ""
    if reading is None:
        missing = unread
    elif reading.error:
        missing = f"metrics provider: {reading.error}"
    elif reading.canary is None:
        missing = f"no metrics from the {judged} pods"
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
    results = judge(
        spec.metrics,
        stable,
        canary,
        min_samples=spec.min_samples,
        interval_s=elapsed,
        custom_values=reading.custom,
        judged=judged,
    )
    return results + [_webhook_result(url, answer) for url, answer in reading.webhooks.items()]


def _webhook_result(url: str, answer: Answer) -> MetricResult:
    """A rollout webhook's answer as one more check of the interval: non-2xx fails it."""
    shown = display_url(url)
    return MetricResult(
        name=f"webhook {shown}",
        stable=None,
        canary=None,
        limit="2xx",
        verdict=Verdict.PASS if answer.ok else Verdict.FAIL,
        reason=f"rollout webhook {shown} {answer.detail}",
    )
