"""request-rate: inference requests per second the canary answered, within min/max.
A count is exact, not a sample: a rate outside its limits fails even on few requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.metric import (
    MetricResult,
    MetricSpec,
    Totals,
    Verdict,
    Window,
    num,
    outside,
    result,
)


class RequestRate:
    name = "request-rate"
    limits = ("min", "max")
    defaults: Mapping[str, float] = {}
    reads = frozenset({Series.REQUESTS})
    default: MetricSpec | None = None
    sequential = False  # a count or a query's value: judged per interval in either mode

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        del metric
        return False

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return metric

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        if w.interval_s <= 0:
            return result(metric, None, None, Verdict.INCONCLUSIVE, f"{metric.key}: no interval")
        stable = w.stable.total_requests / w.interval_s
        canary = w.canary.total_requests / w.interval_s
        breaks = outside(metric, canary)
        if breaks:
            reason = f"{metric.key} {num(canary)}/s {breaks}/s (stable {num(stable)}/s)"
            return result(metric, stable, canary, Verdict.FAIL, reason)
        few = w.too_few(baseline=False)
        if few:
            return result(metric, stable, canary, Verdict.INCONCLUSIVE, f"{metric.key}: {few}")
        reason = f"{metric.key} {num(canary)}/s within {metric.limit} (stable {num(stable)}/s)"
        return result(metric, stable, canary, Verdict.PASS, reason)

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        del metric, totals
        return None
