"""latency-p99: the 99th percentile of inference latency, from the histogram buckets as
Prometheus's `histogram_quantile` computes it. `maxSeconds` is absolute; `maxRatio`
compares with the stable over the same window.

Sequential mode tests the p99 itself (not the interpolated `histogram_quantile`) through
the share of requests above bucket bounds (`sequential.latency_log_e`): a p99 at most
s leaves at most 1% of the requests above s. The stable's side counts all it served
since its pods started: showing that its p99 is low takes thousands of requests, and
its history has them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.metric import (
    MetricResult,
    MetricSpec,
    Totals,
    Verdict,
    Window,
    num,
    result,
    tested,
)
from mlmodel_operator.analysis.sequential import latency_log_e, verdict_of
from mlmodel_operator.analysis.windows import histogram_quantile


class LatencyP99:
    name = "latency-p99"
    limits = ("maxSeconds", "maxRatio")
    defaults: Mapping[str, float] = {"maxRatio": 2.0}
    reads = frozenset({Series.REQUESTS, Series.LATENCY})
    default: MetricSpec | None = MetricSpec("latency-p99", max_ratio=2.0)
    sequential = True

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

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult:
        stable = histogram_quantile(0.99, totals.stable.latency)
        canary = histogram_quantile(0.99, totals.canary.latency)
        compare = metric.max_ratio is not None
        few = totals.too_few(baseline=compare)
        history = totals.stable_before.merge(totals.stable).latency
        if totals.canary.latency is None or (compare and history is None):
            few = few or "no latency histogram read"
            log_e = 0.0
        else:
            log_e = latency_log_e(
                totals.canary.latency.buckets,
                history.buckets if history else None,
                max_seconds=metric.max_seconds,
                max_ratio=metric.max_ratio,
            )
        beyond = ""
        if metric.max_seconds is not None and canary is not None and canary > metric.max_seconds:
            beyond = f"{num(canary)}s > maxSeconds {num(metric.max_seconds)}s"
        elif (
            metric.max_ratio is not None
            and canary is not None
            and stable is not None
            and stable > 0
            and canary / stable > metric.max_ratio
        ):
            beyond = f"{canary / stable:.2f}x stable > maxRatio {num(metric.max_ratio)}"
        verdict, evidence, why = verdict_of(log_e, totals.alpha, few, beyond)
        figures = f"{metric.key} {num(canary)}s (stable {num(stable)}s)"
        return tested(metric, stable, canary, verdict, evidence, figures=figures, why=why)
