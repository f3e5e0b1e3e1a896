"""Rollout webhooks (`spec.rollout.webhooks`), called off the reconcile path.

A reconcile never waits for a webhook receiver. For a gate (`pre-rollout`,
`confirm-promotion`, and `rollout`, whose answer judges one analysis interval) it asks
`WebhookCaller.gate` for the latest answer to a call it names by a key: None while the
first call is under way, and the call runs in a task of its own, under a cap on calls in
flight, and asks for the model to be reconciled (`on_answer`) when its answer is in. A
failed gate answer is asked again once it is `gate_retry_s` old, so a held canary goes on
when the receiver says yes. Notifications (`promoted`, `rolled-back`) are sent by
`WebhookCaller.notify`: once per key, retried with backoff, never blocking the rollout
and never failing it. Whether a URL may be called at all is the administrator's policy
(`--allowed-webhook-urls`), checked by whoever builds the `Hook`s before they get here.

The receivers are chosen by people who write MLModels, so an answer is trusted with
nothing: no redirects (an allow-list checks only the first URL), at most 64 KiB of an
answer is read and then ignored, no cookies are kept, and an answer's detail says what
happened ("answered HTTP 503", "no answer within 2 s", "connection refused") without
quoting a word of what came back.

Every type is POSTed the same JSON object (`payload`), with
`Content-Type: application/json`; its keys are stable, and new ones may be added:

    {
      "type": "confirm-promotion",        # one of TYPES
      "name": "iris",                     # the MLModel
      "namespace": "models",
      "stableRevision": "5d8c7f6b9a",     # null while nothing serves yet
      "canaryRevision": "7f3a1c2e4b",     # null when no canary exists (e.g. promoted)
      "attempt": 1,                       # rollout attempt of this canary revision, from 1
      "step": 3,                          # canary step, 1-based; null outside the steps
      "steps": 3,                         # number of steps of the rollout
      "weight": 50,                       # percent of the traffic the canary gets now
      "phase": "Progressing",             # the MLModel's status.phase
      "message": "step 3 of 3 passed its analysis",
      "timestamp": "2026-03-01T12:00:00Z" # when the operator decided to call, UTC
    }

The body holds nothing secret: names, revisions (hashes of the spec) and the status
message the MLModel shows to anyone who may read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from mlmodel_operator.policy import display_url

logger = logging.getLogger(__name__)

TYPES = ("pre-rollout", "rollout", "confirm-promotion", "promoted", "rolled-back")
# The rollout waits for these answers (`gate`): a non-2xx holds the canary
# (`pre-rollout`, `confirm-promotion`) or fails its analysis interval (`rollout`).
GATES = ("pre-rollout", "rollout", "confirm-promotion")
# Told what happened (`notify`); their answers change nothing.
NOTIFICATIONS = ("promoted", "rolled-back")
ANSWER_LIMIT_BYTES = 64 * 1024
# A receiver has no use for more and a key per rollout event suffices; kept per model so
# that a busy model cannot push a quiet one's keys out (and resend its notifications).
SENT_KEYS_PER_MODEL = 1000
HEADERS = {"Content-Type": "application/json", "User-Agent": "mlmodel-operator"}

Model = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Hook:
    """One entry of `spec.rollout.webhooks`."""

    type: str
    url: str
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"webhook type {self.type!r} is not one of {', '.join(TYPES)}")
        if not self.timeout_s > 0:
            raise ValueError(f"webhook timeout must be > 0 seconds, not {self.timeout_s}")


@dataclass(frozen=True)
class Answer:
    """How a call went. `detail` is short and quotes nothing from the receiver's answer,
    so it may go into status, Events and logs as it is; `at` is when the call ended."""

    ok: bool
    status: int | None  # None: no HTTP answer at all
    detail: str
    at: float


def payload(
    *,
    name: str,
    namespace: str,
    type: str,
    stable: str | None,
    canary: str | None,
    step: int | None,
    steps: int,
    weight: int,
    phase: str,
    message: str,
    attempt: int,
    at: float,
) -> dict[str, Any]:
    """The JSON body of every webhook call, as the module docstring shows it.

    `step` is 1-based (None outside the steps); `at` (seconds since the epoch) is the
    reconcile's `now`, passed in so that this stays pure and a retried notification
    carries the time of the event, not of the retry."""
    if type not in TYPES:
        raise ValueError(f"webhook type {type!r} is not one of {', '.join(TYPES)}")
    return {
        "type": type,
        "name": name,
        "namespace": namespace,
        "stableRevision": stable,
        "canaryRevision": canary,
        "attempt": attempt,
        "step": step,
        "steps": steps,
        "weight": weight,
        "phase": phase,
        "message": message,
        "timestamp": datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def call(
    session: aiohttp.ClientSession,
    hook: Hook,
    body: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.time,
) -> Answer:
    """POST `body` to `hook.url` and say how it went: whatever the receiver or the
    network does is an Answer, never an exception.

    `hook.timeout_s` bounds the whole exchange: connecting, sending, and reading the
    answer (at most ANSWER_LIMIT_BYTES of it, then the connection is dropped)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    try:
        async with asyncio.timeout(hook.timeout_s):
            async with session.post(
                hook.url, data=data, headers=HEADERS, allow_redirects=False
            ) as response:
                await _skim(response)
                status = response.status
    except TimeoutError:
        return Answer(False, None, f"no answer within {hook.timeout_s:g} s", clock())
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return Answer(False, None, _describe(error), clock())
    if 200 <= status < 300:
        return Answer(True, status, f"answered HTTP {status}", clock())
    if 300 <= status < 400:
        return Answer(
            False, status, f"answered HTTP {status} (redirects are not followed)", clock()
        )
    return Answer(False, status, f"answered HTTP {status}", clock())


