"""Rollout webhooks against a real receiver on loopback: what a gate answers and when it
asks again, notifications sent once and retried, and answers that are not trusted
(redirects, hanging receivers, endless bodies, text that must not reach status)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest

from mlmodel_operator.webhooks import (
    GATES,
    NOTIFICATIONS,
    TYPES,
    Answer,
    Hook,
    WebhookCaller,
    call,
    payload,
)
from tests.helpers.webhook_receiver import Received, WebhookReceiver

pytestmark = pytest.mark.unit

MODEL = ("models", "iris")
SECRET = "AKIA-SECRET-IN-THE-ANSWER"
T = TypeVar("T")


def body(type: str = "pre-rollout", **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "iris",
        "namespace": "models",
        "type": type,
        "stable": "5d8c7f6b9a",
        "canary": "7f3a1c2e4b",
        "step": 1,
        "steps": 3,
        "weight": 10,
        "phase": "Progressing",
        "message": "canary 7f3a1c2e4b at step 1 of 3",
        "attempt": 1,
        "at": 1_772_366_400.0,
    }
    return payload(**{**fields, **changes})


class Reconciles:
    """The `on_answer` callback: records each request for a reconcile."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def __call__(self, namespace: str, name: str) -> None:
        self.asked.append((namespace, name))
        self._queue.put_nowait((namespace, name))

    async def next(self) -> tuple[str, str]:
        """The next request, within 5 s."""
        return await asyncio.wait_for(self._queue.get(), 5.0)


async def arrived(receiver: WebhookReceiver, count: int, path: str) -> list[Received]:
    """The calls to `path` once there are `count` (within 5 s), without blocking the
    event loop as `WebhookReceiver.wait_for` would."""
    deadline = time.monotonic() + 5.0
    while len(calls := receiver.calls(path)) < count:
        assert time.monotonic() < deadline, f"{count} calls to {path} wanted, got {len(calls)}"
        await asyncio.sleep(0.01)
    return calls


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        return await main()

    return asyncio.run(go())


async def call_once(hook: Hook) -> tuple[Answer, float]:
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        answer = await call(session, hook, body(hook.type))
        return answer, time.monotonic() - started


# payload


def test_every_type_has_the_same_documented_json_shape() -> None:
    for type in TYPES:
        sent = json.loads(json.dumps(body(type)))
        assert sent == {
            "type": type,
            "name": "iris",
            "namespace": "models",
            "stableRevision": "5d8c7f6b9a",
            "canaryRevision": "7f3a1c2e4b",
            "attempt": 1,
            "step": 1,
            "steps": 3,
            "weight": 10,
            "phase": "Progressing",
            "message": "canary 7f3a1c2e4b at step 1 of 3",
            "timestamp": "2026-03-01T12:00:00Z",
        }


def test_a_missing_revision_or_step_is_null_not_left_out() -> None:
    sent = json.loads(json.dumps(body("promoted", canary=None, step=None, weight=0)))
    assert (sent["canaryRevision"], sent["step"], sent["weight"]) == (None, None, 0)


def test_gates_and_notifications_are_every_type_once() -> None:
    assert sorted((*GATES, *NOTIFICATIONS)) == sorted(TYPES)


def test_an_unknown_type_or_timeout_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'post-rollout' is not one of pre-rollout"):
        body("post-rollout")
    with pytest.raises(ValueError, match="'post-rollout' is not one of"):
        Hook("post-rollout", "http://127.0.0.1/")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Hook("rollout", "http://127.0.0.1/", timeout_s=0)


# call


def test_a_2xx_answer_is_ok_and_the_receiver_gets_the_json_body() -> None:
    with WebhookReceiver() as receiver:
        receiver.respond("/hook", 204)
        answer, _ = run(lambda: call_once(Hook("pre-rollout", receiver.url("/hook"))))
        [received] = receiver.calls("/hook")

    assert (answer.ok, answer.status, answer.detail) == (True, 204, "answered HTTP 204")
    assert received.method == "POST"
    assert received.headers["Content-Type"] == "application/json"
    assert received.body == body("pre-rollout")


