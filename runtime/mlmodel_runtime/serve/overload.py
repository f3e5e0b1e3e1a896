"""Shedding when the event loop itself is the bottleneck (`--max-loop-lag-ms`).

The bounds of `admission.py` count requests and bytes held by the model: they shed
when the *model* cannot keep up. For a small model the event loop is the bottleneck
instead (parsing heads, JSON, writing answers): offered more than it can parse, it
never holds many requests at once, so no count trips, and the excess waits unseen in
the sockets' kernel buffers while latency grows without bound. Measured with
`bench/overload_bench.py` at twice the capacity of the iris forest: p99 of 30 s, and
refusing through the app (about 65 us a request, most of serving's cost) did not help.

So the loop's lateness is measured, and while it runs late the connection protocol
(`protocol.py`) answers a share of the new inference requests with a 503 written from
a prepared buffer, before any task, scope or app code exists for them: about a quarter
of what serving costs (59,000 refusals/s against 14,800 answers/s for iris in a closed
loop), so the loop catches up and serves the rest.

The measure: a timer every `BEAT_S`; how late it runs is how long the loop's last
iteration took (uvloop runs timers once per iteration). From the second beat in a row
later than the bound, the share to shed rises with how late the beat was, up to nine
in ten (`MAX_SHARE`); it falls as beats come on time. One long iteration alone (a
garbage collection, a large body decoded on the loop) sheds nothing. Shedding
everything while late and nothing once caught up was tried first: the floods let in
between kept the served p99 near 150 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

from mlmodel_runtime.serve.asgi import CLOSE, JSON_CONTENT, RETRY_AFTER, Header
from mlmodel_runtime.serve.codec import error_body

# Every 2 ms: a served request takes three or four of the loop's turns, so to keep its
# p99 within 50 ms the turns must stay within a few ms, and the share must follow them
# that fast (at 5 ms beats and a 20 ms bound the served p99 stayed at 120-180 ms at
# twice the sustainable rate; docs/benchmarks.md, "Overload").
BEAT_S: Final = 0.002
# How fast the shed share follows the loop's lateness, per beat: up by GAIN for each
# bound's worth of lateness beyond the bound (from the second late beat in a row), down
# by DECAY as the loop runs on time (1 -> 0 in 40 ms on an idle loop).
GAIN: Final = 0.1
DECAY: Final = 0.05
# At most nine in ten are shed. Clients that resend at once whatever the answer (a
# closed loop of 256 connections) keep the loop as busy however many it sheds, so the
# share rose to all of them and one request in a hundred was served (iris: 212-905/s
# against 12,000/s with no bound); with one in ten kept they get 9,200/s, and at twice
# the sustainable rate the served p99 stayed within 50 ms as before (the benchmark).
MAX_SHARE: Final = 0.9


@dataclass(slots=True)
class LoopLag:
    """How much of the inference requests to shed: `share`, read by every connection's
    protocol with `admit`.

    `observe` is the pure part (a beat's lateness in, the share out); `start` runs it
    on a loop's timer. The share moves by steps, so that the requests admitted are
    about what the loop can serve on time: shedding all of them at once and then none
    let floods in between, and each admitted request waited for the floods' iterations.
    """

    max_lag_s: float
    share: float = 0.0  # of the inference requests to shed now, 0 to 1
    late: bool = False  # the last beat was later than the bound
    credit: float = 0.0  # admissions owed (`admit`)
    worst_s: float = 0.0  # the latest beat seen (for tests and logs)
    _handle: asyncio.TimerHandle | None = field(default=None, repr=False)

    def observe(self, lag_s: float) -> float:
        """Take one beat's lateness; the share to shed from now on."""
        if lag_s > self.worst_s:
            self.worst_s = lag_s
        bound = self.max_lag_s
        if lag_s > bound:
            # One late beat alone (a collection, a large body decoded on the loop) is
            # not overload.
            if self.late:
                self.share = min(MAX_SHARE, self.share + GAIN * (lag_s - bound) / bound)
            self.late = True
        else:
            self.late = False
            if self.share:
                self.share = max(0.0, self.share - DECAY * (bound - lag_s) / bound)
        return self.share

    def admit(self) -> bool:
        """Whether to serve this inference request while shedding: `1 - share` of them,
        spread evenly (no random numbers on this path)."""
        credit = self.credit + 1.0 - self.share
        if credit >= 1.0:
            self.credit = credit - 1.0
            return True
        self.credit = credit
        return False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Beat on `loop` until `stop`."""
        now = loop.time

        def beat(due: float) -> None:
            at = now()
            self.observe(at - due)
            self._handle = loop.call_at(at + BEAT_S, beat, at + BEAT_S)

        first = now() + BEAT_S
        self._handle = loop.call_at(first, beat, first)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.share = 0.0


@dataclass(frozen=True, slots=True)
class LoopGuard:
    """What the connection protocol needs to shed: the state, whom to tell, and the
    answer as bytes on the wire (keeping the connection, and closing it)."""

    lag: LoopLag
    on_shed: Callable[[], None]  # counts the request (503) and why (metrics)
    answer: bytes
    closing_answer: bytes

    @classmethod
    def build(
        cls, lag: LoopLag, on_shed: Callable[[], None], *, headers: Sequence[Header]
    ) -> LoopGuard:
        """The guard answering 503 with `headers` (the revision), `Retry-After` and the
        error body every shed answer has."""
        message = (
            f"the server is overloaded: its event loop runs more than "
            f"{lag.max_lag_s * 1000:g} ms late (--max-loop-lag-ms); retry shortly"
        )
        body = error_body(message)
        fixed = [JSON_CONTENT, (b"content-length", b"%d" % len(body)), RETRY_AFTER, *headers]
        return cls(
            lag,
            on_shed,
            answer=_response(503, fixed, body),
            closing_answer=_response(503, [*fixed, CLOSE], body),
        )


def _response(status: int, headers: Sequence[Header], body: bytes) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
