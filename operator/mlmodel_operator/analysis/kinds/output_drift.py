"""output-drift: how far a revision's predictions are from the training environment's,
as the Jensen-Shannon divergence between the window's predicted class counts (or a
regressor's predicted values per baseline bucket) and the shares the model predicted
on the training sample (`mlmodel_output_baseline_share`). The same limits and default
as input-drift (`maxIncrease` 0.05 over the stable, or an absolute `max`): where
prediction-divergence compares the canary with the stable, this compares both with
training, so a canary whose predictions move away from what training saw while the
stable's do not fails, and a world that moves both passes the relative limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.kinds.input_drift import NO_BASELINE, judge_distances
from mlmodel_operator.analysis.metric import (
    MetricResult,
    MetricSpec,
    Totals,
    Verdict,
    Window,
    result,
)
from mlmodel_operator.analysis.windows import jensen_shannon

OUTPUT = "output"  # how the reason names the feature


def drift(snapshot: Snapshot, min_rows: float) -> dict[str, float]:
    """{"output": JSD} between the window's predictions and the training shares, when
    there are at least `min_rows` of them; {} otherwise."""
    shares = snapshot.output_baseline
    live_counts = snapshot.outputs or snapshot.classes
    buckets = sorted(shares)
    live = [live_counts.get(b, 0.0) for b in buckets]
    if not shares or sum(live) < max(min_rows, 1.0):
        return {}
    distance = jensen_shannon(live, [shares[b] for b in buckets])
    return {} if distance is None else {OUTPUT: distance}


class OutputDrift:
    name = "output-drift"
    limits = ("max", "maxIncrease")
    defaults: Mapping[str, float] = {"maxIncrease": 0.05}
    reads = frozenset({Series.REQUESTS, Series.PREDICTIONS, Series.INPUTS})
    default: MetricSpec | None = None  # only when asked for
    sequential = False

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return metric.max_increase is not None

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return None if metric.max is None else replace(metric, max_increase=None)

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult | None:
        if not w.canary.output_baseline:
            return result(metric, None, None, Verdict.INCONCLUSIVE, f"{metric.key}: {NO_BASELINE}")
        return judge_distances(
            metric,
            canary=drift(w.canary, w.min_samples),
            stable=drift(w.stable, w.min_samples),
            rows=f"minSamples {w.min_samples}",
            judged=w.judged,
        )

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        del metric, totals
        return None