def test_a_500_is_not_ok_and_says_so_without_quoting_the_answer() -> None:
    with WebhookReceiver() as receiver:
        receiver.respond("/hook", 500, body=SECRET.encode())
        answer, _ = run(lambda: call_once(Hook("pre-rollout", receiver.url("/hook"))))

    assert (answer.ok, answer.status, answer.detail) == (False, 500, "answered HTTP 500")


def test_a_hanging_receiver_is_no_answer_after_the_hooks_timeout() -> None:
    with WebhookReceiver() as receiver:
        receiver.hang("/hook", 5)
        answer, took = run(lambda: call_once(Hook("rollout", receiver.url("/hook"), 0.5)))

    assert (answer.ok, answer.status, answer.detail) == (False, None, "no answer within 0.5 s")
    assert 0.4 < took < 2.0


def test_a_redirect_is_not_followed() -> None:
    with WebhookReceiver() as receiver:
        receiver.respond("/hook", 307, location=receiver.url("/elsewhere"))
        answer, _ = run(lambda: call_once(Hook("confirm-promotion", receiver.url("/hook"))))
        followed = receiver.calls("/elsewhere")

    assert (answer.ok, answer.status) == (False, 307)
    assert "HTTP 307" in answer.detail
    assert followed == []


def test_an_endless_answer_is_not_read_beyond_the_cap() -> None:
    """The body never ends: read to its end, it would take the whole 5 s timeout and as
    much memory as the receiver can send meanwhile."""
    with WebhookReceiver() as receiver:
        receiver.respond("/hook", 200, endless=True)
        receiver.respond("/big", 202, body=b"x" * (1 << 20))
        endless, took = run(lambda: call_once(Hook("promoted", receiver.url("/hook"), 5)))
        big, _ = run(lambda: call_once(Hook("promoted", receiver.url("/big"), 5)))

    assert (endless.ok, endless.status) == (True, 200)
    assert took < 2.0
    assert (big.ok, big.status) == (True, 202)


def test_nothing_listening_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer, _ = run(lambda: call_once(Hook("rollout", f"http://127.0.0.1:{port}/hook", 2)))

    assert (answer.ok, answer.status, answer.detail) == (False, None, "connection refused")


# gates


def test_a_gate_answer_comes_later_and_asks_for_a_reconcile() -> None:
    async def main() -> tuple[Answer | None, Answer | None, Answer | None, list[Any]]:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles)
        hook = Hook("pre-rollout", receiver.url("/gate"))
        started = time.monotonic()
        first = caller.gate(MODEL, "pre-rollout/7f3a1c2e4b/1", hook, body())
        assert time.monotonic() - started < 0.05  # a reconcile never waits for the call
        asked = await reconciles.next()
        second = caller.gate(MODEL, "pre-rollout/7f3a1c2e4b/1", hook, body())
        third = caller.gate(MODEL, "pre-rollout/7f3a1c2e4b/1", hook, body())
        await caller.close()
        return first, second, third, [asked, reconciles.asked]

    with WebhookReceiver() as receiver:
        first, second, third, (asked, every) = run(main)
        calls = receiver.calls("/gate")

    assert first is None
    assert asked == MODEL
    assert second is not None
    assert (second.ok, second.status) == (True, 200)
    assert third == second
    assert len(calls) == 1  # an ok answer is kept, not asked again
    assert every == [MODEL]


