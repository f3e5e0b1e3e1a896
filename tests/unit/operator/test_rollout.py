"""The canary state machine: what a person sees a rollout do at each moment, with time driven
explicitly; and the replica arithmetic of the replicas router."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from mlmodel_operator import rollout
from mlmodel_operator.rollout import (
    WAITING_FOR_READY,
    Actions,
    CanaryState,
    Decision,
    Observation,
    advance,
    start,
    state_from_status,
    state_to_status,
)
from mlmodel_operator.spec import DEFAULT_STEPS, Step

pytestmark = pytest.mark.unit

INF = math.inf
# step 1: 10% for 2m; step 2: 25%, no pause (one analysis interval);
# step 3: 50% until a person promotes; step 4: 100%, no pause.
STEPS = (Step(10, 120.0), Step(25, None), Step(50, INF), Step(100, None))
DEADLINE = 600.0
INTERVAL = 30.0
T0 = 1_700_000_000.0
REV = "c41d2e8a90"
KEY = f"{REV}/1"

READY = Observation(canary_ready=True, canary_ready_text="2/2")
NO_ACTIONS = Actions()
NOT_READY = Observation(canary_ready=False, canary_ready_text="0/2")


def waiting(**changes: Any) -> CanaryState:
    return dataclasses.replace(start(REV, "v2", T0), **changes)


def at_step(step: int, *, since: float = T0) -> CanaryState:
    """In step `step` (0-based) since `since`, the canary ready since shortly before."""
    return dataclasses.replace(
        start(REV, "v2", T0 - 10), step=step, weight=STEPS[step].weight, step_started_at=since
    )


def aborted(attempt: int = 1) -> CanaryState:
    return CanaryState(
        revision=REV,
        version="v2",
        attempt=attempt,
        step=0,
        weight=0,
        started_at=T0 - 100,
        step_started_at=T0 - 50,
        aborted=True,
        message="aborted by a person",
    )


def decide(
    state: CanaryState,
    *,
    now: float,
    observed: Observation = READY,
    actions: Actions = NO_ACTIONS,
    steps: tuple[Step, ...] = STEPS,
) -> Decision:
    return advance(
        steps=steps,
        progress_deadline_s=DEADLINE,
        interval_s=INTERVAL,
        state=state,
        observed=observed,
        actions=actions,
        now=now,
    )


# --- waiting for the canary to become ready -------------------------------------------------


def test_a_ready_canary_enters_the_first_step_at_its_weight() -> None:
    decision = decide(waiting(), now=T0 + 7, observed=READY)
    assert decision.phase == "Progressing"
    assert (decision.state.step, decision.state.weight) == (0, 10)
    assert decision.state.step_started_at == T0 + 7
    assert decision.message == "step 1/4: canary at 10%"
    assert ("Normal", "StepStarted", "step 1/4: canary at 10%") in decision.events


@pytest.mark.parametrize(
    ("elapsed", "phase"),
    [(0.0, "Progressing"), (599.0, "Progressing"), (600.0, "Progressing"), (601.0, "RolledBack")],
)
def test_an_unready_canary_waits_until_the_progress_deadline(elapsed: float, phase: str) -> None:
    decision = decide(waiting(), now=T0 + elapsed, observed=NOT_READY)
    assert (decision.phase, decision.state.step, decision.state.weight) == (
        phase,
        WAITING_FOR_READY,
        0,
    )
    if phase == "Progressing":
        assert "waiting for revision" in decision.message
        assert "to start (0/2 ready)" in decision.message
        assert not decision.state.aborted


def test_the_deadline_rolls_back_saying_how_many_pods_were_ready() -> None:
    decision = decide(waiting(), now=T0 + 601, observed=NOT_READY)
    assert decision.phase == "RolledBack"
    assert decision.state.aborted
    assert "not ready within 600s (0/2 ready)" in decision.message
    assert [(t, r) for t, r, _ in decision.events] == [("Warning", "ProgressDeadlineExceeded")]


def test_a_full_promote_does_not_skip_waiting_for_ready() -> None:
    decision = decide(
        waiting(), now=T0 + 5, observed=NOT_READY, actions=Actions(promote=f"{KEY}/full")
    )
    assert (decision.phase, decision.state.step) == ("Progressing", WAITING_FOR_READY)


# --- rollbacks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [waiting(), at_step(0), at_step(2)],
    ids=["waiting", "step-1", "indefinite-pause"],
)
def test_a_broken_canary_rolls_back_at_once_with_its_reason(state: CanaryState) -> None:
    broken = Observation(
        canary_ready=False,
        canary_ready_text="0/2",
        canary_failure="conversion failed (exit 7): parity",
    )
    decision = decide(state, now=T0 + 1, observed=broken)
    assert decision.phase == "RolledBack"
    assert decision.state.aborted
    assert decision.state.weight == 0
    assert decision.message == (
        f"rolled back revision {REV} (v2): conversion failed (exit 7): parity"
    )
    assert decision.events == (("Warning", "CanaryFailed", "conversion failed (exit 7): parity"),)


def test_a_failed_analysis_rolls_back_with_its_reason() -> None:
    failing = dataclasses.replace(READY, analysis_failure="error-rate 0.05 > max 0.01")
    decision = decide(at_step(1), now=T0 + 1, observed=failing)
    assert decision.phase == "RolledBack"
    assert decision.state.aborted
    assert decision.state.weight == 0
    assert "error-rate 0.05 > max 0.01" in decision.message
    assert decision.events == (("Warning", "AnalysisFailed", "error-rate 0.05 > max 0.01"),)


@pytest.mark.parametrize(
    ("annotation", "rolled_back"),
    [
        (KEY, True),
        (f"{REV}/2", False),  # meant for a later attempt
        (f"{REV}/0", False),  # meant for an earlier attempt
        ("0000000000/1", False),  # meant for another revision
        ("", False),
    ],
)
def test_abort_applies_only_to_the_revision_and_attempt_it_names(
    annotation: str, rolled_back: bool
) -> None:
    decision = decide(at_step(0), now=T0 + 1, actions=Actions(abort=annotation))
    assert (decision.phase == "RolledBack") is rolled_back
    if rolled_back:
        assert "aborted by a person" in decision.message
        assert decision.events == (("Warning", "Aborted", "aborted by a person"),)
        assert decision.state.weight == 0
    else:
        assert decision.state.step == 0


@pytest.mark.parametrize("promote", [f"{KEY}/full", f"{KEY}/0", f"{KEY}/2"])
@pytest.mark.parametrize("step", [0, 2])
def test_abort_wins_over_a_simultaneous_promote(promote: str, step: int) -> None:
    decision = decide(at_step(step), now=T0 + 1, actions=Actions(abort=KEY, promote=promote))
    assert decision.phase == "RolledBack"
    assert "aborted by a person" in decision.message


# --- people's promote and pause --------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "promote", "next_step", "phase"),
    [
        (0, f"{KEY}/0", 1, "Progressing"),  # finishes the 2m pause now
        (2, f"{KEY}/2", 3, "Progressing"),  # releases the indefinite pause
        (3, f"{KEY}/3", 3, "Promoted"),  # the last step: done
        (0, f"{KEY}/1", 0, "Progressing"),  # stale: meant for another step
        (2, f"{KEY}/1", 2, "Paused"),  # stale: the previous step's promote is still there
        (2, f"{REV}/2/2", 2, "Paused"),  # another attempt
        (0, f"{KEY}/full", 3, "Promoted"),
        (2, f"{KEY}/full", 3, "Promoted"),
    ],
)
def test_promote_finishes_exactly_the_step_it_names(
    step: int, promote: str, next_step: int, phase: str
) -> None:
    decision = decide(at_step(step), now=T0 + 1, actions=Actions(promote=promote))
    assert (decision.phase, decision.state.step) == (phase, next_step)
    if phase == "Promoted":
        assert decision.promoted
        assert decision.state.weight == 100
        assert ("Normal", "Promoted", f"revision {REV} is now stable") in decision.events
    else:
        assert decision.state.weight == STEPS[next_step].weight


@pytest.mark.parametrize("elapsed", [1.0, 120.0, 10_000.0])
def test_a_persons_pause_holds_even_after_the_steps_duration(elapsed: float) -> None:
    decision = decide(at_step(0), now=T0 + elapsed, actions=Actions(pause=KEY))
    assert decision.phase == "Paused"
    assert decision.state.step == 0
    assert "paused by a person" in decision.message


def test_a_pause_for_another_attempt_does_not_hold() -> None:
    decision = decide(at_step(0), now=T0 + 120, actions=Actions(pause=f"{REV}/2"))
    assert (decision.phase, decision.state.step) == ("Progressing", 1)


@pytest.mark.parametrize("elapsed", [0.0, 30.0, 86_400.0 * 30])
def test_an_empty_pause_waits_for_a_promote_forever(elapsed: float) -> None:
    decision = decide(at_step(2), now=T0 + elapsed)
    assert decision.phase == "Paused"
    assert decision.state.step == 2
    assert decision.message == "step 3/4: canary at 50%; waiting for promote"
    assert decision.events == ()


# --- time-driven steps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "elapsed", "next_step", "phase"),
    [
        (0, 0.0, 0, "Progressing"),  # pause: 2m
        (0, 119.0, 0, "Progressing"),
        (0, 120.0, 1, "Progressing"),
        (0, 500.0, 1, "Progressing"),  # late reconcile: one step at a time
        (1, 29.0, 1, "Progressing"),  # no pause: one analysis interval
        (1, 30.0, 2, "Paused"),  # the next step waits for a promote (entered now)
        (3, 29.0, 3, "Progressing"),
        (3, 30.0, 3, "Promoted"),  # the end of the last step
    ],
)
def test_steps_advance_once_their_wait_has_elapsed_and_not_before(
    step: int, elapsed: float, next_step: int, phase: str
) -> None:
    decision = decide(at_step(step), now=T0 + elapsed)
    if phase == "Paused":
        # entering the indefinite step is reported as progress; the next reconcile pauses.
        assert (decision.phase, decision.state.step) == ("Progressing", next_step)
        assert decide(decision.state, now=T0 + elapsed + 1).phase == "Paused"
    else:
        assert (decision.phase, decision.state.step) == (phase, next_step)
    if next_step != step and phase != "Promoted":
        assert decision.state.step_started_at == T0 + elapsed
        assert decision.state.weight == STEPS[next_step].weight


def test_a_step_in_progress_says_how_long_is_left() -> None:
    decision = decide(at_step(0), now=T0 + 100)
    assert decision.message == "step 1/4: canary at 10%, 20s left in this step"
    assert 0 < decision.requeue_after <= 20


def test_the_default_steps_walk_to_promotion_with_time_alone() -> None:
    state, now, seen = start(REV, "v2", T0), T0, []
    for _ in range(10):
        decision = decide(state, now=now, steps=DEFAULT_STEPS)
        seen.append((decision.phase, decision.state.weight))
        if decision.promoted:
            break
        state, now = decision.state, now + 60
    assert seen[0] == ("Progressing", 10)
    assert ("Progressing", 50) in seen
    assert seen[-1] == ("Promoted", 100)


@pytest.mark.parametrize("step", [0, 3])
def test_a_step_ends_only_once_its_canary_pods_all_serve(step: int) -> None:
    """A step's scale-up (the replicas router's next pods) takes a minute on a real node:
    its pause does not end, and the last step does not promote, on half-started pods."""
    growing = Observation(canary_ready=False, canary_ready_text="1/2")
    held = decide(at_step(step), now=T0 + 500, observed=growing)
    assert (held.phase, held.state) == ("Progressing", at_step(step))
    assert "waiting for the canary's pods (1/2 ready)" in held.message
    assert not held.promoted
    moved = decide(at_step(step), now=T0 + 500)
    assert moved.state.step != step or moved.promoted


def test_a_step_whose_pods_never_all_serve_rolls_back_at_the_deadline() -> None:
    growing = Observation(canary_ready=False, canary_ready_text="1/2")
    assert decide(at_step(1), now=T0 + 600, observed=growing).phase == "Progressing"
    decision = decide(at_step(1), now=T0 + 601, observed=growing)
    assert decision.phase == "RolledBack"
    assert "not ready at step 2 within 600s (1/2 ready)" in decision.message


# --- the stable's health ----------------------------------------------------------------------


@pytest.mark.parametrize("elapsed", [1.0, 120.0, 1_000.0])
def test_an_unhealthy_stable_holds_the_rollout_as_degraded(elapsed: float) -> None:
    sick = dataclasses.replace(READY, stable_problem="the stable revision is unhealthy")
    decision = decide(at_step(0), now=T0 + elapsed, observed=sick)
    assert decision.phase == "Degraded"
    assert decision.state.step == 0
    assert "the stable revision is unhealthy" in decision.message


# --- after a rollback -------------------------------------------------------------------------


def test_retry_after_a_rollback_starts_the_next_attempt_from_waiting() -> None:
    decision = decide(aborted(), now=T0 + 5, actions=Actions(retry=KEY))
    assert decision.phase == "Progressing"
    state = decision.state
    assert (state.attempt, state.step, state.weight, state.aborted) == (2, -1, 0, False)
    assert state.started_at == state.step_started_at == T0 + 5
    assert ("Normal", "Retry", f"retrying revision {REV}") in decision.events


def test_old_annotations_do_not_act_on_the_retried_attempt() -> None:
    retried = decide(aborted(), now=T0 + 5, actions=Actions(retry=KEY)).state
    # The first attempt's abort and retry annotations are still on the object.
    decision = decide(retried, now=T0 + 6, actions=Actions(abort=KEY, retry=KEY))
    assert (decision.phase, decision.state.step, decision.state.attempt) == ("Progressing", 0, 2)


@pytest.mark.parametrize(
    "actions",
    [
        Actions(),
        Actions(retry=f"{REV}/2"),  # for an attempt that has not happened
        Actions(retry="0000000000/1"),
        Actions(promote=f"{KEY}/full"),  # promote does not revive a rolled-back canary
        Actions(abort=KEY),
    ],
)
def test_a_rolled_back_canary_stays_rolled_back_without_its_retry(actions: Actions) -> None:
    decision = decide(aborted(), now=T0 + 10_000, actions=actions)
    assert decision.phase == "RolledBack"
    assert decision.state == aborted()
    assert decision.message == f"rolled back revision {REV} (v2): aborted by a person"
    assert decision.events == ()  # the Warning was recorded once, at the rollback


# --- annotations and status round trip --------------------------------------------------------


def test_actions_read_the_plugins_annotations_and_ignore_others() -> None:
    actions = Actions.from_annotations(
        {
            "mlops.dev/abort": f"{REV}/1",
            "mlops.dev/retry": f"{REV}/2",
            "mlops.dev/promote": f"{REV}/1/0",
            "mlops.dev/pause": f"{REV}/3",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        }
    )
    assert actions == Actions(
        abort=f"{REV}/1", retry=f"{REV}/2", promote=f"{REV}/1/0", pause=f"{REV}/3"
    )
    assert Actions.from_annotations({}) == Actions()
    assert rollout.ACTION_ANNOTATIONS == (
        "mlops.dev/abort",
        "mlops.dev/retry",
        "mlops.dev/promote",
        "mlops.dev/pause",
    )


@pytest.mark.parametrize("state", [waiting(), at_step(2), aborted(attempt=3)])
def test_a_state_survives_a_round_trip_through_status(state: CanaryState) -> None:
    status = state_to_status(state, len(STEPS))
    assert status["steps"] == 4
    assert state_from_status(status) == state


@pytest.mark.parametrize("canary", [{}, {"revision": ""}, {"step": 2}])
def test_a_status_without_a_canary_revision_has_no_state(canary: dict[str, Any]) -> None:
    assert state_from_status(canary) is None


def test_an_older_status_gets_defaults() -> None:
    assert state_from_status({"revision": REV}) == CanaryState(revision=REV, version=REV)
