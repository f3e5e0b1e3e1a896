"""analysis_loop.step: windows kept in status, one judgement per interval, and the 100%
step where no baseline exists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.judging import Continue, Pause
from mlmodel_operator.analysis.loop import READ_AGAIN_S, Progress, Reading, step
from mlmodel_operator.analysis.spec import AnalysisSpec, parse_analysis

pytestmark = pytest.mark.unit

SPEC = parse_analysis(
    {
        "interval": "10s",
        "minSamples": 10,
        "metrics": [
            {"name": "error-rate", "max": 0.05, "maxIncrease": 0.01},
            {"name": "prediction-divergence", "max": 0.1},
        ],
    }
)


def cumulative(stable: dict[str, float] | None, canary: dict[str, float]) -> Reading:
    return Reading(
        stable=None if stable is None else Snapshot(requests=stable),
        canary=Snapshot(requests=canary),
    )


def one_interval(
    start: Reading,
    end: Reading,
    *,
    spec: AnalysisSpec = SPEC,
    baseline: bool = True,
    seconds: float = 11,
) -> Progress:
    """The window begun with `start` at 0 s and judged with `end` `seconds` later."""
    begun = step(
        spec=spec, previous=None, attempt_key="r/1", reading=start, now=0, baseline=baseline
    )
    return step(
        spec=spec,
        previous=begun.record,
        attempt_key="r/1",
        reading=end,
        now=seconds,
        baseline=baseline,
    )


def test_the_first_reading_starts_the_window_and_nothing_is_judged() -> None:
    begun = step(spec=SPEC, previous=None, attempt_key="r/1", reading=None, now=0)
    assert not begun.judged
    assert begun.outcome is None
    later = step(
        spec=SPEC,
        previous=begun.record,
        attempt_key="r/1",
        reading=cumulative({"200": 5}, {"200": 5}),
        now=3,
    )
    assert not later.judged  # the window starts at the first reading, not before
    assert later.status["windowStart"] == 3


def test_a_new_attempt_starts_over() -> None:
    old = step(
        spec=SPEC,
        previous=None,
        attempt_key="r/1",
        reading=cumulative({"200": 1}, {"200": 1}),
        now=0,
    )
    fresh = step(
        spec=SPEC,
        previous=replace(old.record, state=replace(old.record.state, failures=2)),
        attempt_key="r/2",
        reading=cumulative({"200": 1}, {"200": 1}),
        now=50,
    )
    assert fresh.status["attempt"] == "r/2"
    assert fresh.status["failures"] == 0


def test_without_a_baseline_only_absolute_limits_are_judged() -> None:
    # At 100% the replicas router has scaled the stable to zero: no stable reading.
    judged = one_interval(
        cumulative(None, {"200": 100}), cumulative(None, {"200": 180, "500": 1}), baseline=False
    )
    assert judged.judged
    assert isinstance(judged.outcome, Continue)
    assert [m["name"] for m in judged.status["metrics"]] == ["error-rate"]
    assert judged.status["metrics"][0]["limit"] == "max 0.05"


def test_without_a_baseline_the_absolute_limit_still_fails_a_bad_canary() -> None:
    judged = one_interval(
        cumulative(None, {"200": 100}), cumulative(None, {"200": 150, "500": 50}), baseline=False
    )
    assert judged.status["verdict"] == "Fail"
    assert isinstance(judged.outcome, Pause)  # within failureLimit 2: hold


def test_with_only_comparisons_configured_a_full_canary_passes_on_health() -> None:
    spec = parse_analysis(
        {"interval": "10s", "metrics": [{"name": "prediction-divergence", "max": 0.1}]}
    )
    later = one_interval(
        cumulative(None, {"200": 1}), cumulative(None, {"200": 2}), spec=spec, baseline=False
    )
    assert isinstance(later.outcome, Continue)


def test_a_missing_stable_with_a_baseline_is_inconclusive() -> None:
    judged = one_interval(cumulative({"200": 10}, {"200": 10}), cumulative(None, {"200": 100}))
    assert judged.status["verdict"] == "Inconclusive"
    assert "no metrics from the stable pods" in judged.outcome.reason  # type: ignore[union-attr]


# --- readings taken off the reconcile path ------------------------------------------------


def taken(reading: Reading, at: float) -> Reading:
    return Reading(stable=reading.stable, canary=reading.canary, taken_at=at)


def test_a_window_runs_between_the_times_its_readings_were_taken() -> None:
    begun = step(spec=SPEC, previous=None, attempt_key="r/1", reading=None, now=0)
    assert begun.read_due == 0  # no starting snapshot: a reading is wanted at once
    first = taken(cumulative({"200": 100}, {"200": 100}), at=0.4)
    started = step(spec=SPEC, previous=begun.record, attempt_key="r/1", reading=first, now=0.5)
    assert started.status["windowStart"] == 0.4
    assert started.read_due == 10.4
    end = taken(cumulative({"200": 300}, {"200": 300}), at=10.45)
    judged = step(spec=SPEC, previous=started.record, attempt_key="r/1", reading=end, now=10.5)
    assert judged.judged
    [error_rate, _] = judged.status["metrics"]
    assert (error_rate["name"], error_rate["verdict"]) == ("error-rate", "Pass")
    assert judged.status["windowStart"] == 10.45


def test_a_stale_reading_judges_nothing_and_a_fresh_one_is_asked_for() -> None:
    first = taken(cumulative({"200": 100}, {"200": 100}), at=0)
    started = one_interval_start(first)
    # The interval is over, but the latest reading is the one that started the window.
    waiting = step(spec=SPEC, previous=started.record, attempt_key="r/1", reading=first, now=10.2)
    assert not waiting.judged
    assert waiting.read_due == 10
    assert waiting.due_in == pytest.approx(4.8)  # given up on at 10 s + the 5 s deadline


def test_an_interval_whose_reading_never_comes_is_inconclusive() -> None:
    first = taken(cumulative({"200": 100}, {"200": 100}), at=0)
    started = one_interval_start(first)
    late = step(spec=SPEC, previous=started.record, attempt_key="r/1", reading=first, now=15.1)
    assert late.judged
    assert late.status["verdict"] == "Inconclusive"
    reason = late.outcome.reason  # type: ignore[union-attr]
    assert "no reading within 5 s of the interval's end" in reason
    # The next window starts at the next reading, never with the stale one's counters.
    assert late.status["start"] == {}
    assert late.read_due == 15.1


def test_an_interval_given_up_on_names_the_providers_last_error() -> None:
    """A Prometheus that hangs fails each read at the reader's deadline, when the judge
    gives the interval up too: the reason is the provider's error, not a bare absence."""
    first = taken(cumulative({"200": 100}, {"200": 100}), at=0)
    started = one_interval_start(first)
    failed = replace(Reading(error="prometheus: no answer within 5 s"), taken_at=3.0)
    late = step(spec=SPEC, previous=started.record, attempt_key="r/1", reading=failed, now=15.1)
    assert late.judged
    assert late.status["verdict"] == "Inconclusive"
    reason = late.outcome.reason  # type: ignore[union-attr]
    assert "metrics provider: prometheus: no answer within 5 s" in reason


