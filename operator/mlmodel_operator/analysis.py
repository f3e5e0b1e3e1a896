"""Canary analysis as pure functions: metric windows in, verdicts and an outcome out.

Called through `analysis_loop.step` once per analysis interval: a metrics provider hands
over the stable's and the canary's snapshots (`metricstext.Snapshot`) taken at the start
and the end of the interval; `metricstats.window` turns each pair into deltas, `judge`
compares the canary with the stable metric by metric over
that same window, and `decide` folds the verdicts into the `AnalysisState` kept in
`status.analysis` and says whether the rollout continues, pauses or rolls back.
`parse_analysis` reads `spec.rollout.analysis`. Nothing here reads a clock, the
environment or the network: the interval's length and every observation are arguments.

Decisions (each explained where it is made):
- error rate = 5xx / all answered requests; a 4xx is the client's fault, not the model's.
- `maxIncrease` fails only when the increase is also statistically significant
  (a one-sided two-proportion z-test, p < 0.05), so a handful of requests cannot flap it.
- prediction divergence is the Jensen-Shannon divergence (base 2, in [0, 1]), not PSI.
- `failureLimit` counts failed intervals in total over the rollout, as Argo Rollouts does.
- fewer than `minSamples` requests, or any missing figure, is Inconclusive, never Pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from mlmodel_operator.errors import SpecError
from mlmodel_operator.metricstats import (
    error_counts,
    error_rate,
    histogram_quantile,
    increase_p_value,
    jensen_shannon,
    output_distributions,
)
from mlmodel_operator.metricstext import Snapshot
from mlmodel_operator.spec import parse_duration

Verdict: TypeAlias = Literal["Pass", "Fail", "Inconclusive"]

METRIC_NAMES = ("error-rate", "latency-p99", "prediction-divergence", "request-rate", "custom")
SIGNIFICANCE = 0.05  # p-value below which an error-rate increase counts as real
MIN_INTERVAL_S = 1.0

# CRD field name -> MetricSpec attribute, in the order limits are shown.
_LIMIT_FIELDS = {
    "min": "min",
    "max": "max",
    "maxIncrease": "max_increase",
    "maxSeconds": "max_seconds",
    "maxRatio": "max_ratio",
}
_APPLICABLE = {
    "error-rate": ("max", "maxIncrease"),
    "latency-p99": ("maxSeconds", "maxRatio"),
    "prediction-divergence": ("max",),
    "request-rate": ("min", "max"),
    "custom": ("min", "max"),
}
_DEFAULT_LIMITS: Mapping[str, Mapping[str, float]] = {
    "error-rate": {"max": 0.05, "maxIncrease": 0.01},
    "latency-p99": {"maxRatio": 2.0},
    "prediction-divergence": {"max": 0.1},
}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


# --- the spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One entry of `analysis.metrics`.

    `key` names the metric in results, status and `custom_values`: the name, or `name#2`,
    `name#3`... for later entries of the same name (several custom metrics, say).
    `when_available` (only for the default prediction-divergence) skips the metric for
    models that expose no predictions; asked for explicitly, missing predictions are
    Inconclusive.
    """

    name: str
    key: str = ""
    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    max_seconds: float | None = None
    max_ratio: float | None = None
    query: str = ""
    when_available: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name)

    @property
    def limit(self) -> str:
        """The limits as written in the spec: 'max 0.05, maxIncrease 0.01'."""
        return ", ".join(
            f"{crd} {_num(getattr(self, attr))}"
            for crd, attr in _LIMIT_FIELDS.items()
            if getattr(self, attr) is not None
        )


DEFAULT_METRICS = (
    MetricSpec("error-rate", max=0.05, max_increase=0.01),
    MetricSpec("latency-p99", max_ratio=2.0),
    MetricSpec("prediction-divergence", max=0.1, when_available=True),
)


@dataclass(frozen=True)
class AnalysisSpec:
    provider: Literal["scrape", "prometheus"] = "scrape"
    prometheus_url: str = ""
    interval_s: float = 30.0
    min_samples: int = 100
    failure_limit: int = 2
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS


