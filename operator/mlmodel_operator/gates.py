"""Rollout webhooks in the decision: the gates that hold a canary and the notifications
a rollout's end sends (`spec.rollout.webhooks`, docs/rollouts.md, "Webhooks").

Pure. `rollout.advance` decides as if there were no webhooks; `gate` then holds what a
gate has not (yet) allowed:

- `pre-rollout`, before the canary gets any traffic: the rollout would enter its first
  step; until every pre-rollout receiver answered 2xx the canary stays at 0%.
- `confirm-promotion`, before the promotion: until every receiver answered 2xx the
  canary stays at its last step.

A person's promote (`kubectl mlmodel promote`) is a confirmation of its own and passes
both, as it passes an analysis hold. A gate that answers no is asked again every few
seconds (`WebhookCaller.gate_retry_s`), so the canary goes on when the receiver says
yes. `rollout` webhooks are not gates here: they are called with the reading that ends
each analysis interval and judged with it (`analysis.loop`), a non-2xx answer counting
as a failed interval. `promoted` and `rolled-back` are notifications: said once when
the rollout ends that way, never waited for.

Each call is named by a key holding its type, the canary attempt and the URL, so an
answer never carries over to another attempt (a retry asks again), and a notification
repeated by a later reconcile is not sent twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlmodel_operator import rollout
from mlmodel_operator.policy import display_url
from mlmodel_operator.webhooks import Answer, Hook, payload


@dataclass(frozen=True)
class Call:
    key: str
    hook: Hook
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """What every payload says besides the type, the step and the message."""

    name: str
    namespace: str
    stable: str
    steps: int
    now: float


@dataclass(frozen=True)
class Gated:
    decision: rollout.Decision
    gates: tuple[Call, ...]  # questions asked this reconcile (their answers are awaited)
    notifications: tuple[Call, ...]


def key_of(hook: Hook, state: rollout.CanaryState) -> str:
    return f"{hook.type}/{state.key}/{hook.url}"


def body_of(
    hook: Hook, ctx: Context, state: rollout.CanaryState, *, phase: str, message: str
) -> dict[str, Any]:
    return payload(
        name=ctx.name,
        namespace=ctx.namespace,
        type=hook.type,
        stable=ctx.stable or None,
        canary=state.revision,
        step=state.step + 1 if state.step >= 0 else None,
        steps=ctx.steps,
        weight=state.weight,
        phase=phase,
        message=message,
        attempt=state.attempt,
        at=ctx.now,
    )


def _hold(
    before: rollout.CanaryState,
    kind: str,
    hooks: Sequence[Hook],
    answers: Mapping[str, Answer],
    ctx: Context,
    *,
    where: str,
) -> tuple[rollout.Decision | None, tuple[Call, ...]]:
    """(the hold, the calls asked) while any `kind` hook has not answered 2xx; (None,
    calls) once all have."""
    wanted = [hook for hook in hooks if hook.type == kind]
    calls = tuple(
        Call(
            key_of(hook, before),
            hook,
            body_of(hook, ctx, before, phase="Progressing", message=f"{kind}: {where}"),
        )
        for hook in wanted
    )
    pending: list[str] = []
    refused: list[str] = []
    for call in calls:
        answer = answers.get(call.key)
        if answer is None:
            pending.append(display_url(call.hook.url))
        elif not answer.ok:
            refused.append(f"{display_url(call.hook.url)} {answer.detail}")
    if not pending and not refused:
        return None, calls
    if refused:
        message = f"{where}; held by the {kind} webhook: {'; '.join(refused)} (asking again)"
        phase = "Paused"
    else:
        message = f"{where}; waiting for the {kind} webhook {', '.join(pending)}"
        phase = "Progressing"
    return rollout.Decision(state=before, phase=phase, message=message, requeue_after=5.0), calls


def _where(before: rollout.CanaryState, steps: int) -> str:
    if before.step < 0:
        return f"revision {before.revision} ready, before any traffic (0%)"
    return f"step {before.step + 1}/{steps}: canary at {before.weight}%, before the promotion"


def gate(
    decision: rollout.Decision,
    *,
    before: rollout.CanaryState,
    hooks: Sequence[Hook],
    answers: Mapping[str, Answer],
    person_promoted: bool,
    ctx: Context,
) -> Gated:
    """`decision` held where a gate has not answered yes, and the notifications its
    outcome sends."""
    gates: tuple[Call, ...] = ()
    starting = before.step == rollout.WAITING_FOR_READY and decision.state.step >= 0
    promoting = decision.promoted and not person_promoted
    if hooks and not decision.state.aborted and (starting or promoting):
        kind = "pre-rollout" if starting else "confirm-promotion"
        held, gates = _hold(before, kind, hooks, answers, ctx, where=_where(before, ctx.steps))
        if held is not None:
            return Gated(held, gates, ())
    notifications: list[Call] = []
    ended = decision.state
    kind = ""
    if decision.promoted:
        kind = "promoted"
    elif ended.aborted and not before.aborted:
        kind = "rolled-back"
    for hook in hooks:
        if hook.type == kind:
            body = body_of(hook, ctx, ended, phase=decision.phase, message=decision.message)
            notifications.append(Call(key_of(hook, ended), hook, body))
    return Gated(decision, gates, tuple(notifications))