async def _skim(response: aiohttp.ClientResponse) -> None:
    """Read the answer up to the limit, so that a short one leaves the connection fit to
    be reused; past the limit, drop the connection rather than read on."""
    left = ANSWER_LIMIT_BYTES
    while left > 0:
        chunk = await response.content.read(left)
        if not chunk:
            return
        left -= len(chunk)
    if not response.content.at_eof():
        response.close()


_ERRNO_DETAILS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def _describe(error: BaseException) -> str:
    """A failed exchange as a few fixed words: never the exception's own text, which may
    carry the URL (with its query) or bytes of the answer."""
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not accepted"
    if isinstance(error, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "connection closed before an answer"
    if isinstance(error, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "unreadable answer"
    if isinstance(error, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(error, OSError) and error.errno in _ERRNO_DETAILS:
        return _ERRNO_DETAILS[error.errno]
    if isinstance(error, ConnectionError | OSError):
        return f"connection failed ({type(error).__name__})"
    return f"call failed ({type(error).__name__})"


class WebhookCaller:
    """The operator's webhook calls: gates answered per model and key, notifications sent
    once per key. One per operator, made by the controller like `MetricsReader`."""

    def __init__(
        self,
        *,
        on_answer: Callable[[str, str], None],
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
        gate_retry_s: float = 10.0,
        notify_backoff_s: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60, 120),
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"webhook concurrency must be >= 1, not {concurrency}")
        self._on_answer = on_answer
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._gate_retry_s = gate_retry_s
        self._backoff = notify_backoff_s
        self._answers: dict[Model, dict[str, Answer]] = {}
        self._gating: dict[Model, dict[str, asyncio.Task[None]]] = {}
        self._wakeups: dict[Model, dict[str, asyncio.TimerHandle]] = {}
        self._sent: dict[Model, OrderedDict[str, None]] = {}
        self._notifying: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def answers(self, model: Model) -> dict[str, Answer]:
        """The latest answer to each of the model's gate calls, by key (for the plan)."""
        return dict(self._answers.get(model, {}))

    def gate(self, model: Model, key: str, hook: Hook, body: Mapping[str, Any]) -> Answer | None:
        """The latest answer to the call named `key` (None before the first is in).

        Calls when there is no answer and no call under way, and again when the latest
        answer failed and is `gate_retry_s` old. `key` names one question, e.g.
        "pre-rollout/<revision>/<attempt>/<url>": a new question needs a new key. The
        body sent is the one given with the call that starts it."""
        latest = self._answers.get(model, {}).get(key)
        if key in self._gating.get(model, {}):
            return latest
        stale = latest is not None and not latest.ok
        if latest is None or (stale and self._clock() - latest.at >= self._gate_retry_s):
            if (wakeup := self._wakeups.get(model, {}).pop(key, None)) is not None:
                wakeup.cancel()
            task = asyncio.create_task(
                self._ask(model, key, hook, dict(body)), name=f"webhook-{model[0]}/{model[1]}"
            )
            self._gating.setdefault(model, {})[key] = task
        return latest

    def forget_gates(self, model: Model, keep: set[str]) -> None:
        """Drop the model's gate answers, and cancel its gate calls, whose key is not in
        `keep`: the questions its rollout no longer asks."""
        answers = self._answers.get(model, {})
        for key in [k for k in answers if k not in keep]:
            del answers[key]
        calls = self._gating.get(model, {})
        for key in [k for k in calls if k not in keep]:
            calls.pop(key).cancel()
        wakeups = self._wakeups.get(model, {})
        for key in [k for k in wakeups if k not in keep]:
            wakeups.pop(key).cancel()
        if not answers:
            self._answers.pop(model, None)
        if not calls:
            self._gating.pop(model, None)
        if not wakeups:
            self._wakeups.pop(model, None)

    def notify(self, model: Model, key: str, hook: Hook, body: Mapping[str, Any]) -> None:
        """Send `body` to `hook` once for `key`, in the background; a reconcile that says
        the same again (same key) sends nothing more. A failed call is retried after each
        delay of `notify_backoff_s` in turn, then given up with a warning."""
        sent = self._sent.setdefault(model, OrderedDict())
        if key in sent:
            sent.move_to_end(key)  # still being said: keep it from being pushed out
            return
        sent[key] = None
        if len(sent) > SENT_KEYS_PER_MODEL:
            sent.popitem(last=False)
        task = asyncio.create_task(
            self._deliver(model, hook, dict(body)), name=f"webhook-{model[0]}/{model[1]}"
        )
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    def forget(self, model: Model) -> None:
        """Drop everything kept for a deleted MLModel and cancel its gate calls.

        Notifications already under way go on: they tell of something that happened
        (a promotion, a rollback) before the deletion, and the people or systems
        listening still want to hear it; a notification keeps no state of the model and
        ends by itself after its last retry."""
        self.forget_gates(model, set())
        self._sent.pop(model, None)

    async def close(self) -> None:
        """Cancel every call, notifications included, and close the session."""
        tasks = [*self._notifying, *(t for d in self._gating.values() for t in d.values())]
        for wakeups in self._wakeups.values():
            for wakeup in wakeups.values():
                wakeup.cancel()
        self._wakeups.clear()
        self._gating.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Each call has its own deadline (the hook's); no cookie is kept between
            # receivers, whatever they set.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def _call(self, hook: Hook, body: Mapping[str, Any]) -> Answer:
        async with self._slots:
            try:
                return await call(self._open(), hook, body, clock=self._clock)
            except Exception as error:  # a bug here must hold a gate, not kill the task
                logger.exception("calling webhook %s failed", display_url(hook.url))
                return Answer(
                    False, None, f"internal error ({type(error).__name__})", self._clock()
                )

    async def _ask(self, model: Model, key: str, hook: Hook, body: Mapping[str, Any]) -> None:
        answer = await self._call(hook, body)
        self._answers.setdefault(model, {})[key] = answer
        if (calls := self._gating.get(model)) is not None:
            calls.pop(key, None)
            if not calls:
                del self._gating[model]
        if not answer.ok:
            # Come back when the answer is old enough to ask again, without waiting for
            # a resync; the reconcile then asks again only if it still wants this key.
            loop = asyncio.get_running_loop()
            wakeup = loop.call_later(self._gate_retry_s, self._retry_due, model, key)
            self._wakeups.setdefault(model, {})[key] = wakeup
        self._reconcile(model)

    def _retry_due(self, model: Model, key: str) -> None:
        if (wakeups := self._wakeups.get(model)) is not None:
            wakeups.pop(key, None)
            if not wakeups:
                del self._wakeups[model]
        self._reconcile(model)

    def _reconcile(self, model: Model) -> None:
        try:
            self._on_answer(*model)
        except Exception:  # the controller's queue failing must not end a call's task
            logger.exception("asking for a reconcile of %s/%s failed", *model)

    async def _deliver(self, model: Model, hook: Hook, body: Mapping[str, Any]) -> None:
        answer = await self._call(hook, body)
        for delay in self._backoff:
            if answer.ok:
                return
            logger.debug(
                "%s webhook %s of %s/%s: %s; again in %g s",
                hook.type,
                display_url(hook.url),
                *model,
                answer.detail,
                delay,
            )
            await asyncio.sleep(delay)
            answer = await self._call(hook, body)
        if not answer.ok:
            logger.warning(
                "%s webhook %s of %s/%s not delivered after %d calls, giving up: %s",
                hook.type,
                display_url(hook.url),
                *model,
                len(self._backoff) + 1,
                answer.detail,
            )