def _metric(raw: Mapping[str, Any], key: str) -> MetricSpec:
    name = str(raw.get("name", ""))
    if name not in METRIC_NAMES:
        raise SpecError(f"analysis metric {name!r} is not one of {', '.join(METRIC_NAMES)}")
    given = {crd: float(raw[crd]) for crd in _LIMIT_FIELDS if raw.get(crd) is not None}
    wrong = sorted(set(given) - set(_APPLICABLE[name]))
    if wrong:
        raise SpecError(
            f"analysis metric {name} takes {' and '.join(_APPLICABLE[name])}, "
            f"not {', '.join(wrong)}"
        )
    if not given:
        if name not in _DEFAULT_LIMITS:
            raise SpecError(f"analysis metric {name} needs min or max")
        given = dict(_DEFAULT_LIMITS[name])
    query = str((raw.get("prometheus") or {}).get("query", ""))
    if name == "custom" and not query:
        raise SpecError("a custom analysis metric needs prometheus.query")
    return MetricSpec(
        name=name,
        key=key,
        min=given.get("min"),
        max=given.get("max"),
        max_increase=given.get("maxIncrease"),
        max_seconds=given.get("maxSeconds"),
        max_ratio=given.get("maxRatio"),
        query=query,
    )


def parse_analysis(raw: Mapping[str, Any] | None) -> AnalysisSpec:
    """Parse `spec.rollout.analysis` (as in the CRD), applying its defaults.

    Raises SpecError for what the schema cannot express: a limit that does not apply to
    its metric, a request-rate or custom metric without limits, a zero interval.
    """
    raw = raw or {}
    provider = raw.get("provider") or {}
    prometheus = provider.get("prometheus")
    interval_s = parse_duration(str(raw.get("interval", "30s")))
    if interval_s < MIN_INTERVAL_S:
        # Each interval costs a metrics read: a tiny one would have the operator read
        # (and the analysis judge) several times a second for every such model.
        raise SpecError(f"analysis.interval must be at least {MIN_INTERVAL_S:g}s")
    min_samples = int(raw.get("minSamples", 100))
    failure_limit = int(raw.get("failureLimit", 2))
    if min_samples < 1 or failure_limit < 0:
        raise SpecError("analysis.minSamples must be at least 1 and failureLimit at least 0")
    on_inconclusive = raw.get("onInconclusive", "pause")
    if on_inconclusive not in ("pause", "rollback"):
        raise SpecError(f"analysis.onInconclusive {on_inconclusive!r} is not pause or rollback")
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    if raw.get("metrics"):
        seen: dict[str, int] = {}
        parsed = []
        for item in raw["metrics"]:
            name = str(item.get("name", ""))
            seen[name] = seen.get(name, 0) + 1
            parsed.append(_metric(item, name if seen[name] == 1 else f"{name}#{seen[name]}"))
        metrics = tuple(parsed)
    return AnalysisSpec(
        provider="prometheus" if prometheus is not None else "scrape",
        prometheus_url=str(prometheus.get("url", "")) if prometheus is not None else "",
        interval_s=interval_s,
        min_samples=min_samples,
        failure_limit=failure_limit,
        on_inconclusive="rollback" if on_inconclusive == "rollback" else "pause",
        metrics=metrics,
    )


