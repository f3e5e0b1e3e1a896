"""The HTTP exchange of one inference request, from its head to the answer.

`app.py` hands every `POST` to an inference path here, with the protocol adapters
its route carries, and counts the status returned. What the head alone rules out
(malformed lengths, no model yet, bodies over their limit) is refused before the
body is read; then the request is admitted and timed by the data plane
(`dataplane.py`), its body read within its limit (`asgi.py`), decoded by its
adapter (`adapters.py`; in a thread when large), run by the model through the data
plane, and encoded by the adapter. A refusal is answered at once without resetting
a client that is still sending (`asgi.py`).

Everything here is on every request's path: the data plane's callables are bound
once, and the head checks are a plain function that returns the coroutine to
await, so that a request costs one coroutine here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final

from mlmodel_runtime.serve.adapters import Adapter, Adapters
from mlmodel_runtime.serve.admission import Growth, Refusal, request_weight
from mlmodel_runtime.serve.asgi import (
    CLOSE,
    BodyRefused,
    ClientGone,
    Header,
    Receive,
    Scope,
    Send,
    answer,
    answer_early,
    discard_body,
    finish,
    read_body,
    read_head,
    too_large,
    whole_body,
)
from mlmodel_runtime.serve.batching import QueueFull
from mlmodel_runtime.serve.codec import RequestError, error_body
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.dataplane import DataPlane, ServedModel
from mlmodel_runtime.serve.model import InputRejected

# Bodies from this size on are decoded in a thread. Binary BYTES elements are decoded
# by a Python loop (1 M elements stalled the event loop for 0.9-1.1 s, at most 95 ms
# in a thread); orjson and NumPy hold the GIL for a whole call, so for JSON a thread
# only lets the loop in between parsing and building arrays (p99 stall halved).
_DECODE_IN_THREAD_BYTES: Final = 256 * 1024
_CLOSING: Final[tuple[Header, ...]] = (CLOSE,)
# Refused requests with a body up to this long are read to their end and answered on
# a connection kept open (`_refuse`).
_KEEP_ALIVE_REFUSAL_BYTES: Final = 64 * 1024
REVISION_HEADER: Final = b"x-mlmodel-revision"


class InferenceExchange:
    """The inference requests of one worker, over HTTP."""

    def __init__(
        self, config: ServeConfig, plane: DataPlane, *, on_shed: Callable[[str], None]
    ) -> None:
        self.config = config
        self._plane = plane
        # Told the bound (metrics.SHED) of each request shed with 503.
        self._on_shed = on_shed
        self._max_json, self._json_flag = config.json_limit
        self._enter = plane.admission.enter
        self._leave = plane.admission.leave
        self._deadlines = plane.deadlines
        # Extra headers of every answer the model was asked for: which revision
        # answered (a client behind a traffic split can count by it, as the e2e load
        # generator does), and Connection: close once draining.
        self.identity: tuple[Header, ...] = ()
        if config.revision:
            self.identity = ((REVISION_HEADER, config.revision.encode("ascii")),)
        self._answer_headers: tuple[Header, ...] = self.identity

    def begin_drain(self) -> None:
        """Answers from now on ask clients to close their connections to this process."""
        self._answer_headers = (*self.identity, CLOSE)

    def handle(
        self, scope: Scope, receive: Receive, send: Send, adapters: Adapters
    ) -> Coroutine[Any, Any, int]:
        """The coroutine that answers one inference request, with the status it answered.

        What the head alone rules out is refused here, before the body is read. This
        is a plain function so that every request's path has one coroutine less.
        """
        try:
            declared, json_length, expects_continue = read_head(scope["headers"])
        except RequestError as exc:
            return self._refused(receive, send, exc.status, exc.message)
        model = self._plane.model
        if model is None:
            message = self._plane.not_ready_message()
            return self._refused(
                receive, send, 503, message, unsent=expects_continue, small=declared
            )
        adapter = adapters.json if json_length is None else adapters.binary
        json_bytes = json_length if adapter.binary else None
        if json_bytes is not None and json_bytes > self._max_json:
            error = too_large(json_bytes, self._max_json, self._json_flag, "JSON header")
            return self._refused(receive, send, 413, error.message, unsent=expects_continue)
        if declared is not None and declared > adapter.limit:
            error = too_large(declared, adapter.limit, adapter.limit_flag)
            return self._refused(receive, send, 413, error.message, unsent=expects_continue)
        return self._serve(
            receive,
            send,
            model,
            adapter,
            declared=declared,
            json_bytes=json_bytes,
            unsent=expects_continue,
        )

    async def _refused(
        self,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        *,
        unsent: bool = False,
        small: int | None = None,
    ) -> int:
        task = self._deadlines.arm()
        try:
            return await self._refuse(
                receive, send, status, message, task=task, unsent=unsent, small=small
            )
        finally:
            self._deadlines.disarm(task)

    async def _serve(
        self,
        receive: Receive,
        send: Send,
        model: ServedModel,
        adapter: Adapter,
        *,
        declared: int | None,
        json_bytes: int | None,
        unsent: bool,
    ) -> int:
        """Admit the request, then read, decode, infer and answer it.

        An admitted request holds its weight until it is answered; a body of
        undeclared length (chunked) grows its weight as it arrives.
        """
        deadlines = self._deadlines
        task = deadlines.arm()
        growth = None
        weight = 0
        if declared is not None:
            weight = request_weight(
                declared, json_bytes=json_bytes, binary_weight=model.binary_weight
            )
        refusal = Refusal.QUEUED if model.queue_full() else self._enter(weight)
        if refusal is not None:
            try:
                status, message = self.refusal_answer(refusal)
                return await self._refuse(
                    receive, send, status, message, task=task, unsent=unsent, small=declared
                )
            finally:
                deadlines.disarm(task)
        if declared is None:
            growth = Growth(self._plane.admission, json_bytes, model.binary_weight)
        rules = model.rules
        body_read = False
        try:
            first = await receive()
            body: bytes | bytearray | None = whole_body(first, declared)
            if body is None:
                body = await read_body(
                    receive,
                    first,
                    declared=declared,
                    limit=adapter.limit,
                    flag=adapter.limit_flag,
                    admit=None if growth is None else growth.admit,
                )
            body_read = True
            if len(body) >= _DECODE_IN_THREAD_BYTES:
                request = await asyncio.to_thread(adapter.decode, body, json_bytes, rules)
            else:
                request = adapter.decode(body, json_bytes, rules)
            del body
            outputs = await model.submit(request.arrays, request.rows)
            payload, headers = adapter.encode(rules, request, outputs, self._answer_headers)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return 200
        except RequestError as exc:
            if not body_read:  # a chunked body beyond its limit
                return await self._refuse(receive, send, exc.status, exc.message, task=task)
            return await answer(send, exc.status, error_body(exc.message), *self._answer_headers)
        except BodyRefused as exc:
            status, message = self.refusal_answer(exc.refusal)
            return await self._refuse(receive, send, status, message, task=task)
        except QueueFull:  # it filled while this request's body was read and decoded
            status, message = self.refusal_answer(Refusal.QUEUED)
            return await answer(send, status, error_body(message), *self._answer_headers)
        except InputRejected as exc:
            message = f"the model rejected the input: {exc}"
            return await answer(send, 400, error_body(message), *self._answer_headers)
        except asyncio.CancelledError:
            if not deadlines.was_expired(task):
                raise
            timeout = deadlines.timeout_s
            if body_read:
                message = f"inference did not finish within {timeout} s"
                return await answer(send, 504, error_body(message), *self._answer_headers)
            message = f"request body not received within {timeout} s"
            return await answer(send, 408, error_body(message), *_CLOSING)
        except ClientGone:
            return 499
        finally:
            self._leave(weight if growth is None else growth.weight)
            deadlines.disarm(task)

    def refusal_answer(self, refusal: Refusal) -> tuple[int, str]:
        """The status and message of a refused request, the shed ones counted by bound;
        the gRPC service (`grpc_server.py`) answers its refusals with them too."""
        if refusal is Refusal.TOO_HEAVY:
            return 413, (
                "the request body weighs more, once decoded, than this server may hold for all "
                f"requests at once ({self.config.max_inflight_bytes} bytes, --max-inflight-bytes); "
                "send it in smaller requests"
            )
        if refusal is Refusal.QUEUED:
            self._on_shed("queue")
            return 503, (
                f"{self.config.max_queued_requests} requests are waiting for the model already "
                "(--max-queued-requests); retry shortly"
            )
        if refusal is Refusal.BUSY:
            self._on_shed("concurrency")
            return 503, (
                f"{self.config.max_concurrent_requests} requests are in flight already "
                "(--max-concurrent-requests); retry shortly"
            )
        self._on_shed("memory")
        return 503, (
            "the requests in flight hold the memory budget of this server "
            f"({self.config.max_inflight_bytes} bytes, --max-inflight-bytes); retry shortly"
        )

    async def _refuse(
        self,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        *,
        task: asyncio.Task[Any],
        unsent: bool = False,
        small: int | None = None,
    ) -> int:
        """Answer at once without taking the body, and without resetting a client that is
        still sending it (see `asgi.py`): what it sends is read and dropped until the
        body ends or the request's deadline passes, then the connection is closed.
        `unsent`: the client waits for 100 Continue, so it has sent no body to drop.

        `small`: the body's declared length, when it is known. A body of at most
        `_KEEP_ALIVE_REFUSAL_BYTES` has mostly arrived with the head: it is dropped
        first and the answer keeps the connection. A shed request then costs the
        client no new connection: under overload, reconnecting after every 503 cost the
        clients and the server more than the shedding saved (docs/benchmarks.md,
        "Overload")."""
        body = error_body(message)
        if unsent:
            return await answer(send, status, body, CLOSE)
        if small is not None and small <= _KEEP_ALIVE_REFUSAL_BYTES:
            try:
                await discard_body(receive)
            except asyncio.CancelledError:
                if not self._deadlines.was_expired(task):
                    raise
                return await answer(send, status, body, CLOSE)
            return await answer(send, status, body, *self._answer_headers)
        await answer_early(send, status, body)
        try:
            await discard_body(receive)
        except asyncio.CancelledError:
            if not self._deadlines.was_expired(task):
                raise
        await finish(send)
        return status
