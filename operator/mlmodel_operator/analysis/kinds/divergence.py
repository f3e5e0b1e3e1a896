"""prediction-divergence: how differently the canary answers than the stable, as the
Jensen-Shannon divergence (base 2, in [0, 1]) of their output distributions over the same
window: predicted classes for a classifier, value histograms for a regressor. Not PSI:
JSD is bounded and symmetric, so one limit means the same for every model. Always a
comparison with the stable.

Sequential mode fails when a lower confidence bound of the divergence, valid at every
read at once (`sequential.divergence_lower_bound`), is above `max`: the canary is then
known to answer differently, not merely seen to."""

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
    result,
)
from mlmodel_operator.analysis.sequential import divergence_lower_bound
from mlmodel_operator.analysis.windows import jensen_shannon, output_distributions


class PredictionDivergence:
    name = "prediction-divergence"
    limits = ("max",)
    defaults: Mapping[str, float] = {"max": 0.1}
    reads = frozenset({Series.REQUESTS, Series.PREDICTIONS})
    # By default only for models that expose predictions.
    default: MetricSpec | None = MetricSpec("prediction-divergence", max=0.1, when_available=True)
    sequential = True

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        del metric
        return True

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        del metric
        return None

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult | None:
        if metric.when_available and not (w.stable.has_predictions and w.canary.has_predictions):
            return None
        few = w.too_few(baseline=True)
        if few:
            return result(metric, None, None, Verdict.INCONCLUSIVE, f"{metric.key}: {few}")
        distributions = output_distributions(w.stable, w.canary)
        if isinstance(distributions, str):
            why = f"{metric.key}: {distributions}"
            return result(metric, None, None, Verdict.INCONCLUSIVE, why)
        divergence = jensen_shannon(*distributions)
        if divergence is None:
            why = f"{metric.key}: no predictions counted in the window"
            return result(metric, None, None, Verdict.INCONCLUSIVE, why)
        assert metric.max is not None  # the parser gives every divergence metric a max
        verdict = Verdict.FAIL if divergence > metric.max else Verdict.PASS
        relation = ">" if verdict is Verdict.FAIL else "<="
        reason = f"{metric.key} {num(divergence)} {relation} max {num(metric.max)} (JSD vs stable)"
        return result(metric, None, divergence, verdict, reason)

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        stable, canary = totals.stable, totals.canary
        if metric.when_available and not (stable.has_predictions and canary.has_predictions):
            return None
        distributions = output_distributions(stable, canary)
        few = totals.too_few(baseline=True)
        if isinstance(distributions, str) or few:
            why = f"{metric.key}: {few or distributions}"
            return result(metric, None, None, Verdict.INCONCLUSIVE, why, 0.0)
        divergence = jensen_shannon(*distributions)
        if divergence is None:
            why = f"{metric.key}: no predictions counted yet"
            return result(metric, None, None, Verdict.INCONCLUSIVE, why, 0.0)
        assert metric.max is not None  # the parser gives every divergence metric a max
        bound = divergence_lower_bound(*distributions, totals.alpha)
        evidence = min(bound / metric.max, 1.0) if metric.max > 0 else float(bound > 0)
        seen = f"{metric.key} {num(divergence)}, at least {num(bound)} (alpha {totals.alpha:.2g})"
        if bound > metric.max:
            reason = f"{seen} > max {num(metric.max)} (JSD vs stable)"
            return result(metric, None, divergence, Verdict.FAIL, reason, 1.0)
        if divergence > metric.max:
            # Looks different, not shown to be yet: hold while the evidence builds.
            reason = f"{seen}: above max {num(metric.max)}, not shown beyond chance yet"
            return result(metric, None, divergence, Verdict.INCONCLUSIVE, reason, evidence)
        reason = f"{seen} <= max {num(metric.max)} so far (JSD vs stable)"
        return result(metric, None, divergence, Verdict.PASS, reason, evidence)
