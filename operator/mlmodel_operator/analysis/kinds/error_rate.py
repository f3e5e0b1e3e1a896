"""error-rate: 5xx answers over all answered inference requests.

A 4xx is the client's fault, not the model's. A 503 the runtime shed at a bound
(overload) is set aside, except where the canary sheds a significantly larger share
than the stable in the same window while serving fewer requests per pod: then the
excess counts as errors (`windows.error_counts`). A busy cluster sheds on both
revisions and must not roll a good canary back; a canary with less capacity sheds
more and must. `max` is an absolute limit; `maxIncrease`
compares with the stable and fails only when the increase is also statistically
significant (a one-sided two-proportion z-test, p < 0.05), so a handful of requests
cannot flap it.

Sequential mode: one e-value against both limits at once
(`sequential.error_rate_log_e`); with `maxIncrease` half of the metric's alpha goes to
an upper confidence bound of the stable's rate over everything it served since its
pods started, half to the e-value.
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
    tested,
)
from mlmodel_operator.analysis.sequential import error_rate_log_e, upper_rate_bound, verdict_of
from mlmodel_operator.analysis.windows import (
    error_counts,
    error_rate,
    increase_p_value,
    sheds_for_want_of_capacity,
)

SIGNIFICANCE = 0.05  # p-value below which an error-rate increase counts as real


class ErrorRate:
    name = "error-rate"
    limits = ("max", "maxIncrease")
    defaults: Mapping[str, float] = {"max": 0.05, "maxIncrease": 0.01}
    reads = frozenset({Series.REQUESTS})
    default: MetricSpec | None = MetricSpec("error-rate", max=0.05, max_increase=0.01)
    sequential = True

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        del metric, raw

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return metric.max_increase is not None

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return None if metric.max is None else replace(metric, max_increase=None)

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        reference = None if w.too_few(baseline=True) else w.stable
        stable, canary = error_rate(w.stable, w.stable), error_rate(w.canary, reference)
        shed = _shed_note(w.canary, reference)
        few = w.too_few(baseline=False) or _few_unshed(w.canary, reference, w.min_samples)
        if few or canary is None:
            return result(metric, stable, canary, Verdict.INCONCLUSIVE, f"{metric.key}: {few}")
        if metric.max is not None and canary > metric.max:
            reason = (
                f"{metric.key} {num(canary)} > max {num(metric.max)} (stable {num(stable)}{shed})"
            )
            return result(metric, stable, canary, Verdict.FAIL, reason)
        if metric.max_increase is not None:
            few = w.too_few(baseline=True)
            if few or stable is None:
                why = f"{metric.key}: {few}"
                return result(metric, stable, canary, Verdict.INCONCLUSIVE, why)
            p_value = increase_p_value(
                *error_counts(w.canary, w.stable), *error_counts(w.stable, w.stable)
            )
            if canary - stable > metric.max_increase and p_value < SIGNIFICANCE:
                reason = (
                    f"{metric.key} {num(canary)} > stable {num(stable)} + maxIncrease "
                    f"{num(metric.max_increase)} (p={p_value:.2g}{shed})"
                )
                return result(metric, stable, canary, Verdict.FAIL, reason)
        reason = f"{metric.key} {num(canary)} within {metric.limit} (stable {num(stable)}{shed})"
        return result(metric, stable, canary, Verdict.PASS, reason)

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult:
        reference = None if totals.too_few(baseline=True) else totals.stable
        stable = error_rate(totals.stable, totals.stable)
        canary = error_rate(totals.canary, reference)
        x_c, n_c = error_counts(totals.canary, reference)
        x_s, n_s = error_counts(totals.stable, totals.stable)
        compare = metric.max_increase is not None
        alpha = totals.alpha / 2 if compare else totals.alpha
        ceiling = 1.0
        if compare:
            x_b, n_b = error_counts(totals.stable_before, totals.stable_before)
            ceiling = upper_rate_bound(x_b + x_s, n_b + n_s, alpha)
        log_e = error_rate_log_e(
            (x_c, n_c),
            (x_s, n_s) if compare else None,
            max_rate=metric.max,
            max_increase=metric.max_increase,
            stable_ceiling=ceiling,
        )
        beyond = ""
        if metric.max is not None and canary is not None and canary > metric.max:
            beyond = f"{num(canary)} > max {num(metric.max)}"
        elif (
            metric.max_increase is not None
            and canary is not None
            and stable is not None
            and canary - stable > metric.max_increase
        ):
            beyond = (
                f"{num(canary)} > stable {num(stable)} + maxIncrease {num(metric.max_increase)}"
            )
        few = totals.too_few(baseline=compare) or _few_unshed(
            totals.canary, reference, totals.min_samples
        )
        verdict, evidence, why = verdict_of(log_e, alpha, few, beyond)
        shed = _shed_note(totals.canary, reference)
        figures = f"{metric.key} {num(canary)} in {n_c:.0f} requests (stable {num(stable)}{shed})"
        return tested(metric, stable, canary, verdict, evidence, figures=figures, why=why)


def _shed_note(canary: Snapshot, reference: Snapshot | None) -> str:
    """What the reason adds when a revision shed load: both shares, and whether the
    canary's shed 503s were set against the stable's."""
    if canary.total_shed <= 0 and (reference is None or reference.total_shed <= 0):
        return ""
    shares = [
        f"{num(s.total_shed / s.total_requests)}" if s.total_requests > 0 else "n/a"
        for s in (canary, reference)
        if s is not None
    ]
    if reference is None:
        return f"; shed {shares[0]}, set aside: no stable traffic to compare"
    if sheds_for_want_of_capacity(canary, reference):
        return f"; shed {shares[0]}, stable {shares[1]}: the excess counted"
    return f"; shed {shares[0]}, stable {shares[1]}: set aside"


def _few_unshed(canary: Snapshot, reference: Snapshot | None, min_samples: int) -> str:
    """Why too few requests are left once the shed ones are set aside, or ''."""
    counted = error_counts(canary, reference)[1]
    if canary.total_shed > 0 and counted < min_samples:
        return f"{counted:.0f} requests not shed, fewer than minSamples {min_samples}"
    return ""
