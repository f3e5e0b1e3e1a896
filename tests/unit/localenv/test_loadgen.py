"""The load generator: a bounded load ends by itself, an unbounded one runs until stop(),
and every request goes to the one URL it was given (the front door)."""

from __future__ import annotations

import time

import pytest

from localenv import LoadGenerator
from localenv.controlplane.cluster import free_port

pytestmark = pytest.mark.unit


def nowhere() -> str:
    """A front door with nothing behind it: every request fails to connect, without a
    packet leaving loopback."""
    return f"http://127.0.0.1:{free_port()}/v2/models/iris/infer"


def test_a_load_without_count_or_duration_runs_until_stopped() -> None:
    load = LoadGenerator(nowhere(), body={}, rate=50.0)
    with pytest.raises(RuntimeError, match="until stop"):
        load.wait()
    load.start()
    time.sleep(1.0)
    sent = load.snapshot().total
    assert sent > 0
    load.stop()
    result = load.wait(timeout=10)
    assert result.total >= sent
    assert set(result.counts) == {("", "ConnectError")}


def test_a_load_bounded_by_count_ends_by_itself() -> None:
    load = LoadGenerator(nowhere(), body={}, rate=100.0, count=5)
    result = load.start().wait()
    assert result.total == 5


def test_failures_are_kept_whole_up_to_the_number_asked() -> None:
    """A soak keeps every failure to explain each; a test keeps the first few."""
    load = LoadGenerator(nowhere(), body={}, rate=100.0, count=6, recorded_failures=4)
    result = load.start().wait()
    assert result.failures() == {("", "ConnectError"): 6}
    assert len(result.first_failures) == 4
    assert all(f.code == "ConnectError" and f.detail for f in result.first_failures)
