"""custom: the user's PromQL (Prometheus provider only), its single result within min/max.
The query may use {{namespace}}, {{name}}, {{revision}} (the canary's) and {{interval}}."""

from __future__ import annotations

import math
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
from mlmodel_operator.errors import SpecError


class Custom:
    name = "custom"
    limits = ("min", "max")
    defaults: Mapping[str, float] = {}
    reads = frozenset({Series.REQUESTS, Series.QUERY})
    default: MetricSpec | None = None
    sequential = False  # a count or a query's value: judged per interval in either mode

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del raw
        if not metric.query:
            raise SpecError("a custom analysis metric needs prometheus.query")

    def needs_baseline(self, metric: MetricSpec) -> bool:
        del metric
        return False

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return metric

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        value = w.custom_values.get(metric.key)
        if value is not None and math.isnan(value):
            value = None
        few = w.too_few(baseline=False)
        if few or value is None:
            why = few or "the provider has no value for its query"
            return result(metric, None, value, Verdict.INCONCLUSIVE, f"{metric.key}: {why}")
        breaks = outside(metric, value)
        if breaks:
            return result(metric, None, value, Verdict.FAIL, f"{metric.key} {num(value)} {breaks}")
        reason = f"{metric.key} {num(value)} within {metric.limit}"
        return result(metric, None, value, Verdict.PASS, reason)

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        del metric, totals
        return None
