"""The load generator: a bounded load ends by itself, an unbounded one runs until stop()."""

from __future__ import annotations

import ssl
import time

import pytest

from localenv import LoadGenerator
from localenv.controlplane.cluster import free_port
from localenv.kubeapi import ApiAccess
from localenv.loadgen import NO_ENDPOINT

pytestmark = pytest.mark.unit


def nowhere() -> ApiAccess:
    """An API server that is not there: the routing table stays empty, so every request
    is counted as having no endpoint, without a packet leaving loopback."""
    return ApiAccess(server=f"https://127.0.0.1:{free_port()}", ssl=ssl.create_default_context())


def test_a_load_without_count_or_duration_runs_until_stopped() -> None:
    load = LoadGenerator(nowhere(), namespace="ns", name="iris", body={}, rate=50.0)
    with pytest.raises(RuntimeError, match="until stop"):
        load.wait()
    load.start()
    time.sleep(1.0)
    sent = load.snapshot().total
    assert sent > 0
    load.stop()
    result = load.wait(timeout=10)
    assert result.total >= sent
    assert set(result.counts) == {("", NO_ENDPOINT)}


def test_a_load_bounded_by_count_ends_by_itself() -> None:
    load = LoadGenerator(nowhere(), namespace="ns", name="iris", body={}, rate=100.0, count=5)
    result = load.start().wait()
    assert result.total == 5
