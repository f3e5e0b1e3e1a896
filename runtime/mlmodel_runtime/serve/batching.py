"""Adaptive batching: concurrent requests merged into one model execution.

The data plane (`dataplane.py`) starts one per worker once the model is loaded;
each inference request calls `Batcher.submit` on the event loop and awaits the
future it returns. One dedicated thread takes requests off a queue, merges those that are
waiting (up to `max_batch_size` rows, waiting at most `max_batch_delay_s` after
the first one for more), runs the model once (ONNX Runtime releases the GIL, so
the event loop keeps serving), splits the outputs back per request and resolves
all futures of a batch with a single `call_soon_threadsafe`. With a maximum of 1
row every request runs alone, still off the event loop.

Under load the batches form by themselves: while the thread runs one batch the
next requests queue up, so no delay is needed to merge them; the delay only
trades latency for larger batches when traffic is light.

The queue is bounded (`max_queued` requests submitted and not yet handed back):
when the model cannot keep up, `submit` raises `QueueFull` at once, which the app
answers with 503 and Retry-After, instead of letting requests (and the arrays they
hold) pile up until they time out.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = list[np.ndarray[Any, Any]]
RunFn = Callable[[Arrays], Arrays]
BatchObserver = Callable[[int, Arrays, Arrays], None]  # rows, inputs, outputs

log = logging.getLogger("mlmodel_runtime.serve.batching")


@dataclass(slots=True)
class _Item:
    arrays: Arrays
    rows: int  # -1: cannot be merged with others
    future: asyncio.Future[Arrays]
    enqueued: float


_Result = tuple[asyncio.Future[Arrays], Arrays | None, BaseException | None]


class QueueFull(Exception):
    """The batching queue holds `max_queued` requests already."""


def merge_arrays(items: Sequence[Arrays]) -> Arrays:
    """Concatenate each input along the first dimension across requests."""
    return [np.concatenate([arrays[i] for arrays in items], axis=0) for i in range(len(items[0]))]


def split_arrays(outputs: Arrays, rows: Sequence[int]) -> list[Arrays]:
    """Slice each output back into per-request views, in request order."""
    parts: list[Arrays] = []
    offset = 0
    for count in rows:
        end = offset + count
        parts.append([out[offset:end] for out in outputs])
        offset = end
    return parts


def compatible(first: Arrays, other: Arrays) -> bool:
    """Whether two requests can share a batch: same shapes beyond the first dimension."""
    return all(a.shape[1:] == b.shape[1:] for a, b in zip(first, other, strict=True))


class Batcher:
    """The queue and the thread that runs the model; one per server process."""

    def __init__(
        self,
        *,
        run: RunFn,
        max_batch_size: int,
        max_batch_delay_s: float,
        batchable: bool,
        max_queued: int,
        on_batch: BatchObserver | None = None,
        check_shapes: bool = True,
    ) -> None:
        self._run = run
        self._max_queued = max_queued
        # Submitted and not yet handed back; only touched on the event loop.
        self._pending = 0
        self._max_rows = max_batch_size
        self._delay = max_batch_delay_s
        self._merging = batchable and max_batch_size > 1
        self._on_batch = on_batch
        # False when every non-batch dimension is fixed by the model, so validated
        # requests always fit together.
        self._check_shapes = check_shapes
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._work, name="mlmodel-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def full(self) -> bool:
        """Whether `submit` would raise `QueueFull` now."""
        return self._pending >= self._max_queued

    @property
    def pending(self) -> int:
        """Requests submitted and not yet answered (queued or running)."""
        return self._pending

    def submit(self, arrays: Arrays, rows: int) -> asyncio.Future[Arrays]:
        """Queue one request; must be called on the event loop given to `start`.

        Raises `QueueFull` when `max_queued` requests are waiting already.
        """
        loop = self._loop
        assert loop is not None, "Batcher.start was not called"
        if self._pending >= self._max_queued:
            raise QueueFull
        self._pending += 1
        future: asyncio.Future[Arrays] = loop.create_future()
        self._queue.put(_Item(arrays, rows, future, time.monotonic() if self._delay else 0.0))
        return future

    def _work(self) -> None:
        carried: _Item | None = None
        while True:
            item = carried if carried is not None else self._queue.get()
            carried = None
            if item is None:
                return
            batch = [item]
            stop = False
            if self._merging and item.rows >= 0:
                carried, stop = self._collect(batch)
            try:
                results = self._execute(batch)
            except BaseException as exc:  # the thread must outlive any failure
                log.exception("batch execution failed")
                results = [(it.future, None, exc) for it in batch]
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._hand_back, results, len(batch))
            except RuntimeError:  # loop closed while shutting down
                return
            if stop:
                self._queue.put(None)

    def _collect(self, batch: list[_Item]) -> tuple[_Item | None, bool]:
        """Add waiting requests to `batch`; return a request that did not fit, and stop."""
        first = batch[0]
        rows = first.rows
        deadline = first.enqueued + self._delay
        while rows < self._max_rows:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None, False
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return None, False
            if nxt is None:
                return None, True
            if (
                nxt.rows < 0
                or rows + nxt.rows > self._max_rows
                or (self._check_shapes and not compatible(first.arrays, nxt.arrays))
            ):
                return nxt, False
            batch.append(nxt)
            rows += nxt.rows
        return None, False

    def _execute(self, batch: list[_Item]) -> list[_Result]:
        live = [it for it in batch if not it.future.cancelled()]
        if not live:
            return []
        if len(live) == 1:
            return [self._run_one(live[0])]
        rows = [it.rows for it in live]
        total = sum(rows)
        try:
            merged = merge_arrays([it.arrays for it in live])
            outputs = self._run(merged)
        except Exception:
            # One bad request must not fail the others: run each on its own.
            return [self._run_one(it) for it in live]
        if any(not out.ndim or out.shape[0] != total for out in outputs):
            return [self._run_one(it) for it in live]
        self._observe(total, merged, outputs)
        return [
            (it.future, part, None)
            for it, part in zip(live, split_arrays(outputs, rows), strict=True)
        ]

    def _run_one(self, item: _Item) -> _Result:
        try:
            outputs = self._run(item.arrays)
        except Exception as exc:
            return (item.future, None, exc)
        rows = item.rows if item.rows >= 0 else _rows_of(item.arrays)
        self._observe(rows, item.arrays, outputs)
        return (item.future, outputs, None)

    def _observe(self, rows: int, inputs: Arrays, outputs: Arrays) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(rows, inputs, outputs)
            except Exception:
                log.exception("recording batch metrics failed")

    def _hand_back(self, results: list[_Result], taken: int) -> None:
        """On the event loop: resolve a batch's futures and free its places in the queue.

        `taken` counts every request of the batch, also those cancelled meanwhile,
        which have no result.
        """
        self._pending -= taken
        _resolve(results)


def _rows_of(arrays: Arrays) -> int:
    first = arrays[0] if arrays else None
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _resolve(results: list[_Result]) -> None:
    for future, value, exc in results:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            assert value is not None
            future.set_result(value)
