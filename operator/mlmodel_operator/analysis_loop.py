"""One step of canary analysis inside a reconcile: when an interval has ended, judge it.

Pure glue between `analysis` (windows, verdicts, outcomes) and the rollout: the
controller hands over what a metrics provider read this reconcile (`Reading`), and
`step` returns the new `status.analysis` and the outcome the rollout obeys until the
next interval ends. Everything that must survive a restart is in `status.analysis`:
the attempt it belongs to, when the window started, the window-start snapshots of the
provider's cumulative values, the verdict counts and the last outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlmodel_operator.analysis import (
    AnalysisSpec,
    AnalysisState,
    Continue,
    MetricResult,
    MetricSpec,
    Outcome,
    Pause,
    Rollback,
    decide,
    judge,
)
from mlmodel_operator.metricstats import window
from mlmodel_operator.metricstext import Snapshot


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


@dataclass(frozen=True)
class Step:
    status: dict[str, Any]
    outcome: Outcome | None  # None: no interval judged yet for this attempt
    judged: bool  # an interval ended in this reconcile
    due_in: float  # seconds until the current interval ends


def _outcome_to_status(outcome: Outcome | None) -> dict[str, str]:
    if outcome is None:
        return {}
    return {"kind": type(outcome).__name__, "reason": outcome.reason}


def _outcome_from_status(raw: Mapping[str, Any]) -> Outcome | None:
    kind, reason = raw.get("kind"), str(raw.get("reason", ""))
    if kind == "Continue":
        return Continue(reason)
    if kind == "Pause":
        return Pause(reason)
    if kind == "Rollback":
        return Rollback(reason)
    return None


def _snapshots(reading: Reading | None) -> dict[str, Any]:
    if reading is None or reading.error:
        return {}
    return {
        side: snapshot.to_dict()
        for side, snapshot in (("stable", reading.stable), ("canary", reading.canary))
        if snapshot is not None
    }


def absolute_only(metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    """The metrics and limits that need no baseline. At 100% the stable gets no traffic
    (with the replicas router it has no pods at all), so a comparison with it can only
    be Inconclusive: keep `max`, `min`, `maxSeconds`, drop `maxIncrease`, `maxRatio`
    and prediction divergence."""
    kept = []
    for metric in metrics:
        if metric.name == "prediction-divergence":
            continue
        absolute = replace(metric, max_increase=None, max_ratio=None)
        if any(v is not None for v in (absolute.min, absolute.max, absolute.max_seconds)):
            kept.append(absolute)
    return tuple(kept)


def step(
    *,
    spec: AnalysisSpec,
    previous: Mapping[str, Any],
    attempt_key: str,
    reading: Reading | None,
    now: float,
    baseline: bool = True,
) -> Step:
    """Advance the analysis of the canary attempt `attempt_key` ("<revision>/<attempt>").

    `baseline` False (the canary takes all traffic): only absolute limits are judged,
    and with none configured the interval passes on the canary's health alone."""
    if not baseline:
        spec = replace(spec, metrics=absolute_only(spec.metrics))
    if previous.get("attempt") != attempt_key:
        state = AnalysisState()
        status = {
            **state.to_status(),
            "attempt": attempt_key,
            "windowStart": now,
            "start": _snapshots(reading),
        }
        return Step(status=status, outcome=None, judged=False, due_in=spec.interval_s)
    started = float(previous.get("windowStart", now))
    elapsed = now - started
    outcome = _outcome_from_status(previous.get("outcome") or {})
    start = previous.get("start") or {}
    fresh = _snapshots(reading)
    if reading is not None and fresh and not start:
        # The first reading of this attempt (or the first since the provider failed):
        # the window starts now rather than being judged without a beginning.
        return Step(
            status={**previous, "windowStart": now, "start": fresh},
            outcome=outcome,
            judged=False,
            due_in=spec.interval_s,
        )
    if elapsed < spec.interval_s:
        return Step(
            status=dict(previous), outcome=outcome, judged=False, due_in=spec.interval_s - elapsed
        )
    state = AnalysisState.from_status(previous)
    if not spec.metrics:
        outcome = Continue("no limit applies without a baseline; the canary takes all traffic")
        status = {
            **previous,
            "windowStart": now,
            "start": fresh,
            "outcome": _outcome_to_status(outcome),
        }
        return Step(status=status, outcome=outcome, judged=False, due_in=spec.interval_s)
    results = _judge(spec, start, reading, elapsed)
    state, outcome = decide(
        state, results, failure_limit=spec.failure_limit, on_inconclusive=spec.on_inconclusive
    )
    status = {
        **state.to_status(),
        "attempt": attempt_key,
        "windowStart": now,
        "start": fresh,
        "outcome": _outcome_to_status(outcome),
    }
    return Step(status=status, outcome=outcome, judged=True, due_in=spec.interval_s)


def _needs_baseline(metrics: tuple[MetricSpec, ...]) -> bool:
    return any(
        m.max_increase is not None or m.max_ratio is not None or m.name == "prediction-divergence"
        for m in metrics
    )


def _judge(
    spec: AnalysisSpec, start: Mapping[str, Any], reading: Reading | None, elapsed: float
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
                verdict="Inconclusive",
                reason=missing,
            )
            for m in spec.metrics
        ]
    stable = window(Snapshot.from_dict(start.get("stable") or {}), reading.stable or Snapshot())
    canary = window(Snapshot.from_dict(start["canary"]), reading.canary)
    return judge(
        spec.metrics,
        stable,
        canary,
        min_samples=spec.min_samples,
        interval_s=elapsed,
        custom_values=reading.custom,
    )
