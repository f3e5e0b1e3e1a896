"""Windows of metric snapshots, and the statistics canary analysis judges on them.

Pure functions: `window` turns the snapshots taken at an interval's start and end into
what happened in between (counter resets and new series handled); the rest computes
an error rate, the significance of an error-rate increase (a one-sided two-proportion
z-test), a quantile from histogram buckets as Prometheus's `histogram_quantile` does,
and the Jensen-Shannon divergence of two output distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mlmodel_operator.analysis.exposition import Histogram, Snapshot

# p-value below which a revision sheds a larger share of its requests than the other
# by more than chance (`error_counts`).
SHED_SIGNIFICANCE = 0.05
# A revision's pods must serve fewer requests each than this share of the other's for
# its shedding to count as less capacity: CPU noise between pods of one node is a few
# percent, and the canary must not be rolled back for it.
CAPACITY_TOLERANCE = 0.9

# --- windows ----------------------------------------------------------------------------


def _counter_deltas(start: Mapping[str, float], end: Mapping[str, float]) -> dict[str, float]:
    return {
        key: value - start[key] if key in start and value >= start[key] else value
        for key, value in end.items()
    }


def _histogram_delta(start: Histogram | None, end: Histogram | None) -> Histogram | None:
    if start is None or end is None:
        return end
    common = set(start.bounds) & set(end.bounds)
    first, last = start.coarsen(common), end.coarsen(common)
    pairs = list(zip(first.buckets, last.buckets, strict=True))
    # A histogram's buckets reset together; judging them one by one could leave a
    # non-cumulative histogram behind.
    if last.count < first.count or any(c_end < c_start for (_, c_start), (_, c_end) in pairs):
        return end
    return Histogram(
        buckets=tuple((bound, c_end - c_start) for (bound, c_start), (_, c_end) in pairs),
        count=last.count - first.count,
        sum=last.sum - first.sum,
    )


def window(start: Snapshot, end: Snapshot) -> Snapshot:
    """What happened between two snapshots of the same pods: the increase of each series.

    A series lower at the end than at the start was reset (the pod restarted), so its end
    value is all that happened since, and is the delta; a series only at the end appeared
    during the window (a new pod or a first request of that code) and counts in full; a
    series only at the start is gone and counts nothing. A histogram resets as a whole.

    Both providers pass sums over a revision's pods (status keeps one snapshot per
    revision), so a pod's reset can hide behind the others' growth (reads low) and a
    sum that drops because a pod left reads as a reset (reads high): one interval is
    skewed, and ratios less than counts. A reset is also undercounted when the
    restarted pod has already counted past its old value: rare, and small.

    >>> from mlmodel_operator.analysis.exposition import Snapshot
    >>> window(Snapshot(requests={"200": 900.0, "500": 9.0}),
    ...        Snapshot(requests={"200": 1000.0, "500": 2.0, "503": 1.0})).requests
    {'200': 100.0, '500': 2.0, '503': 1.0}
    """
    return Snapshot(
        requests=_counter_deltas(start.requests, end.requests),
        shed=_counter_deltas(start.shed, end.shed),
        pods=end.pods,
        latency=_histogram_delta(start.latency, end.latency),
        classes=_counter_deltas(start.classes, end.classes),
        values=_histogram_delta(start.values, end.values),
        inputs={
            feature: _counter_deltas(start.inputs.get(feature, {}), buckets)
            for feature, buckets in end.inputs.items()
        },
        input_baseline=end.input_baseline,
        outputs=_counter_deltas(start.outputs, end.outputs),
        output_baseline=end.output_baseline,
    )


# --- statistics -------------------------------------------------------------------------


def error_counts(snapshot: Snapshot, shed_reference: Snapshot | None = None) -> tuple[float, float]:
    """(5xx answers, all answers). 4xx are not errors: a malformed request is the client's
    fault and says nothing about the model version, yet it still was a request served.

    A 503 the runtime shed at one of its bounds (`Snapshot.shed`) says a server was at
    capacity. That is a verdict on the version only when its capacity is lower than
    the other's, so shed 503s are set aside, counted neither as errors nor as requests,
    unless, against `shed_reference` (the stable, in the same window), the snapshot

    - sheds a larger share of its requests, by more than chance (the one-sided
      two-proportion test of `increase_p_value`, p < 0.05), and
    - serves fewer requests per pod, by more than `CAPACITY_TOLERANCE`: a stable pod
      serving more without being refused shows the stable's capacity is higher.

    Then the shed 503s beyond the reference's share are errors. The second condition
    matters because the weight routers keep the stable whole during a canary (its
    pods share 1 - weight of the traffic) while the canary's pods carry the weight's
    share of a whole set: per pod the canary takes up to 1 / (1 - weight) times the
    stable's load, and a canary as fast as the stable sheds first in a busy cluster.

    The stable's own figure is taken with itself as the reference (all its shed 503s
    set aside). Without a reference (no stable traffic to compare with, or the stable
    monitored alone) every shed 503 is set aside: capacity is then the autoscaler's
    and the alerts' business (`mlmodel_rejected_requests_total`), not a verdict on the
    version.

    A canary with 2 pods shedding 30 of 100 requests beside a stable of 2 pods shedding
    10 of 100 (p = 0.0002) serves 35 requests per pod against 45: 20 errors in 90. With
    4 stable pods (22.5 requests each) it has the higher capacity: none in 70.

    >>> from dataclasses import replace
    >>> canary = Snapshot(requests={"200": 70.0, "503": 30.0}, shed={"queue": 30.0}, pods=2)
    >>> stable = Snapshot(requests={"200": 90.0, "503": 10.0}, shed={"queue": 10.0}, pods=2)
    >>> error_counts(canary, stable), error_counts(canary, replace(stable, pods=4))
    ((20.0, 90.0), (0.0, 70.0))
    >>> error_counts(stable, stable), error_counts(canary)
    ((0.0, 90.0), (0.0, 70.0))
    """
    errors = _server_errors(snapshot)
    total = snapshot.total_requests
    shed = _shed(snapshot)
    if sheds_for_want_of_capacity(snapshot, shed_reference):
        assert shed_reference is not None
        share = shed_reference.total_shed / shed_reference.total_requests
        shed = min(shed, total * min(share, 1.0))
    return errors - shed, total - shed


def _server_errors(snapshot: Snapshot) -> float:
    return sum(v for code, v in snapshot.requests.items() if code.startswith("5"))


def _shed(snapshot: Snapshot) -> float:
    return min(snapshot.total_shed, _server_errors(snapshot))  # each was answered 503


def sheds_for_want_of_capacity(snapshot: Snapshot, reference: Snapshot | None) -> bool:
    """Whether `snapshot` shed a larger share than `reference` and served less per pod
    (see `error_counts`)."""
    shed = _shed(snapshot)
    if reference is None or reference.total_requests <= 0 or shed <= 0:
        return False
    reference_shed, reference_total = reference.total_shed, reference.total_requests
    total = snapshot.total_requests
    if increase_p_value(shed, total, reference_shed, reference_total) >= SHED_SIGNIFICANCE:
        return False
    if snapshot.pods <= 0 or reference.pods <= 0:
        return True  # pods unknown: the shares alone
    per_pod = (total - shed) / snapshot.pods
    reference_per_pod = (reference_total - reference_shed) / reference.pods
    return per_pod < CAPACITY_TOLERANCE * reference_per_pod


def error_rate(snapshot: Snapshot, shed_reference: Snapshot | None = None) -> float | None:
    errors, total = error_counts(snapshot, shed_reference)
    return errors / total if total > 0 else None


def increase_p_value(
    canary_errors: float, canary_total: float, stable_errors: float, stable_total: float
) -> float:
    """One-sided p-value that the canary's error rate is higher than the stable's only by
    chance: the two-proportion z-test with pooled variance.

        p_c = x_c / n_c,  p_s = x_s / n_s,  p = (x_c + x_s) / (n_c + n_s)
        z   = (p_c - p_s) / sqrt(p (1 - p) (1/n_c + 1/n_s)),   p-value = P(Z > z)

    60 errors in 1000 canary requests against 5 in 1000 on stable: p = 0.0325,
    sqrt(0.0325 * 0.9675 * 0.002) = 0.00793, z = 0.055 / 0.00793 = 6.94, p-value 2e-12:
    a real increase. 1 in 20 against 0 in 20: p = 0.025, sqrt(0.025 * 0.975 * 0.1) =
    0.0494, z = 0.05 / 0.0494 = 1.01, p-value 0.16: could well be chance.

    >>> round(increase_p_value(1, 20, 0, 20), 2)
    0.16
    """
    if canary_total <= 0 or stable_total <= 0:
        return 1.0
    difference = canary_errors / canary_total - stable_errors / stable_total
    pooled = (canary_errors + stable_errors) / (canary_total + stable_total)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / canary_total + 1 / stable_total))
    if spread == 0:  # no errors anywhere, or nothing but errors: no difference
        return 1.0 if difference <= 0 else 0.0
    return 0.5 * math.erfc(difference / spread / math.sqrt(2))


def histogram_quantile(q: float, histogram: Histogram | None) -> float | None:
    """The q-quantile the way Prometheus's histogram_quantile computes it: find the bucket
    holding rank q * observations and interpolate linearly inside it (from 0 for the first
    bucket when its bound is positive); a rank in the +Inf bucket gives the highest finite
    bound. None when undefined: no histogram, no +Inf bucket, no observations.

    100 observations, cumulative {0.01: 90, 0.015: 100, +Inf: 100}: rank 99 is in
    (0.01, 0.015], 9 of its 10 observations in, so p99 = 0.01 + 0.005 * 9/10 = 0.0145.
    """
    if histogram is None or len(histogram.buckets) < 2:
        return None
    if histogram.buckets[-1][0] != math.inf:
        return None
    bounds = [bound for bound, _ in histogram.buckets]
    counts: list[float] = []
    for _, count in histogram.buckets:  # as Prometheus: force monotonic counts
        counts.append(max(count, counts[-1]) if counts else count)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next((i for i in range(len(counts) - 1) if counts[i] >= rank), len(counts) - 1)
    if index == len(counts) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, in_bucket = 0.0, counts[index]
    if index > 0:
        start = bounds[index - 1]
        in_bucket -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (bounds[index] - start) * (rank / in_bucket)


def jensen_shannon(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Jensen-Shannon divergence, base 2, of two histograms over the same bins (counts or
    probabilities): 0 for identical distributions, 1 for disjoint ones. None when either
    is empty.

        JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2,  M = (P + Q) / 2,  0 log 0 = 0

    Why not the population stability index, common in model monitoring: PSI sums
    (p - q) ln(p / q), infinite or undefined as soon as one side has an empty bin (a class
    the canary never predicted in 30 s, an empty tail bucket), asymmetric, and unbounded,
    so a fixed limit means little. JSD compares each side with their mixture, which is
    never zero where either side has mass: always defined, symmetric, within [0, 1].

    >>> jensen_shannon([5, 5], [5, 5]), jensen_shannon([10, 0], [0, 10])
    (0.0, 1.0)
    """
    total_first, total_second = sum(first), sum(second)
    if total_first <= 0 or total_second <= 0:
        return None
    divergence = 0.0
    for a, b in zip(first, second, strict=True):
        p, q = a / total_first, b / total_second
        m = (p + q) / 2
        if p > 0:
            divergence += p / 2 * math.log2(p / m)
        if q > 0:
            divergence += q / 2 * math.log2(q / m)
    return min(max(divergence, 0.0), 1.0)


def output_distributions(
    stable: Snapshot, canary: Snapshot
) -> tuple[list[float], list[float]] | str:
    """The two revisions' prediction counts over the same bins (class frequencies, or
    value-histogram bucket masses over the bounds both have), or why there are none."""
    if stable.classes and canary.classes:
        classes = sorted(set(stable.classes) | set(canary.classes))
        return (
            [stable.classes.get(c, 0.0) for c in classes],
            [canary.classes.get(c, 0.0) for c in classes],
        )
    if stable.values is not None and canary.values is not None:
        common = set(stable.values.bounds) & set(canary.values.bounds)
        return list(stable.values.coarsen(common).masses()), list(
            canary.values.coarsen(common).masses()
        )
    if stable.has_predictions and canary.has_predictions:
        return "stable and canary expose different kinds of predictions"
    missing = "stable" if not stable.has_predictions else "canary"
    return f"the {missing} exposes no predictions (no label output)"