def test_a_held_gate_asks_again_once_its_answer_is_gate_retry_s_old() -> None:
    now = [1000.0]

    async def main() -> list[Answer | None]:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles, clock=lambda: now[0], gate_retry_s=10)
        hook = Hook("confirm-promotion", receiver.url("/gate"))
        key = "confirm-promotion/7f3a1c2e4b/1"
        seen = [caller.gate(MODEL, key, hook, body())]
        await reconciles.next()
        now[0] += 9.9
        seen.append(caller.gate(MODEL, key, hook, body()))  # too young to ask again
        await asyncio.sleep(0.2)
        assert len(receiver.calls("/gate")) == 1
        receiver.respond("/gate", 200)
        now[0] += 0.1
        seen.append(caller.gate(MODEL, key, hook, body()))  # asks again, answers the old
        seen.append(caller.gate(MODEL, key, hook, body()))  # in flight: no third call
        await reconciles.next()
        seen.append(caller.gate(MODEL, key, hook, body()))
        await caller.close()
        return seen

    with WebhookReceiver() as receiver:
        receiver.respond("/gate", 409)
        first, young, again, in_flight, yes = run(main)
        calls = receiver.calls("/gate")

    assert first is None
    assert young is not None
    assert (young.ok, young.detail, young.at) == (False, "answered HTTP 409", 1000.0)
    assert again == in_flight == young
    assert yes is not None
    assert (yes.ok, yes.at) == (True, 1010.0)
    assert len(calls) == 2


def test_a_held_gate_asks_for_a_reconcile_when_it_may_ask_again() -> None:
    """No resync needed: the reconcile comes back when the failed answer is old enough."""

    async def main() -> float:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles, gate_retry_s=0.3)
        caller.gate(MODEL, "k", Hook("pre-rollout", receiver.url("/gate")), body())
        await reconciles.next()
        answered = time.monotonic()
        await reconciles.next()
        await caller.close()
        return time.monotonic() - answered

    with WebhookReceiver() as receiver:
        receiver.respond("/gate", 503)
        waited = run(main)
        calls = receiver.calls("/gate")

    assert 0.25 < waited < 2.0
    assert len(calls) == 1  # the reconcile decides whether to ask again


def test_calls_in_flight_are_capped() -> None:
    async def main() -> None:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles, concurrency=1)
        hook = Hook("rollout", receiver.url("/slow"))
        caller.gate(MODEL, "rollout/1", hook, body("rollout"))
        caller.gate(MODEL, "rollout/2", hook, body("rollout"))
        await reconciles.next()
        await reconciles.next()
        await caller.close()

    with WebhookReceiver() as receiver:
        receiver.hang("/slow", 0.3)
        run(main)
        first, second = receiver.calls("/slow")

    assert second.at - first.at > 0.25


def test_forget_gates_keeps_only_the_keys_still_asked() -> None:
    async def main() -> tuple[Answer | None, Answer | None]:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles)
        hook = Hook("pre-rollout", receiver.url("/gate"))
        caller.gate(MODEL, "old", hook, body())
        caller.gate(MODEL, "new", hook, body())
        await reconciles.next()
        await reconciles.next()
        caller.forget_gates(MODEL, keep={"new"})
        kept = caller.gate(MODEL, "new", hook, body())
        dropped = caller.gate(MODEL, "old", hook, body())  # a new question: asked again
        await reconciles.next()
        await caller.close()
        return kept, dropped

    with WebhookReceiver() as receiver:
        kept, dropped = run(main)
        calls = receiver.calls("/gate")

    assert kept is not None
    assert kept.ok
    assert dropped is None
    assert len(calls) == 3


def test_forget_drops_answers_and_cancels_gate_calls_in_flight() -> None:
    async def main() -> tuple[Answer | None, list[tuple[str, str]]]:
        reconciles = Reconciles()
        caller = WebhookCaller(on_answer=reconciles)
        caller.gate(MODEL, "k", Hook("pre-rollout", receiver.url("/gate")), body())
        await reconciles.next()
        caller.forget(MODEL)
        again = caller.gate(MODEL, "k", Hook("pre-rollout", receiver.url("/gate")), body())
        caller.gate(MODEL, "slow", Hook("pre-rollout", receiver.url("/slow")), body())
        await arrived(receiver, 2, "/gate")
        await arrived(receiver, 1, "/slow")
        caller.forget(MODEL)
        await asyncio.sleep(0.6)  # both would have answered by now
        asked = list(reconciles.asked)
        await caller.close()
        return again, asked

    with WebhookReceiver() as receiver:
        receiver.hang("/gate", 0.3)
        receiver.hang("/slow", 0.3)
        again, asked = run(main)

    assert again is None
    assert asked == [MODEL]  # neither the second /gate answer nor /slow's was kept


