"""The canary rollout as a pure state machine: where a rollout stands and what comes next.

Everything it needs comes in as arguments (the steps, the state kept in status,
what was observed of the canary and the stable, the people's actions, the time)
and a Decision comes out; nothing is read from clocks, the API or memory, so an
operator restarted at any step resumes exactly there.

People act through annotations (the kubectl plugin writes them), each scoped to
the canary revision and attempt it was meant for, so an action never leaks into
a later rollout; abort always wins over a pending promote:

    mlops.dev/abort:   "<revision>/<attempt>"
    mlops.dev/retry:   "<revision>/<attempt>"          (after an abort or rollback)
    mlops.dev/promote: "<revision>/<attempt>/<step>"   (finish that step now)
                       "<revision>/<attempt>/full"     (skip every remaining step)
    mlops.dev/pause:   "<revision>/<attempt>"          (hold; remove it to resume)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mlmodel_operator.spec import Step

ABORT = "mlops.dev/abort"
RETRY = "mlops.dev/retry"
PROMOTE = "mlops.dev/promote"
PAUSE = "mlops.dev/pause"
ACTION_ANNOTATIONS = (ABORT, RETRY, PROMOTE, PAUSE)

WAITING_FOR_READY = -1
ABORTED_BY_PERSON = "Aborted"  # the event reason of a person's abort


@dataclass(frozen=True)
class Actions:
    abort: str = ""
    retry: str = ""
    promote: str = ""
    pause: str = ""

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> Actions:
        return cls(
            abort=annotations.get(ABORT, ""),
            retry=annotations.get(RETRY, ""),
            promote=annotations.get(PROMOTE, ""),
            pause=annotations.get(PAUSE, ""),
        )


@dataclass(frozen=True)
class CanaryState:
    """What status.canary records between reconciles (times are Unix seconds)."""

    revision: str
    version: str
    attempt: int = 1
    step: int = WAITING_FOR_READY
    weight: int = 0
    mirror: int = 0  # in a shadow step: percent of requests copied to the canary
    started_at: float = 0.0
    step_started_at: float = 0.0
    aborted: bool = False
    aborted_at: float = 0.0  # when it was rolled back: its pods drain from then on
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.revision}/{self.attempt}"


@dataclass(frozen=True)
class Observation:
    canary_ready: bool
    canary_ready_text: str  # "1/2"
    canary_failure: str = ""  # why the canary is broken (conversion, crash loop), or ""
    evaluation_failure: str = ""  # why its score on the holdout set refuses it, or ""
    canary_waiting: str = ""  # why it is not ready yet though it may become so, or ""
    stable_problem: str = ""  # why the stable cannot serve as the baseline, or ""
    analysis_failure: str = ""  # analysis says roll back, with its reason, or ""
    analysis_hold: str = ""  # analysis says hold the weight (failed within the limit,
    # or inconclusive with onInconclusive: pause), with its reason, or ""
    analysis_pending: bool = False  # analysis is on and has not passed an interval yet


@dataclass(frozen=True)
class Decision:
    state: CanaryState
    phase: str  # Progressing | Paused | RolledBack | Degraded | Promoted
    message: str
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)
    requeue_after: float = 5.0

    @property
    def promoted(self) -> bool:
        return self.phase == "Promoted"

    @property
    def aborted_by_person(self) -> bool:
        """Rolled back this step by a person's abort (not by a failure or the analysis)."""
        return any(reason == ABORTED_BY_PERSON for _, reason, _ in self.events)


def start(revision: str, version: str, now: float, attempt: int = 1) -> CanaryState:
    return CanaryState(
        revision=revision, version=version, attempt=attempt, started_at=now, step_started_at=now
    )


def _describe(steps: Sequence[Step], index: int) -> str:
    step = steps[index]
    if step.mirror:
        return (
            f"step {index + 1}/{len(steps)}: shadow, {step.mirror}% of requests copied to the "
            "canary (its answers discarded)"
        )
    return f"step {index + 1}/{len(steps)}: canary at {step.weight}%"


def _wait_for_canary(
    state: CanaryState,
    observed: Observation,
    now: float,
    since: float,
    deadline_s: float,
    *,
    late: str,
    waiting: str,
) -> Decision:
    """Hold until the canary's pods all serve, or roll back once they have taken longer
    than the progress deadline: at the start (`late` empty) and at each step, whose new
    pods a kubelet may never start (no capacity, an image that cannot be pulled)."""
    why = f"; {observed.canary_waiting}" if observed.canary_waiting else ""
    ready = f"({observed.canary_ready_text} ready){why}"
    if now - since > deadline_s:
        return _abort(
            state,
            "ProgressDeadlineExceeded",
            f"canary not ready{late} within {deadline_s:.0f}s {ready}",
            now,
        )
    return Decision(
        state=state, phase="Progressing", message=f"{waiting} {ready}", requeue_after=2.0
    )


def _abort(state: CanaryState, reason: str, message: str, now: float) -> Decision:
    aborted = replace(state, aborted=True, aborted_at=now, weight=0, mirror=0, message=message)
    return Decision(
        state=aborted,
        phase="RolledBack",
        message=f"rolled back revision {state.revision} ({state.version}): {message}",
        events=(("Warning", reason, message),),
        requeue_after=30.0,
    )


def _enter_step(steps: Sequence[Step], state: CanaryState, index: int, now: float) -> Decision:
    if index >= len(steps):
        return Decision(
            state=replace(state, step=len(steps) - 1, weight=100, mirror=0),
            phase="Promoted",
            message=f"revision {state.revision} ({state.version}) promoted to stable",
            events=(("Normal", "Promoted", f"revision {state.revision} is now stable"),),
            requeue_after=1.0,
        )
    entered = replace(
        state,
        step=index,
        weight=steps[index].weight,
        mirror=steps[index].mirror,
        step_started_at=now,
    )
    return Decision(
        state=entered,
        phase="Progressing",
        message=_describe(steps, index),
        events=(("Normal", "StepStarted", _describe(steps, index)),),
        requeue_after=1.0,
    )


