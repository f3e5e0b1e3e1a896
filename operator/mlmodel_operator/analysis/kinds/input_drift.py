"""input-drift: how far the inputs a revision served are from the training data, per
feature, judged on the worst feature (named in the reason).

The runtime counts served rows into the buckets of the training baseline that convert
wrote from the parity reference or `--sample-data` (`mlmodel_input_bucket_total`,
with the training shares beside them, `mlmodel_input_baseline_share`). Per feature the
distance is the Jensen-Shannon divergence (base 2, in [0, 1]) between the window's
bucket counts and the training shares: bounded and defined even where a bucket is
empty on one side, where the population stability index is infinite (`windows.
jensen_shannon` says more). Features with fewer than `minSamples` rows in the window
are not judged.

Limits:
- `max`: the canary's worst feature may be at most this far from training;
- `maxIncrease`: the canary's drift may exceed the stable's on the same feature by at
  most this much. Stable and canary receive the same traffic, so a shift of the world
  moves both alike and passes; what fails is a canary that sees its inputs differently
  (a different preprocessing, a feature read from another column). The default.

A model served without a baseline is Inconclusive, saying how to get one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.metric import (
    MetricResult,
    MetricSpec,
    Totals,
    Verdict,
    Window,
    num,
    result,
)
from mlmodel_operator.analysis.windows import jensen_shannon

NO_BASELINE = (
    "the model serves no training baseline (convert it with spec.conversion.reference, "
    "a sample of training data, to get one)"
)


def drifts(snapshot: Snapshot, min_rows: float) -> dict[str, float]:
    """JSD per watched feature between the window's rows and the training shares, for
    the features with at least `min_rows` rows."""
    out: dict[str, float] = {}
    for feature, shares in snapshot.input_baseline.items():
        counted = snapshot.inputs.get(feature, {})
        buckets = sorted(shares, key=lambda b: int(b) if b.isdigit() else -1)
        live = [counted.get(b, 0.0) for b in buckets]
        if sum(live) < max(min_rows, 1.0):
            continue
        distance = jensen_shannon(live, [shares[b] for b in buckets])
        if distance is not None:
            out[feature] = distance
    return out


def judge_distances(
    metric: MetricSpec,
    *,
    canary: Mapping[str, float],
    stable: Mapping[str, float],
    rows: str,
    judged: str = "canary",
) -> MetricResult:
    """The verdict on distances from training per feature (or output): the canary's
    worst against `max`, its largest excess over the stable on the same feature
    against `maxIncrease`; the reason names the feature."""
    if not canary:
        why = f"{metric.key}: fewer than {rows} {judged} rows per feature"
        return result(metric, None, None, Verdict.INCONCLUSIVE, why)
    worst = max(canary, key=lambda f: canary[f])
    if metric.max is not None and canary[worst] > metric.max:
        reason = (
            f"{metric.key} {num(canary[worst])} on {worst} > max {num(metric.max)} "
            "(JSD vs training)"
        )
        return result(metric, None, canary[worst], Verdict.FAIL, reason)
    if metric.max_increase is None:
        reason = f"{metric.key} worst {worst} {num(canary[worst])} within {metric.limit}"
        return result(metric, None, canary[worst], Verdict.PASS, reason)
    shared = [f for f in canary if f in stable]
    if not shared:
        why = f"{metric.key}: fewer than {rows} stable rows per feature"
        return result(metric, None, canary[worst], Verdict.INCONCLUSIVE, why)
    feature = max(shared, key=lambda f: canary[f] - stable[f])
    increase = canary[feature] - stable[feature]
    if increase <= 0 and worst in shared:
        # No feature drifts more on the canary: name the worst one, not the first of
        # many tied at no increase.
        feature, increase = worst, canary[worst] - stable[worst]
    if increase > metric.max_increase:
        reason = (
            f"{metric.key} {num(canary[feature])} on {feature} > stable "
            f"{num(stable[feature])} + maxIncrease {num(metric.max_increase)} "
            "(JSD vs training)"
        )
        return result(metric, stable[feature], canary[feature], Verdict.FAIL, reason)
    reason = (
        f"{metric.key} worst {worst} {num(canary[worst])}, at most stable + "
        f"{num(max(increase, 0.0))} on {feature} (JSD vs training)"
    )
    return result(metric, stable[feature], canary[worst], Verdict.PASS, reason)


class InputDrift:
    name = "input-drift"
    limits = ("max", "maxIncrease")
    defaults: Mapping[str, float] = {"maxIncrease": 0.05}
    reads = frozenset({Series.REQUESTS, Series.INPUTS})
    default: MetricSpec | None = None  # only when asked for
    sequential = False

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return metric.max_increase is not None

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return None if metric.max is None else replace(metric, max_increase=None)

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult | None:
        if not w.canary.input_baseline:
            return result(metric, None, None, Verdict.INCONCLUSIVE, f"{metric.key}: {NO_BASELINE}")
        return judge_distances(
            metric,
            canary=drifts(w.canary, w.min_samples),
            stable=drifts(w.stable, w.min_samples),
            rows=f"minSamples {w.min_samples}",
            judged=w.judged,
        )

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        del metric, totals
        return None