# notifications


def test_a_notification_is_retried_with_backoff_until_it_is_taken() -> None:
    async def main() -> float:
        caller = WebhookCaller(on_answer=Reconciles(), notify_backoff_s=(0.1, 0.2, 5))
        hook = Hook("promoted", receiver.url("/notify"))
        started = time.monotonic()
        caller.notify(MODEL, "promoted/7f3a1c2e4b/1", hook, body("promoted"))
        returned = time.monotonic() - started
        await arrived(receiver, 3, "/notify")
        await asyncio.sleep(0.3)
        await caller.close()
        return returned

    with WebhookReceiver() as receiver:
        receiver.respond("/notify", 503, times=2)
        returned = run(main)
        calls = receiver.calls("/notify")

    assert returned < 0.05  # fire and forget
    assert len(calls) == 3  # 503, 503, then 200: no more
    assert calls[1].at - calls[0].at >= 0.09
    assert calls[2].at - calls[1].at >= 0.19
    assert all(c.body == body("promoted") for c in calls)


def test_a_notification_is_sent_once_per_key() -> None:
    async def main() -> None:
        caller = WebhookCaller(on_answer=Reconciles())
        hook = Hook("rolled-back", receiver.url("/notify"))
        for _ in range(3):  # each reconcile says it again
            caller.notify(MODEL, "rolled-back/7f3a1c2e4b/1", hook, body("rolled-back"))
        caller.notify(MODEL, "rolled-back/7f3a1c2e4b/2", hook, body("rolled-back", attempt=2))
        caller.notify(("other", "iris"), "rolled-back/7f3a1c2e4b/1", hook, body("rolled-back"))
        await arrived(receiver, 3, "/notify")
        await asyncio.sleep(0.2)
        await caller.close()

    with WebhookReceiver() as receiver:
        run(main)
        calls = receiver.calls("/notify")

    assert sorted(c.body["attempt"] for c in calls) == [1, 1, 2]


def test_a_notification_that_always_fails_gives_up_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        caller = WebhookCaller(on_answer=Reconciles(), notify_backoff_s=(0.01, 0.01))
        hook = Hook("promoted", receiver.url("/notify") + "?token=" + SECRET)
        caller.notify(MODEL, "promoted/7f3a1c2e4b/1", hook, body("promoted"))
        await arrived(receiver, 3, "/notify")
        await asyncio.sleep(0.2)
        await caller.close()

    with WebhookReceiver() as receiver:
        receiver.respond("/notify", 500, body=SECRET.encode())
        with caplog.at_level(logging.WARNING, logger="mlmodel_operator.webhooks"):
            run(main)
        calls = receiver.calls("/notify")

    assert len(calls) == 3
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert f"127.0.0.1:{receiver.port}/notify" in text
    assert "answered HTTP 500" in text
    assert SECRET not in text


def test_forget_lets_a_key_be_sent_again_but_leaves_a_notification_under_way() -> None:
    async def main() -> None:
        caller = WebhookCaller(on_answer=Reconciles(), notify_backoff_s=(0.2,))
        hook = Hook("rolled-back", receiver.url("/notify"))
        caller.notify(MODEL, "k", hook, body("rolled-back"))
        await arrived(receiver, 1, "/notify")
        caller.forget(MODEL)  # the MLModel is deleted while its rollback is being told
        await arrived(receiver, 2, "/notify")  # the retry still goes out
        caller.notify(MODEL, "k", hook, body("rolled-back"))  # a new MLModel of that name
        await arrived(receiver, 3, "/notify")
        await caller.close()

    with WebhookReceiver() as receiver:
        receiver.respond("/notify", 503, times=1)
        run(main)
