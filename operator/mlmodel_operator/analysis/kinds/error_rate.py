"""error-rate: 5xx answers over all answered inference requests.

A 4xx is the client's fault, not the model's. `max` is an absolute limit; `maxIncrease`
compares with the stable and fails only when the increase is also statistically
significant (a one-sided two-proportion z-test, p < 0.05), so a handful of requests
cannot flap it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict, Window, num, result
from mlmodel_operator.analysis.windows import error_counts, error_rate, increase_p_value

SIGNIFICANCE = 0.05  # p-value below which an error-rate increase counts as real


class ErrorRate:
    name = "error-rate"
    limits = ("max", "maxIncrease")
    defaults: Mapping[str, float] = {"max": 0.05, "maxIncrease": 0.01}
    reads = frozenset({Series.REQUESTS})
    default: MetricSpec | None = MetricSpec("error-rate", max=0.05, max_increase=0.01)

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return metric.max_increase is not None

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return None if metric.max is None else replace(metric, max_increase=None)

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        stable, canary = error_rate(w.stable), error_rate(w.canary)
        few = w.too_few(baseline=False)
        if few or canary is None:
            return result(metric, stable, canary, Verdict.INCONCLUSIVE, f"{metric.key}: {few}")
        if metric.max is not None and canary > metric.max:
            reason = f"{metric.key} {num(canary)} > max {num(metric.max)} (stable {num(stable)})"
            return result(metric, stable, canary, Verdict.FAIL, reason)
        if metric.max_increase is not None:
            few = w.too_few(baseline=True)
            if few or stable is None:
                why = f"{metric.key}: {few}"
                return result(metric, stable, canary, Verdict.INCONCLUSIVE, why)
            p_value = increase_p_value(*error_counts(w.canary), *error_counts(w.stable))
            if canary - stable > metric.max_increase and p_value < SIGNIFICANCE:
                reason = (
                    f"{metric.key} {num(canary)} > stable {num(stable)} + maxIncrease "
                    f"{num(metric.max_increase)} (p={p_value:.2g})"
                )
                return result(metric, stable, canary, Verdict.FAIL, reason)
        reason = f"{metric.key} {num(canary)} within {metric.limit} (stable {num(stable)})"
        return result(metric, stable, canary, Verdict.PASS, reason)