# --- judging ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    name: str
    stable: float | None
    canary: float | None
    limit: str
    verdict: Verdict
    reason: str

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else float(f"{value:.6g}")

        return {
            "name": self.name,
            "stable": rounded(self.stable),
            "canary": rounded(self.canary),
            "limit": self.limit,
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MetricResult:
        verdict = raw.get("verdict")
        return cls(
            name=str(raw.get("name", "")),
            stable=None if raw.get("stable") is None else float(raw["stable"]),
            canary=None if raw.get("canary") is None else float(raw["canary"]),
            limit=str(raw.get("limit", "")),
            verdict=verdict if verdict in ("Pass", "Fail") else "Inconclusive",
            reason=str(raw.get("reason", "")),
        )


@dataclass(frozen=True)
class _Window:
    stable: Snapshot
    canary: Snapshot
    min_samples: int
    interval_s: float
    custom_values: Mapping[str, float | None]

    def too_few(self, *, baseline: bool) -> str:
        """Why the window is too small to judge, or ''."""
        canary, stable = self.canary.total_requests, self.stable.total_requests
        if canary < self.min_samples or canary <= 0:
            return f"{canary:.0f} canary requests, fewer than minSamples {self.min_samples}"
        if baseline and (stable < self.min_samples or stable <= 0):
            return f"{stable:.0f} stable requests, fewer than minSamples {self.min_samples}"
        return ""


def _result(
    metric: MetricSpec, stable: float | None, canary: float | None, verdict: Verdict, reason: str
) -> MetricResult:
    return MetricResult(metric.key, stable, canary, metric.limit, verdict, reason)


def _error_rate(metric: MetricSpec, w: _Window) -> MetricResult:
    stable, canary = error_rate(w.stable), error_rate(w.canary)
    few = w.too_few(baseline=False)
    if few or canary is None:
        return _result(metric, stable, canary, "Inconclusive", f"{metric.key}: {few}")
    if metric.max is not None and canary > metric.max:
        reason = f"{metric.key} {_num(canary)} > max {_num(metric.max)} (stable {_num(stable)})"
        return _result(metric, stable, canary, "Fail", reason)
    if metric.max_increase is not None:
        few = w.too_few(baseline=True)
        if few or stable is None:
            return _result(metric, stable, canary, "Inconclusive", f"{metric.key}: {few}")
        p_value = increase_p_value(*error_counts(w.canary), *error_counts(w.stable))
        if canary - stable > metric.max_increase and p_value < SIGNIFICANCE:
            reason = (
                f"{metric.key} {_num(canary)} > stable {_num(stable)} + maxIncrease "
                f"{_num(metric.max_increase)} (p={p_value:.2g})"
            )
            return _result(metric, stable, canary, "Fail", reason)
    reason = f"{metric.key} {_num(canary)} within {metric.limit} (stable {_num(stable)})"
    return _result(metric, stable, canary, "Pass", reason)


def _latency(metric: MetricSpec, w: _Window) -> MetricResult:
    stable = histogram_quantile(0.99, w.stable.latency)
    canary = histogram_quantile(0.99, w.canary.latency)
    few = w.too_few(baseline=False)
    if few or canary is None:
        why = few or "the canary's latency histogram has no observations"
        return _result(metric, stable, canary, "Inconclusive", f"{metric.key}: {why}")
    if metric.max_seconds is not None and canary > metric.max_seconds:
        reason = (
            f"{metric.key} {_num(canary)}s > maxSeconds {_num(metric.max_seconds)}s "
            f"(stable {_num(stable)}s)"
        )
        return _result(metric, stable, canary, "Fail", reason)
    if metric.max_ratio is not None:
        few = w.too_few(baseline=True)
        if few or stable is None or stable <= 0:
            why = few or "the stable's latency histogram has no observations"
            return _result(metric, stable, canary, "Inconclusive", f"{metric.key}: {why}")
        ratio = canary / stable
        if ratio > metric.max_ratio:
            reason = (
                f"{metric.key} {_num(canary)}s is {ratio:.2f}x stable {_num(stable)}s "
                f"> maxRatio {_num(metric.max_ratio)}"
            )
            return _result(metric, stable, canary, "Fail", reason)
    reason = f"{metric.key} {_num(canary)}s within {metric.limit} (stable {_num(stable)}s)"
    return _result(metric, stable, canary, "Pass", reason)


def _divergence(metric: MetricSpec, w: _Window) -> MetricResult | None:
    if metric.when_available and not (w.stable.has_predictions and w.canary.has_predictions):
        return None
    few = w.too_few(baseline=True)
    if few:
        return _result(metric, None, None, "Inconclusive", f"{metric.key}: {few}")
    distributions = output_distributions(w.stable, w.canary)
    if isinstance(distributions, str):
        return _result(metric, None, None, "Inconclusive", f"{metric.key}: {distributions}")
    divergence = jensen_shannon(*distributions)
    if divergence is None:
        why = "no predictions counted in the window"
        return _result(metric, None, None, "Inconclusive", f"{metric.key}: {why}")
    assert metric.max is not None  # parse_analysis gives every divergence metric a max
    verdict: Verdict = "Fail" if divergence > metric.max else "Pass"
    relation = ">" if verdict == "Fail" else "<="
    reason = f"{metric.key} {_num(divergence)} {relation} max {_num(metric.max)} (JSD vs stable)"
    return _result(metric, None, divergence, verdict, reason)


def _outside(metric: MetricSpec, value: float) -> str:
    if metric.min is not None and value < metric.min:
        return f"< min {_num(metric.min)}"
    if metric.max is not None and value > metric.max:
        return f"> max {_num(metric.max)}"
    return ""


def _request_rate(metric: MetricSpec, w: _Window) -> MetricResult:
    if w.interval_s <= 0:
        return _result(metric, None, None, "Inconclusive", f"{metric.key}: no interval")
    stable = w.stable.total_requests / w.interval_s
    canary = w.canary.total_requests / w.interval_s
    # A count is exact, not a sample: a rate outside its limits fails even on few requests.
    outside = _outside(metric, canary)
    if outside:
        reason = f"{metric.key} {_num(canary)}/s {outside}/s (stable {_num(stable)}/s)"
        return _result(metric, stable, canary, "Fail", reason)
    few = w.too_few(baseline=False)
    if few:
        return _result(metric, stable, canary, "Inconclusive", f"{metric.key}: {few}")
    reason = f"{metric.key} {_num(canary)}/s within {metric.limit} (stable {_num(stable)}/s)"
    return _result(metric, stable, canary, "Pass", reason)


def _custom(metric: MetricSpec, w: _Window) -> MetricResult:
    value = w.custom_values.get(metric.key)
    if value is not None and math.isnan(value):
        value = None
    few = w.too_few(baseline=False)
    if few or value is None:
        why = few or "the provider has no value for its query"
        return _result(metric, None, value, "Inconclusive", f"{metric.key}: {why}")
    outside = _outside(metric, value)
    if outside:
        return _result(metric, None, value, "Fail", f"{metric.key} {_num(value)} {outside}")
    reason = f"{metric.key} {_num(value)} within {metric.limit}"
    return _result(metric, None, value, "Pass", reason)


_NO_VALUES: Mapping[str, float | None] = MappingProxyType({})


def judge(
    metrics: Sequence[MetricSpec],
    stable: Snapshot,
    canary: Snapshot,
    *,
    min_samples: int,
    interval_s: float,
    custom_values: Mapping[str, float | None] = _NO_VALUES,
) -> list[MetricResult]:
    """A verdict per metric on one window (`window` deltas of both revisions, same interval).

    Fewer than `min_samples` canary requests (and stable requests, where the stable is
    the baseline) or a missing figure is Inconclusive, never Pass; a request rate outside
    its limits is the one Fail that needs no minimum (a count is exact). `custom_values`
    holds what a provider computed for each custom metric, by `MetricSpec.key`. The
    default prediction-divergence is left out for a model that exposes no predictions.
    """
    w = _Window(stable, canary, min_samples, interval_s, custom_values)
    results: list[MetricResult] = []
    for metric in metrics:
        result: MetricResult | None
        if metric.name == "error-rate":
            result = _error_rate(metric, w)
        elif metric.name == "latency-p99":
            result = _latency(metric, w)
        elif metric.name == "prediction-divergence":
            result = _divergence(metric, w)
        elif metric.name == "request-rate":
            result = _request_rate(metric, w)
        else:
            result = _custom(metric, w)
        if result is not None:
            results.append(result)
    return results


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
    failed = [r for r in results if r.verdict == "Fail"]
    unsure = [r for r in results if r.verdict == "Inconclusive"]
    metric_failures = dict(previous.metric_failures)
    for result in failed:
        metric_failures[result.name] = metric_failures.get(result.name, 0) + 1
    verdict = "Fail" if failed else "Inconclusive" if unsure or not results else "Pass"
    state = AnalysisState(
        intervals=intervals,
        failures=previous.failures + (verdict == "Fail"),
        inconclusive=previous.inconclusive + (verdict == "Inconclusive"),
        last_verdict=verdict,
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
    if verdict == "Inconclusive":
        outcome = Rollback if on_inconclusive == "rollback" else Pause
        return state, outcome(f"analysis inconclusive: {unsure_reason}")
    return state, Continue(f"analysis passed: {len(results)} metrics in interval {intervals}")
