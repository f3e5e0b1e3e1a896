"""The data plane alone, without HTTP: its lifecycle and the one readiness rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from mlmodel_runtime.serve.dataplane import DataPlane
from mlmodel_runtime.serve.metrics import RuntimeMetrics
from tests.helpers.inprocess import FakeSession, config, fake_metadata

pytestmark = pytest.mark.unit


def _plane(tmp_path: Path) -> DataPlane:
    metrics = RuntimeMetrics(model="tiny", version="v1", revision="", metadata=fake_metadata())
    return DataPlane(config(tmp_path), load_session=FakeSession, metrics=metrics)


def test_ready_only_while_a_model_is_served_and_the_server_is_not_draining(
    tmp_path: Path,
) -> None:
    plane = _plane(tmp_path)

    async def main() -> list[tuple[str, bool, bool, bool]]:
        seen = []

        def note(phase: str) -> None:
            served = plane.model is not None
            seen.append((phase, plane.ready, served, plane.model_metadata is not None))

        plane.start()
        note("loading")
        await plane.load()
        note("loaded")
        plane.begin_drain()
        note("draining")
        await plane.stop()
        note("stopped")
        return seen

    assert asyncio.run(main()) == [
        # phase, ready, infers, has model metadata
        ("loading", False, False, False),
        ("loaded", True, True, True),
        ("draining", False, True, True),
        ("stopped", False, False, False),
    ]
    assert plane.not_ready_message() == "the server is shutting down"


def test_not_ready_says_the_model_is_loading_before_it_is_loaded(tmp_path: Path) -> None:
    assert "not ready yet (loading" in _plane(tmp_path).not_ready_message()


def test_a_served_model_runs_requests_through_the_batching_queue(tmp_path: Path) -> None:
    plane = _plane(tmp_path)

    async def main() -> list[list[float]]:
        plane.start()
        await plane.load()
        assert plane.model is not None
        try:
            outputs = await plane.model.submit([np.ones((2, 4), dtype=np.float32)], 2)
        finally:
            await plane.stop()
        result: list[list[float]] = outputs[0].tolist()
        return result

    assert asyncio.run(main()) == [[2.0] * 4, [2.0] * 4]
