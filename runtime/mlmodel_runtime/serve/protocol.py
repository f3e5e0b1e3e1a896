"""uvicorn's httptools protocol with bounds on connections and request headers.

`server.py` hands `protocol_class(...)` to uvicorn, which makes one instance per
connection, and has `SlowHeads.sweep` look at the open connections once a second.

uvicorn closes a keep-alive connection that stays idle (`--idle-timeout-s`), but
nothing bounds a request whose headers never end: a client that connects and
sends nothing, or sends a header byte now and then (slowloris), holds its
connection and a place forever; one that sends endless header bytes makes
httptools grow a Python bytes object by concatenation (memory, and CPU that is
quadratic in the header's size, on the event loop). Here, from the moment a
connection opens or a request's first byte arrives:

- the headers must be complete within `--header-timeout-s` of the connection's
  opening, or within `--idle-timeout-s` + `--header-timeout-s` of the previous
  answer on a kept-alive connection (uvicorn closes one that stays silent for
  `--idle-timeout-s`), or the connection is closed; the sweep checks this once a
  second, so nothing is armed or timed per request;
- they may take `--max-header-bytes`, or the client gets 431 and the connection
  is closed.

The body has its own deadline in the app (`--request-timeout-s`). Connections
beyond `--max-connections` are closed as soon as they are accepted.

While the event loop is late (`overload.py`, `--max-loop-lag-ms`), a share of the
inference requests (`POST .../infer`) is answered 503 as soon as their head is
parsed, from a prepared buffer: no task, scope or app code runs for it, and its body is dropped as
it arrives, on a connection kept open (closed when the client waits for 100 Continue
or asked for no keep-alive: its body would be parsed as the next request). A request
behind another still being answered (pipelined) is never shed this way, so answers
keep their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlmodel_runtime.serve.overload import LoopGuard

_TOO_LARGE_BODY: Final = b'{"error":"request headers too large (--max-header-bytes)"}'
_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class _NoEvent:
    def set(self) -> None:
        pass


class _Shed:
    """The exchange of a request shed at its head, in uvicorn's `cycle` slot: answered,
    so uvicorn drops its body and starts the next request as after any answer. One per
    shed request, so that `SlowHeads` sees each as a new exchange."""

    __slots__ = ()
    response_complete = True
    message_event = _NoEvent()


_INFER_SUFFIX: Final = b"/infer"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection. The class attributes are set by `protocol_class`.

    `data_received` costs two attribute reads while a request is served, and
    `on_headers_complete` one more: this is on every request's path.
    """

    max_connections: int = 1 << 30
    max_header_bytes: int = 1 << 30
    guard: LoopGuard | None = None
    # Bytes received for a request head not yet complete.
    header_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        HttpToolsProtocol.connection_made(self, transport)  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections:
            transport.close()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        HttpToolsProtocol.data_received(self, data)
        if self.cycle is not cycle:  # a new exchange began: its head is complete
            if self.header_bytes:
                self.header_bytes = 0
        elif cycle is None or cycle.response_complete:  # all of it went to a head
            self.header_bytes += len(data)
            if self.header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        guard = self.guard
        if guard is not None and guard.lag.share and self._sheddable() and not guard.lag.admit():
            self._shed(guard)
            return
        HttpToolsProtocol.on_headers_complete(self)

    def _sheddable(self) -> bool:
        cycle = self.cycle
        return (
            (cycle is None or cycle.response_complete)
            and self.parser.get_method() == b"POST"
            and self.url.partition(b"?")[0].endswith(_INFER_SUFFIX)
        )

    def _shed(self, guard: LoopGuard) -> None:
        self.cycle = _Shed()  # type: ignore[assignment]
        guard.on_shed()
        if self.expect_100_continue or not self.parser.should_keep_alive():
            self.transport.write(guard.closing_answer)
            self.transport.close()
            return
        self.transport.write(guard.answer)
        # No keep-alive timer is armed (it would cost as much as the rest of the
        # refusal): a connection that goes quiet now is closed by `SlowHeads`.


def protocol_class(
    *, max_connections: int, max_header_bytes: int, guard: LoopGuard | None = None
) -> type[HttpToolsProtocol]:
    """The protocol class for one server, carrying its limits and its loop guard
    (uvicorn takes a class)."""
    limits = {
        "max_connections": max_connections,
        "max_header_bytes": max_header_bytes,
        "guard": guard,
    }
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), limits)


class SlowHeads:
    """Connections waiting for a request head, and since when; late ones are closed.

    A connection waits for a head while it has no exchange, or its last one is
    answered. The sweep notes when it first sees a connection waiting after a
    given exchange, so its deadlines are late by up to the sweep's interval.
    """

    def __init__(self, *, header_timeout_s: float, idle_timeout_s: float) -> None:
        self._first = header_timeout_s
        self._next = idle_timeout_s + header_timeout_s
        self._waiting: dict[GuardedHttpToolsProtocol, tuple[object, float]] = {}

    def sweep(self, connections: Iterable[object], now: float) -> int:
        """Close the connections that waited too long; how many."""
        waiting: dict[GuardedHttpToolsProtocol, tuple[object, float]] = {}
        closed = 0
        for connection in connections:
            if not isinstance(connection, GuardedHttpToolsProtocol):
                continue
            cycle = connection.cycle
            if cycle is not None and not cycle.response_complete:
                continue
            seen = self._waiting.get(connection)
            if seen is None or seen[0] is not cycle:
                waiting[connection] = (cycle, now)
                continue
            allowed = self._first if cycle is None else self._next
            if now - seen[1] <= allowed:
                waiting[connection] = seen
            elif not connection.transport.is_closing():
                connection.transport.close()
                closed += 1
        self._waiting = waiting
        return closed
