"""Verdicts on one analysis window, and what they mean for the rollout.

Pure. `judge` asks each metric's kind (`kinds.REGISTRY`) for its verdict on the window;
`decide` folds the verdicts into the `AnalysisState` kept in `status.analysis` and says
whether the rollout continues, pauses or rolls back. Nothing here reads a clock, the
environment or the network: the interval's length and every observation are arguments.

Decisions (each explained where it is made):
- `failureLimit` counts failed intervals in total over the rollout, as Argo Rollouts does.
- fewer than `minSamples` requests, or any missing figure, is Inconclusive, never Pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.kinds import REGISTRY
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict, Window

_NO_VALUES: Mapping[str, float | None] = MappingProxyType({})


def judge(
    metrics: Sequence[MetricSpec],
    stable: Snapshot,
    canary: Snapshot,
    *,
    min_samples: int,
    interval_s: float,
    custom_values: Mapping[str, float | None] = _NO_VALUES,
    judged: str = "canary",
) -> list[MetricResult]:
    """A verdict per metric on one window (`window` deltas of both revisions, same interval).

    Fewer than `min_samples` canary requests (and stable requests, where the stable is
    the baseline) or a missing figure is Inconclusive, never Pass; a request rate outside
    its limits is the one Fail that needs no minimum (a count is exact). `custom_values`
    holds what a provider computed for each custom metric, by `MetricSpec.key`. The
    default prediction-divergence is left out for a model that exposes no predictions.
    """
    w = Window(stable, canary, min_samples, interval_s, custom_values, judged)
    results = (REGISTRY[metric.name].judge(metric, w) for metric in metrics)
    return [r for r in results if r is not None]


# --- deciding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisState:
    """What `status.analysis` keeps between intervals of one rollout attempt (start a new
    attempt from `AnalysisState()`).

    `failures` counts failed intervals in total, not consecutively, like Argo Rollouts'
    failureLimit: a canary failing every other interval is as bad as one failing twice in
    a row, and a consecutive count would let it through forever.
    """

    intervals: int = 0
    failures: int = 0
    inconclusive: int = 0
    last_verdict: str = ""  # Pass | Fail | Inconclusive, or "" before the first interval
    metrics: tuple[MetricResult, ...] = ()
    metric_failures: Mapping[str, int] = field(default_factory=dict)  # failed intervals per key

    def to_status(self) -> dict[str, Any]:
        return {
            "interval": self.intervals,
            "failures": self.failures,
            "inconclusive": self.inconclusive,
            "verdict": self.last_verdict,
            "metrics": [result.to_dict() for result in self.metrics],
            "metricFailures": dict(self.metric_failures),
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> AnalysisState:
        raw = raw or {}
        return cls(
            intervals=int(raw.get("interval", 0)),
            failures=int(raw.get("failures", 0)),
            inconclusive=int(raw.get("inconclusive", 0)),
            last_verdict=str(raw.get("verdict", "")),
            metrics=tuple(MetricResult.from_dict(m) for m in raw.get("metrics") or ()),
            metric_failures={str(k): int(v) for k, v in (raw.get("metricFailures") or {}).items()},
        )


@dataclass(frozen=True)
class Continue:
    """Every metric passed this interval: the rollout may move on."""

    reason: str = ""


@dataclass(frozen=True)
class Pause:
    """Hold the canary at its weight and do not advance; analysis goes on, and a passing
    interval lets the rollout continue. Also a failed interval within failureLimit."""

    reason: str


@dataclass(frozen=True)
class Rollback:
    reason: str


Outcome: TypeAlias = Continue | Pause | Rollback


def decide(
    previous: AnalysisState,
    results: Sequence[MetricResult],
    *,
    failure_limit: int,
    on_inconclusive: str,
) -> tuple[AnalysisState, Outcome]:
    """Fold one interval's results into the state and say what the rollout does.

    The interval fails if any metric failed, else is inconclusive if any metric was (or
    none was judged), else passes. A failed interval beyond `failure_limit` failed
    intervals in total rolls back; within it, the rollout pauses (unless an inconclusive
    metric and `on_inconclusive` "rollback" say otherwise). An inconclusive interval
    pauses or rolls back per `on_inconclusive`. Only a passing interval continues.
    """
    if on_inconclusive not in ("pause", "rollback"):
        raise ValueError(f"on_inconclusive {on_inconclusive!r} is not pause or rollback")
    intervals = previous.intervals + 1
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    unsure = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    metric_failures = dict(previous.metric_failures)
    for result in failed:
        metric_failures[result.name] = metric_failures.get(result.name, 0) + 1
    verdict = (
        Verdict.FAIL if failed else Verdict.INCONCLUSIVE if unsure or not results else Verdict.PASS
    )
    state = AnalysisState(
        intervals=intervals,
        failures=previous.failures + (verdict is Verdict.FAIL),
        inconclusive=previous.inconclusive + (verdict is Verdict.INCONCLUSIVE),
        last_verdict=str(verdict),
        metrics=tuple(results),
        metric_failures=metric_failures,
    )
    # One provider failure makes every metric inconclusive for the same reason: say it once.
    unsure_reason = (
        "; ".join(dict.fromkeys(r.reason for r in unsure)) or "no metric could be judged"
    )
    if failed:
        reason = "; ".join(
            f"{r.reason} in {metric_failures[r.name]} of {intervals} intervals" for r in failed
        )
        if state.failures > failure_limit:
            return state, Rollback(reason)
        if unsure and on_inconclusive == "rollback":
            return state, Rollback(f"{reason}; inconclusive: {unsure_reason}")
        return state, Pause(
            f"{reason}; holding: {state.failures} failed of {failure_limit} tolerated"
        )
    if verdict is Verdict.INCONCLUSIVE:
        outcome = Rollback if on_inconclusive == "rollback" else Pause
        return state, outcome(f"analysis inconclusive: {unsure_reason}")
    return state, Continue(f"analysis passed: {len(results)} metrics in interval {intervals}")