def advance(
    *,
    steps: Sequence[Step],
    progress_deadline_s: float,
    interval_s: float,
    state: CanaryState,
    observed: Observation,
    actions: Actions,
    now: float,
) -> Decision:
    """The next state of a rollout. Rules in order: retry after rollback, abort,
    broken canary, wait for ready (or the deadline), full promote, stable health,
    analysis rollback, then the step's own wait (a person's promote, a person's pause,
    an analysis hold, the step's canary pods not all ready yet (or the deadline), an
    indefinite pause, a duration or one analysis interval for a step without pause); with
    analysis on, a step ends on time only after an analysis interval passed, so missing
    data never promotes."""
    key = state.key
    if state.aborted:
        if actions.retry == key:
            restarted = start(state.revision, state.version, now, attempt=state.attempt + 1)
            return Decision(
                state=restarted,
                phase="Progressing",
                message=f"retrying revision {state.revision} (attempt {restarted.attempt})",
                events=(("Normal", "Retry", f"retrying revision {state.revision}"),),
                requeue_after=1.0,
            )
        return Decision(
            state=state,
            phase="RolledBack",
            message=f"rolled back revision {state.revision} ({state.version}): {state.message}",
            requeue_after=30.0,
        )
    if actions.abort == key:
        return _abort(state, ABORTED_BY_PERSON, "aborted by a person", now)
    if observed.canary_failure:
        return _abort(state, "CanaryFailed", observed.canary_failure, now)
    if observed.evaluation_failure:
        return _abort(state, "EvaluationFailed", observed.evaluation_failure, now)
    if state.step == WAITING_FOR_READY:
        if observed.canary_ready:
            return _enter_step(steps, state, 0, now)
        return _wait_for_canary(
            state,
            observed,
            now,
            state.started_at,
            progress_deadline_s,
            late="",
            waiting=f"waiting for revision {state.revision} ({state.version}) to start",
        )
    if actions.promote == f"{key}/full":
        return _enter_step(steps, state, len(steps), now)
    if observed.stable_problem:
        return Decision(
            state=state,
            phase="Degraded",
            message=f"{_describe(steps, state.step)}; holding: {observed.stable_problem}",
            requeue_after=5.0,
        )
    if observed.analysis_failure:
        return _abort(state, "AnalysisFailed", observed.analysis_failure, now)
    if actions.promote == f"{key}/{state.step}":
        return _enter_step(steps, state, state.step + 1, now)
    if actions.pause == key:
        return Decision(
            state=state,
            phase="Paused",
            message=f"{_describe(steps, state.step)}; paused by a person",
            requeue_after=30.0,
        )
    if observed.analysis_hold:
        return Decision(
            state=state,
            phase="Paused",
            message=f"{_describe(steps, state.step)}; {observed.analysis_hold}",
            requeue_after=2.0,
        )
    if not observed.canary_ready:
        # A step counts only once its pods serve: its pause and its analysis judge the
        # canary at the step's scale, and the last step never promotes a half-started one.
        return _wait_for_canary(
            state,
            observed,
            now,
            state.step_started_at,
            progress_deadline_s,
            late=f" at step {state.step + 1}",
            waiting=f"{_describe(steps, state.step)}; waiting for the canary's pods",
        )
    pause = steps[state.step].pause_seconds
    if pause is not None and math.isinf(pause):
        return Decision(
            state=state,
            phase="Paused",
            message=f"{_describe(steps, state.step)}; waiting for promote",
            requeue_after=30.0,
        )
    wait = interval_s if pause is None else pause
    elapsed = now - state.step_started_at
    if elapsed >= wait and observed.analysis_pending:
        return Decision(
            state=state,
            phase="Progressing",
            message=f"{_describe(steps, state.step)}; waiting for an analysis interval to pass",
            requeue_after=2.0,
        )
    if elapsed >= wait:
        return _enter_step(steps, state, state.step + 1, now)
    return Decision(
        state=state,
        phase="Progressing",
        message=f"{_describe(steps, state.step)}, {wait - elapsed:.0f}s left in this step",
        requeue_after=min(max(wait - elapsed, 0.2), 5.0),
    )


def state_from_status(canary: Mapping[str, Any]) -> CanaryState | None:
    if not canary.get("revision"):
        return None
    return CanaryState(
        revision=str(canary["revision"]),
        version=str(canary.get("version", canary["revision"])),
        attempt=int(canary.get("attempt", 1)),
        step=int(canary.get("step", WAITING_FOR_READY)),
        weight=int(canary.get("weight", 0)),
        mirror=int(canary.get("mirror", 0)),
        started_at=float(canary.get("startedAt", 0.0)),
        step_started_at=float(canary.get("stepStartedAt", 0.0)),
        aborted=bool(canary.get("aborted", False)),
        aborted_at=float(canary.get("abortedAt", 0.0)),
        message=str(canary.get("message", "")),
    )


def state_to_status(state: CanaryState, steps: int) -> dict[str, Any]:
    return {
        "revision": state.revision,
        "version": state.version,
        "attempt": state.attempt,
        "step": state.step,
        "steps": steps,
        "weight": state.weight,
        **({"mirror": state.mirror} if state.mirror else {}),
        "startedAt": state.started_at,
        "stepStartedAt": state.step_started_at,
        "aborted": state.aborted,
        **({"abortedAt": state.aborted_at} if state.aborted else {}),
        "message": state.message,
    }
