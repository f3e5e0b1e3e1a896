"""Per-request deadlines (`--request-timeout-s`): entries in a dict swept by one task.

Owned by the data plane (`dataplane.py`); the HTTP exchange of an inference request
(`exchange.py`) arms its task's deadline when the request arrives and disarms it when
it is answered. A task past its deadline is cancelled by the sweep and then asks
`was_expired` whether the cancellation was the deadline's (it may go on to answer
408 or 504) or someone else's (it must let the cancellation through).

Why not `asyncio.timeout()` per request: it costs several microseconds on every
request's path, where a dict entry costs a fraction of one; the sweep makes a
deadline late by up to its interval (at most 50 ms, a quarter of the timeout when
that is shorter).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Deadlines:
    """The deadlines of the requests in flight in one worker."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._interval = max(0.005, min(0.05, timeout_s / 4))
        self._sweep_task: asyncio.Task[None] | None = None
        self._loop_time: Callable[[], float] = time.monotonic

    def start(self) -> None:
        """On the event loop, before the first request: start sweeping."""
        self._loop_time = asyncio.get_running_loop().time
        self._sweep_task = asyncio.create_task(self._sweep())

    def stop(self) -> None:
        if self._sweep_task is not None:
            self._sweep_task.cancel()

    def arm(self) -> asyncio.Task[Any]:
        """Start the current task's deadline; `disarm` must follow."""
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = self._loop_time() + self.timeout_s
        return task

    def disarm(self, task: asyncio.Task[Any]) -> None:
        self._deadlines.pop(task, None)
        self._expired.discard(task)

    def was_expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the sweep cancelled this task for its deadline (then it may go on)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        deadlines = self._deadlines
        while True:
            await asyncio.sleep(self._interval)
            now = self._loop_time()
            expired = [task for task, deadline in deadlines.items() if deadline <= now]
            for task in expired:
                del deadlines[task]
                self._expired.add(task)
                task.cancel()
