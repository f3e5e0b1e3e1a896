"""Sequential analysis: the anytime-valid statistics, and the loop that runs them at
every reading. The false-alarm test simulates whole rollouts through `step`, the code
the operator runs, looked at after every reading."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from mlmodel_operator.analysis.judging import Rollback
from mlmodel_operator.analysis.loop import SEQUENTIAL_READ_S, AnalysisRecord, step
from mlmodel_operator.analysis.metric import Verdict
from mlmodel_operator.analysis.sequential import (
    divergence_lower_bound,
    error_rate_log_e,
    latency_log_e,
    log_likelihood,
    log_mixture,
    rate_bounds,
)
from mlmodel_operator.analysis.spec import parse_analysis
from mlmodel_operator.analysis.windows import jensen_shannon
from mlmodel_operator.errors import SpecError
from tests.helpers.simulate import Stream, run, simulate_rollouts

pytestmark = pytest.mark.unit


# --- the statistics ---------------------------------------------------------------------------


def test_the_mixture_likelihood_is_the_product_of_predictive_probabilities() -> None:
    """B(a + x, b + n - x) / B(a, b) equals the sequential Bayesian predictive product,
    in any order: why the e-value depends only on the cumulative counts."""
    outcomes = [1, 0, 0, 1, 0, 0, 0, 1]
    for order in (outcomes, sorted(outcomes), sorted(outcomes, reverse=True)):
        log_p, x = 0.0, 0
        for n, y in enumerate(order):
            p_one = (0.5 + x) / (1.0 + n)
            log_p += math.log(p_one if y else 1 - p_one)
            x += y
        assert log_p == pytest.approx(log_mixture(3, 8))


def test_the_rate_bounds_hold_the_sample_rate_and_narrow_with_data() -> None:
    widths = []
    for n in (20, 200, 2000):
        low, high = rate_bounds(n / 10, n, 0.01)
        assert low < 0.1 < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert rate_bounds(0, 0, 0.01) == (0.0, 1.0)
    assert rate_bounds(0, 500, 0.01)[0] == 0.0


def test_the_rate_bounds_are_exactly_where_the_martingale_reaches_one_over_alpha() -> None:
    low, high = rate_bounds(30, 300, 0.01)
    for edge in (low, high):
        assert log_mixture(30, 300) - log_likelihood(30, 300, edge) == pytest.approx(
            math.log(100), abs=1e-6
        )


def test_an_error_free_canary_gives_no_evidence_and_a_bad_one_a_lot() -> None:
    good = error_rate_log_e((0, 500), (0, 500), max_rate=0.05, max_increase=0.01)
    bad = error_rate_log_e((50, 500), (0, 500), max_rate=0.05, max_increase=0.01)
    assert good < 0
    assert bad > math.log(1e6)


def test_the_stable_ceiling_lends_the_stables_history_to_the_comparison() -> None:
    """12 errors in 120 canary requests against 0 in 120 stable: the stable's own 120
    leave room for a stable rate near 3%; its 10,000 error-free requests before the
    attempt do not, so the same counts are much stronger evidence."""
    alone = error_rate_log_e((12, 120), (0, 120), max_rate=None, max_increase=0.01)
    ceiling = rate_bounds(0, 10_120, 0.005)[1]
    informed = error_rate_log_e(
        (12, 120), (0, 120), max_rate=None, max_increase=0.01, stable_ceiling=ceiling
    )
    assert informed > alone + 2


def test_only_the_max_limit_needs_no_stable() -> None:
    assert error_rate_log_e((50, 500), None, max_rate=0.05, max_increase=None) > 0
    assert error_rate_log_e((5, 500), None, max_rate=0.05, max_increase=None) < 0


def cumulative_buckets(masses: dict[float, float]) -> list[tuple[float, float]]:
    total, out = 0.0, []
    for bound in sorted(masses):
        total += masses[bound]
        out.append((bound, total))
    return out


def test_latency_evidence_grows_only_for_a_slow_canary() -> None:
    """The buckets bound what can be shown: a stable with 0.1% above 10 ms has its p99
    under 10 ms, so a canary with 10% above 50 ms has a p99 over twice that."""
    fast = cumulative_buckets({0.01: 999, 0.05: 1, 0.1: 0, math.inf: 0})
    slow = cumulative_buckets({0.01: 700, 0.05: 200, 0.1: 100, math.inf: 0})
    history = cumulative_buckets({0.01: 9990, 0.05: 10, 0.1: 0, math.inf: 0})
    assert latency_log_e(fast, history, max_seconds=None, max_ratio=2.0) < 0
    assert latency_log_e(slow, history, max_seconds=None, max_ratio=2.0) > math.log(1e6)
    # 1,000 stable requests can only show its p99 is under 10 ms so far (e^3 here).
    assert latency_log_e(slow, fast, max_seconds=None, max_ratio=2.0) < math.log(20)
    assert latency_log_e(slow, None, max_seconds=0.05, max_ratio=None) > math.log(1e6)
    assert latency_log_e(fast, None, max_seconds=0.05, max_ratio=None) < 0
    # A limit above every finite bucket cannot be tested from these buckets: E = 1.
    assert latency_log_e(slow, None, max_seconds=5.0, max_ratio=None) == 0.0


def test_the_divergence_bound_is_below_the_divergence_and_zero_for_the_same_answers() -> None:
    same = [300.0, 300.0, 400.0]
    assert divergence_lower_bound(same, same, 0.01) == 0.0
    stable, canary = [500.0, 300.0, 200.0], [100.0, 300.0, 600.0]
    point = jensen_shannon(stable, canary)
    assert point is not None
    bound = divergence_lower_bound(stable, canary, 0.01)
    assert 0 < bound < point
    more = divergence_lower_bound([10 * c for c in stable], [10 * c for c in canary], 0.01)
    assert bound < more < point


def test_the_divergence_bound_covers_the_true_divergence() -> None:
    """Coverage: over 300 simulated samples the bound exceeds the true JSD in none at
    alpha 0.05 (it may in at most 5%; being a bound on a minimum over boxes, it is
    conservative)."""
    rng = random.Random(7)
    p, q = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    true = jensen_shannon(p, q)
    assert true is not None
    over = 0
    for _ in range(300):
        s = [0.0, 0.0, 0.0]
        c = [0.0, 0.0, 0.0]
        for _ in range(400):
            s[rng.choices(range(3), p)[0]] += 1
            c[rng.choices(range(3), q)[0]] += 1
        over += divergence_lower_bound(s, c, 0.05) > true
    assert over <= 15


# --- the spec ------------------------------------------------------------------------------------


def test_mode_and_alpha_parse_with_their_defaults() -> None:
    assert parse_analysis({}).mode == "interval"
    spec = parse_analysis({"mode": "sequential", "alpha": 0.05})
    assert spec.sequential
    assert spec.alpha == 0.05
    # The three default metrics have tests: each gets a third of alpha.
    assert spec.alpha_of(spec.metrics) == pytest.approx(0.05 / 3)
    for bad in ({"mode": "sometimes"}, {"alpha": 0}, {"alpha": 0.5}):
        with pytest.raises(SpecError):
            parse_analysis(bad)


# --- the loop -----------------------------------------------------------------------------------


ERRORS_ONLY = {
    "interval": "10s",
    "minSamples": 50,
    "metrics": [{"name": "error-rate", "max": 0.05, "maxIncrease": 0.01}],
}


def test_a_bad_canary_is_rolled_back_at_a_reading_not_at_an_intervals_end() -> None:
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential"})

    def serve(s: Stream) -> None:  # 40 requests/s each, the canary failing 20%
        s.stable_ok += 40
        s.canary_ok += 32
        s.canary_errors += 8

    at, progresses = run(spec, Stream(), serve, 30)
    assert at is not None
    assert at < 10  # before the first 10 s interval ends
    last = progresses[-1]
    assert last.judged
    assert last.record.state.last_verdict == "Fail"
    (metric,) = last.record.state.metrics
    assert metric.verdict is Verdict.FAIL
    assert metric.evidence == 1.0
    assert "e-value" in metric.reason
    assert isinstance(last.outcome, Rollback)
    assert "sequential test" in last.outcome.reason


def test_a_good_canary_passes_each_interval_and_shows_its_evidence_between() -> None:
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential"})

    def serve(s: Stream) -> None:
        s.stable_ok += 40
        s.canary_ok += 40

    at, progresses = run(spec, Stream(), serve, 25)
    assert at is None
    judged = [p for p in progresses if p.judged]
    assert [p.record.state.last_verdict for p in judged] == ["Pass", "Pass"]
    between = progresses[5].record.state.metrics
    assert between[0].evidence == 0.0
    assert between[0].verdict is Verdict.PASS
    # Every reading is wanted a second after the previous one.
    assert progresses[5].read_due == pytest.approx(5 + SEQUENTIAL_READ_S)


@pytest.mark.parametrize(
    ("stable_shed", "canary_shed", "rolled_back"), [(12, 12, False), (0, 12, True)]
)
def test_shed_503s_count_only_beyond_the_stables_share(
    stable_shed: int, canary_shed: int, rolled_back: bool
) -> None:
    """A cluster shedding 30% on both revisions is no evidence against the canary; a
    canary shedding 30% beside a stable shedding nothing is."""
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential"})

    def serve(s: Stream) -> None:
        s.stable_ok += 40 - stable_shed
        s.stable_shed += stable_shed
        s.canary_ok += 40 - canary_shed
        s.canary_shed += canary_shed

    at, progresses = run(spec, Stream(), serve, 25)
    assert (at is not None) == rolled_back, progresses[-1].record.state.metrics
    (metric,) = progresses[-1].record.state.metrics
    assert "shed 0.3" in metric.reason, metric.reason


def test_too_few_requests_are_inconclusive_never_a_pass() -> None:
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential", "minSamples": 1000})

    def serve(s: Stream) -> None:
        s.stable_ok += 40
        s.canary_ok += 40

    _, progresses = run(spec, Stream(), serve, 12)
    judged = [p for p in progresses if p.judged]
    assert judged[0].record.state.last_verdict == "Inconclusive"


def test_a_pod_restart_loses_no_requests_and_a_status_round_trip_keeps_the_totals() -> None:
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential"})
    stream = Stream()
    first = step(spec=spec, previous=None, attempt_key="r/1", reading=stream.reading(0), now=0)
    stream.canary_ok, stream.stable_ok = 100, 5100
    second = step(
        spec=spec, previous=first.record, attempt_key="r/1", reading=stream.reading(1), now=1
    )
    stream.canary_ok = 30  # the canary's pod restarted: its counters began again
    stored = AnalysisRecord.from_dict(second.record.to_dict())
    third = step(spec=spec, previous=stored, attempt_key="r/1", reading=stream.reading(2), now=2)
    totals = third.record.totals
    assert totals["canary"].total_requests == 130
    assert totals["stable"].total_requests == 100
    assert third.record.stable_before is not None
    assert third.record.stable_before.total_requests == 5000


def test_a_retried_attempts_first_reading_counts_nothing_of_the_previous_attempt() -> None:
    spec = parse_analysis({**ERRORS_ONLY, "mode": "sequential"})
    stream = Stream(canary_ok=900, canary_errors=100)  # the first attempt's traffic
    first = step(spec=spec, previous=None, attempt_key="r/2", reading=stream.reading(0), now=0)
    assert first.record.totals == {}
    assert not isinstance(first.outcome, Rollback)


def test_interval_mode_keeps_no_sequential_state() -> None:
    spec = parse_analysis(ERRORS_ONLY)
    stream = Stream()
    first = step(spec=spec, previous=None, attempt_key="r/1", reading=stream.reading(0), now=0)
    assert "sequential" not in first.record.to_dict()
    assert first.read_due == 10.0


# --- the guarantee, simulated ---------------------------------------------------------------


def test_a_good_canary_looked_at_every_reading_keeps_the_false_alarm_rate_under_alpha() -> None:
    """2,000 rollouts of a canary exactly at its limit (error rate 2% against the
    stable's 1% with maxIncrease 0.01: the hardest good canary), each looked at 40
    times. Ville's inequality bounds the share rolled back by alpha = 0.05; the
    assertion allows for the simulation's own chance: 3.3 standard deviations of a
    Binomial(2000, 0.05), so a correct test fails it once in 2,000 runs."""
    alpha = 0.05
    spec = parse_analysis(
        {
            **ERRORS_ONLY,
            "mode": "sequential",
            "alpha": alpha,
            "metrics": [{"name": "error-rate", "maxIncrease": 0.01}],
        }
    )
    outcomes = simulate_rollouts(
        spec, stable_rate=0.01, canary_rate=0.02, rollouts=2000, reads=40, per_read=50, seed=1
    )
    false_alarms = sum(at is not None for at in outcomes)
    limit = 2000 * alpha + 3.3 * math.sqrt(2000 * alpha * (1 - alpha))
    assert false_alarms <= limit, f"{false_alarms} of 2000 rolled back"


def test_looking_every_interval_inflates_false_alarms_and_the_sequential_test_does_not() -> None:
    """An identical canary (1% errors on both sides, 50 requests per side per second),
    400 rollouts of 60 s each way: interval mode's z-test at p < 0.05 every 2 s with
    failureLimit 1 rolls back a share that grows with the number of looks; sequential
    mode at alpha 0.01 stays within its bound however often it looks."""
    common = {"interval": "2s", "minSamples": 50, "failureLimit": 1}
    metrics = [{"name": "error-rate", "maxIncrease": 0.005}]
    sequential = parse_analysis({**common, "mode": "sequential", "metrics": metrics})
    interval = parse_analysis({**common, "metrics": metrics})
    same: dict[str, Any] = {"stable_rate": 0.01, "canary_rate": 0.01, "reads": 60, "per_read": 50}
    seq = simulate_rollouts(sequential, rollouts=400, seed=3, **same)
    ivl = simulate_rollouts(interval, rollouts=400, seed=3, **same)
    seq_alarms = sum(at is not None for at in seq)
    ivl_alarms = sum(at is not None for at in ivl)
    assert seq_alarms <= 400 * 0.01 + 3.3 * math.sqrt(400 * 0.01 * 0.99)
    assert ivl_alarms > seq_alarms, (ivl_alarms, seq_alarms)


def test_a_clearly_bad_canary_is_caught_sooner_than_by_intervals() -> None:
    """10% errors against an error-free stable, 40 requests per side per second, as in
    the e2e test: sequential mode rolls back at a reading, interval mode (2 s
    intervals, failureLimit 1) needs two failed intervals."""
    common = {"interval": "2s", "minSamples": 20, "failureLimit": 1}
    metrics = [{"name": "error-rate", "max": 0.01, "maxIncrease": 0.01}]
    sequential = parse_analysis({**common, "mode": "sequential", "metrics": metrics})
    interval = parse_analysis({**common, "metrics": metrics})
    bad: dict[str, Any] = {"stable_rate": 0.0, "canary_rate": 0.1, "reads": 30, "per_read": 40}
    seq = simulate_rollouts(sequential, rollouts=200, seed=4, **bad)
    ivl = simulate_rollouts(interval, rollouts=200, seed=4, **bad)
    seq_at = [at for at in seq if at is not None]
    ivl_at = [at for at in ivl if at is not None]
    assert len(seq_at) == len(ivl_at) == 200  # every rollout caught both ways
    assert statistics.median(seq_at) < statistics.median(ivl_at)


def test_a_canary_with_five_times_the_stables_error_rate_is_always_caught() -> None:
    """5% against 1% with maxIncrease 0.01, 40 requests per side per second: every one
    of 200 rollouts is rolled back within two minutes (the median time, against interval
    mode's, is in docs/benchmarks.md: the price of the guarantee on a moderate
    regression)."""
    spec = parse_analysis(
        {
            **ERRORS_ONLY,
            "mode": "sequential",
            "metrics": [{"name": "error-rate", "maxIncrease": 0.01}],
        }
    )
    caught = simulate_rollouts(
        spec, stable_rate=0.01, canary_rate=0.05, rollouts=200, reads=120, per_read=40, seed=5
    )
    assert None not in caught
