"""latency-p99: the 99th percentile of inference latency, from the histogram buckets as
Prometheus's `histogram_quantile` computes it. `maxSeconds` is absolute; `maxRatio`
compares with the stable over the same window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict, Window, num, result
from mlmodel_operator.analysis.windows import histogram_quantile


class LatencyP99:
    name = "latency-p99"
    limits = ("maxSeconds", "maxRatio")
    defaults: Mapping[str, float] = {"maxRatio": 2.0}
    reads = frozenset({Series.REQUESTS, Series.LATENCY})
    default: MetricSpec | None = MetricSpec("latency-p99", max_ratio=2.0)

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return metric.max_ratio is not None

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return None if metric.max_seconds is None else replace(metric, max_ratio=None)

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        stable = histogram_quantile(0.99, w.stable.latency)
        canary = histogram_quantile(0.99, w.canary.latency)
        few = w.too_few(baseline=False)
        if few or canary is None:
            why = few or "the canary's latency histogram has no observations"
            return result(metric, stable, canary, Verdict.INCONCLUSIVE, f"{metric.key}: {why}")
        if metric.max_seconds is not None and canary > metric.max_seconds:
            reason = (
                f"{metric.key} {num(canary)}s > maxSeconds {num(metric.max_seconds)}s "
                f"(stable {num(stable)}s)"
            )
            return result(metric, stable, canary, Verdict.FAIL, reason)
        if metric.max_ratio is not None:
            few = w.too_few(baseline=True)
            if few or stable is None or stable <= 0:
                why = few or "the stable's latency histogram has no observations"
                return result(metric, stable, canary, Verdict.INCONCLUSIVE, f"{metric.key}: {why}")
            ratio = canary / stable
            if ratio > metric.max_ratio:
                reason = (
                    f"{metric.key} {num(canary)}s is {ratio:.2f}x stable {num(stable)}s "
                    f"> maxRatio {num(metric.max_ratio)}"
                )
                return result(metric, stable, canary, Verdict.FAIL, reason)
        reason = f"{metric.key} {num(canary)}s within {metric.limit} (stable {num(stable)}s)"
        return result(metric, stable, canary, Verdict.PASS, reason)
