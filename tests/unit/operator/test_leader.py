"""LeaderElector: how long a leader may act, whatever the API server does meanwhile.

The API is an in-memory Lease store here, so the clock is the only thing under test:
the real API server's part (optimistic concurrency, a standby taking over) is tested
against the control plane in tests/cluster/test_operator.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mlmodel_operator.leader import LeaderElector

pytestmark = pytest.mark.unit


class LeaseStore:
    """GET and PUT/POST of one Lease; `hang` makes every call wait forever."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.hang = False

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        await self._maybe_hang()
        return None if self.lease is None else dict(self.lease)

    async def request(self, method: str, path: str, *, body: Any = None) -> Any:
        await self._maybe_hang()
        self.lease = body
        return body


def elector(store: LeaseStore, duration: float) -> LeaderElector:
    return LeaderElector(
        store,  # type: ignore[arg-type]
        namespace="ops",
        name="lease",
        identity="me",
        duration_s=duration,
    )


def test_a_leader_holds_only_for_the_lease_after_its_last_renewal_was_sent() -> None:
    async def go() -> tuple[bool, bool]:
        store = LeaseStore()
        me = elector(store, duration=2.0)
        assert await me.try_acquire_or_renew()
        before = me.holds()
        await asyncio.sleep(1.95)  # within the 2 s lease, but past it minus the margin
        return before, me.holds()

    before, after = asyncio.run(go())
    assert before is True
    assert after is False


def test_a_renewal_that_hangs_ends_the_leadership_within_the_lease() -> None:
    async def go() -> tuple[float, bool]:
        store = LeaseStore()
        me = elector(store, duration=2.0)
        assert await me.try_acquire_or_renew()
        started = time.monotonic()
        store.hang = True  # the API server stops answering (a partition, say)
        await asyncio.wait_for(me.hold(), timeout=10)
        return time.monotonic() - started, me.holds()

    took, holds = asyncio.run(go())
    assert took < 2.0  # gave up when the lease ran out, not at a 30 s client timeout
    assert holds is False