def one_interval_start(first: Reading) -> Progress:
    return step(spec=SPEC, previous=None, attempt_key="r/1", reading=first, now=0)


# --- a window starts only with a reading of both sides ------------------------------------


def stable_only(at: float) -> Reading:
    """What the scrape provider reads when the canary's pod is Ready in the Deployment's
    status but not yet in the pod list the reading was asked with."""
    return Reading(stable=Snapshot(requests={"200": 100}), taken_at=at)


def test_a_first_reading_without_the_canary_does_not_start_the_window() -> None:
    begun = step(spec=SPEC, previous=None, attempt_key="r/1", reading=stable_only(0.1), now=0.2)
    assert begun.status["start"] == {}
    assert begun.read_due == pytest.approx(0.1 + READ_AGAIN_S)  # soon, not in a loop
    whole = taken(cumulative({"200": 110}, {"200": 0}), at=0.7)
    started = step(spec=SPEC, previous=begun.record, attempt_key="r/1", reading=whole, now=0.8)
    assert started.status["windowStart"] == 0.7
    end = taken(cumulative({"200": 300}, {"200": 200}), at=10.7)
    judged = step(spec=SPEC, previous=started.record, attempt_key="r/1", reading=end, now=10.8)
    assert judged.judged
    [error_rate, _] = judged.status["metrics"]
    assert (error_rate["name"], error_rate["verdict"]) == ("error-rate", "Pass"), error_rate


def test_an_interval_ending_without_the_canary_starts_the_next_window_at_a_whole_reading() -> None:
    started = one_interval_start(taken(cumulative({"200": 100}, {"200": 100}), at=0))
    ended = step(
        spec=SPEC, previous=started.record, attempt_key="r/1", reading=stable_only(10), now=10.1
    )
    assert ended.judged
    assert "no metrics from the canary pods" in ended.outcome.reason  # type: ignore[union-attr]
    assert ended.status["start"] == {}
    assert ended.read_due == pytest.approx(10 + READ_AGAIN_S)
    whole = taken(cumulative({"200": 200}, {"200": 150}), at=10.5)
    restarted = step(spec=SPEC, previous=ended.record, attempt_key="r/1", reading=whole, now=10.6)
    assert not restarted.judged
    assert restarted.status["windowStart"] == 10.5


def test_a_failing_provider_is_asked_again_after_a_pause_not_at_once() -> None:
    failed = replace(Reading(error="prometheus: connection refused"), taken_at=2.0)
    begun = step(spec=SPEC, previous=None, attempt_key="r/1", reading=failed, now=2.01)
    assert begun.read_due == pytest.approx(2.0 + READ_AGAIN_S)
