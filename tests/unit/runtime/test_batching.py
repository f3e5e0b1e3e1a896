"""The batching queue with a fake model: merging, splitting, isolation of failures."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from mlmodel_runtime.serve.batching import (
    Batcher,
    QueueFull,
    compatible,
    merge_arrays,
    split_arrays,
)

pytestmark = pytest.mark.unit

Arrays = list[np.ndarray[Any, Any]]


def test_merge_and_split_are_inverse() -> None:
    a = [np.arange(4).reshape(2, 2), np.array([1, 2])]
    b = [np.arange(4, 10).reshape(3, 2), np.array([3, 4, 5])]
    merged = merge_arrays([a, b])
    assert merged[0].shape == (5, 2)
    parts = split_arrays(merged, [2, 3])
    for original, part in zip((a, b), parts, strict=True):
        for x, y in zip(original, part, strict=True):
            assert x.tolist() == y.tolist()


def test_compatible_needs_same_trailing_shape() -> None:
    assert compatible([np.zeros((1, 4))], [np.zeros((5, 4))])
    assert not compatible([np.zeros((1, 4))], [np.zeros((1, 3))])


class FakeModel:
    """Doubles its input; records the batch sizes it saw; fails on negative input."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.gate = gate

    def __call__(self, arrays: Arrays) -> Arrays:
        if self.gate is not None:
            self.gate.wait(5)
        x = arrays[0]
        self.calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return [x * 2, x.sum(axis=1)]


async def _submit_all(batcher: Batcher, requests: list[Arrays]) -> list[Any]:
    futures = [batcher.submit(arrays, len(arrays[0])) for arrays in requests]
    return await asyncio.gather(*futures, return_exceptions=True)


def _run(model: FakeModel, requests: list[Arrays], **settings: Any) -> list[Any]:
    async def main() -> list[Any]:
        observed: list[int] = []

        def observe(rows: int, _inputs: Arrays, _outputs: Arrays) -> None:
            observed.append(rows)

        batcher = Batcher(run=model, on_batch=observe, **settings)
        batcher.start(asyncio.get_running_loop())
        try:
            return await _submit_all(batcher, requests)
        finally:
            batcher.stop()

    return asyncio.run(main())


def _requests(n: int) -> list[Arrays]:
    return [[np.full((1 + i % 3, 2), float(i))] for i in range(n)]


def test_queued_requests_are_merged_and_answered_in_order() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    requests = _requests(10)

    async def main() -> list[Any]:
        batcher = Batcher(
            run=model, max_batch_size=64, max_batch_delay_s=0.0, batchable=True, max_queued=100
        )
        batcher.start(asyncio.get_running_loop())
        try:
            futures = [batcher.submit(r, len(r[0])) for r in requests]
            # Let the first request block the thread while the others queue up.
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(*futures)
        finally:
            batcher.stop()

    results = asyncio.run(main())
    for request, result in zip(requests, results, strict=True):
        assert result[0].tolist() == (request[0] * 2).tolist()
        assert result[1].tolist() == request[0].sum(axis=1).tolist()
    assert sum(model.calls) == sum(len(r[0]) for r in requests)
    assert len(model.calls) < len(requests)


def test_batch_size_limit_is_respected() -> None:
    model = FakeModel()
    results = _run(
        model,
        _requests(30),
        max_batch_size=4,
        max_batch_delay_s=0.01,
        batchable=True,
        max_queued=100,
    )
    assert all(not isinstance(r, BaseException) for r in results)
    assert max(model.calls) <= 4


def test_size_one_turns_merging_off() -> None:
    model = FakeModel()
    requests = _requests(12)
    _run(model, requests, max_batch_size=1, max_batch_delay_s=0.01, batchable=True, max_queued=100)
    assert model.calls == [len(r[0]) for r in requests]


def test_a_failing_request_does_not_fail_its_batch() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    requests = _requests(6)
    requests[3] = [np.full((1, 2), -1.0)]

    async def main() -> list[Any]:
        batcher = Batcher(
            run=model, max_batch_size=64, max_batch_delay_s=0.0, batchable=True, max_queued=100
        )
        batcher.start(asyncio.get_running_loop())
        try:
            futures = [batcher.submit(r, len(r[0])) for r in requests]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            batcher.stop()

    results = asyncio.run(main())
    assert isinstance(results[3], ValueError)
    for i, result in enumerate(results):
        if i != 3:
            assert result[0].tolist() == (requests[i][0] * 2).tolist()


def test_cancelled_requests_are_skipped() -> None:
    gate = threading.Event()
    model = FakeModel(gate)

    async def main() -> Any:
        batcher = Batcher(
            run=model, max_batch_size=64, max_batch_delay_s=0.0, batchable=True, max_queued=100
        )
        batcher.start(asyncio.get_running_loop())
        try:
            first = batcher.submit([np.ones((1, 2))], 1)
            doomed = batcher.submit([np.ones((5, 2))], 5)
            doomed.cancel()
            await asyncio.sleep(0.05)
            gate.set()
            return await first
        finally:
            batcher.stop()

    result = asyncio.run(main())
    assert result[0].tolist() == [[2.0, 2.0]]
    assert 5 not in model.calls
    assert sum(model.calls) == 1


def test_a_full_queue_refuses_at_once_and_frees_its_places_as_requests_finish() -> None:
    gate = threading.Event()
    model = FakeModel(gate)

    async def main() -> tuple[list[Any], list[Any], int]:
        batcher = Batcher(
            run=model, max_batch_size=1, max_batch_delay_s=0.0, batchable=True, max_queued=3
        )
        batcher.start(asyncio.get_running_loop())
        try:
            assert not batcher.full
            admitted = [batcher.submit([np.ones((1, 2))], 1) for _ in range(3)]
            assert batcher.full  # what the exchange asks before decoding a body
            with pytest.raises(QueueFull):
                batcher.submit([np.ones((1, 2))], 1)
            # A cancelled request still holds its place until the thread has passed it.
            admitted[2].cancel()
            with pytest.raises(QueueFull):
                batcher.submit([np.ones((1, 2))], 1)
            gate.set()
            first = await asyncio.gather(*admitted[:2])
            for _ in range(100):  # the cancelled one is handed back after the others
                if not batcher.pending:
                    break
                await asyncio.sleep(0.01)
            again = await asyncio.gather(*(batcher.submit([np.ones((1, 2))], 1) for _ in range(3)))
            return first, again, batcher.pending
        finally:
            batcher.stop()

    first, again, pending = asyncio.run(main())
    assert len(first) == 2
    assert len(again) == 3
    assert pending == 0
