"""Canary-analysis metric reads, off the reconcile path.

A reconcile never waits for a metrics provider: the plan says what it wants read and
from when (`analysis_loop.ReadRequest`), the controller hands that to `MetricsReader`,
which reads in a task of its own under one deadline per model and a cap on reads in
flight, keeps the latest reading per model, and asks for the model to be reconciled
when the reading is in. A slow Prometheus or a hanging pod therefore delays only its
own model's judgement (its interval turns Inconclusive), never the reconcile workers
that every other model shares. A request due later is read when it is due, by a timer
here, not by another reconcile: sequential analysis reads every second, and a
reconcile per read just to start it would double the operator's API calls. Readings
live only for models whose analysis is live; `forget` drops a model's when it no
longer is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp

from mlmodel_operator import webhooks
from mlmodel_operator.analysis.loop import Reading, ReadRequest
from mlmodel_operator.providers import prometheus, scrape

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)
# Timers fire a little early now and then: a request this close to its due time is read
# at once (and read again if that reading turns out to be early).
EARLY_S = 0.05
TIMER_LATE_S = 0.01  # our own timers aim this much past the due time
# The scrape provider keeps the metrics deadline itself, to name the pods that did not
# answer; the reader's own deadline is a guard this much later, for any provider.
GUARD_S = 0.5


class MetricsReader:
    def __init__(
        self,
        *,
        timeout_s: float,
        concurrency: int,
        on_read: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self._on_read = on_read
        self._clock = clock
        self._latest: dict[Key, Reading] = {}
        self._reading: dict[Key, asyncio.Task[None]] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._session: aiohttp.ClientSession | None = None

    def latest(self, key: Key) -> Reading | None:
        return self._latest.get(key)

    def want(
        self,
        key: Key,
        request: ReadRequest | None,
        pods: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> None:
        """Start reading `request` for `key` if it is due and not already read or being
        read; `pods` are the revisions' own pods (for the scrape provider)."""
        if request is None:
            self.forget(key)
            return
        latest = self._latest.get(key)
        have = latest is not None and latest.target == request.target
        if have and latest is not None and (latest.taken_at or 0.0) >= request.due:
            return  # a reading taken even a little before `due` is not the one wanted
        if key in self._reading:
            return  # in flight
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()  # this request replaces the one it was waiting for
        if self._clock() < request.due - EARLY_S:
            # Read at the due time itself, a hair after: a reading taken before it
            # would be taken as the one wanted here yet be too early for the
            # analysis's window, which then waits for a reading nobody takes.
            wait = request.due - self._clock() + TIMER_LATE_S
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(wait, self._start, key, request, pods)
            return
        self._start(key, request, pods)

    def _start(
        self, key: Key, request: ReadRequest, pods: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> None:
        self._timers.pop(key, None)
        if key in self._reading:
            return
        self._reading[key] = asyncio.create_task(
            self._read(key, request, pods), name=f"metrics-{key[0]}/{key[1]}"
        )

    def forget(self, key: Key) -> None:
        self._latest.pop(key, None)
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()
        if (task := self._reading.pop(key, None)) is not None:
            task.cancel()

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._reading.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The deadline of a whole read is `_read`'s; a session timeout would cut
            # it short with a less useful message.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def _read(
        self, key: Key, request: ReadRequest, pods: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> None:
        namespace, name = key
        async with self._slots:
            taken = self._clock()
            # The rollout webhooks are asked with the reading, each under its own timeout
            # (a slow receiver is its own failure, not the metrics provider's).
            hooks = asyncio.gather(
                *(webhooks.call(self._open(), hook, body) for hook, body in request.webhooks)
            )
            try:
                reading = await asyncio.wait_for(
                    self._provider(key, request, pods), timeout=self._timeout + GUARD_S
                )
            except TimeoutError:
                reading = Reading(error=f"{request.provider}: no answer within {self._timeout:g} s")
            except Exception as error:  # a provider bug must not stop the analysis
                logger.exception("reading metrics of %s/%s failed", namespace, name)
                reading = Reading(
                    error=f"{request.provider}: internal error ({type(error).__name__})"
                )
            answers = await hooks
        reading = replace(
            reading,
            taken_at=taken,
            target=request.target,
            webhooks={
                hook.url: answer
                for (hook, _), answer in zip(request.webhooks, answers, strict=True)
            },
        )
        self._latest[key] = reading
        self._reading.pop(key, None)
        self._on_read(namespace, name)

    async def _provider(
        self, key: Key, request: ReadRequest, pods: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> Reading:
        session = self._open()
        if request.provider == "prometheus":
            return await prometheus.read(session, request, namespace=key[0], name=key[1])
        return await scrape.read(
            session,
            stable_pods=pods.get(request.stable, ()),
            canary_pods=pods.get(request.canary, ()),
            timeout_s=self._timeout,
        )
