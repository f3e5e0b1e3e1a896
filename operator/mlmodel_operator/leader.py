"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does.

Two operator replicas must never both act on a model: only the Lease holder
starts kopf and the work queue; the others wait. Expiry is judged on the local
clock from when the holder's record last changed (immune to clock skew between
nodes). A leader that cannot renew within the lease duration stops acting.

The holder may act only until `lease duration` after it *sent* its last successful
renewal (a standby cannot see the renewal before it was sent, so it cannot take over
before then): `holds()` says whether that moment has passed, and the controller checks
it before every write. A renewal is itself cut off at that moment, so a slow API
server cannot keep an expired leader believing it leads, and a leader paused
(SIGSTOP, a long GC, a frozen VM) wakes up knowing it no longer may act.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any

from mlmodel_operator.kube import ApiError, KubeClient

logger = logging.getLogger(__name__)


def _micro_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration_s: float,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._duration = duration_s
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._valid_until = 0.0  # monotonic: this replica may act until then

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self._namespace}/leases/{self._name}"

    def _record(self, transitions: int, acquire_time: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self._duration)),
            "acquireTime": acquire_time,
            "renewTime": _micro_time(),
            "leaseTransitions": transitions,
        }

    def holds(self) -> bool:
        """True while this replica holds the Lease for certain (with a safety margin)."""
        return time.monotonic() < self._valid_until

    async def try_acquire_or_renew(self) -> bool:
        sent = time.monotonic()
        if await self._try_acquire_or_renew():
            margin = min(1.0, self._duration / 10)
            self._valid_until = sent + self._duration - margin
            return True
        return False

    async def _try_acquire_or_renew(self) -> bool:
        lease = await self._client.get("Lease", self._namespace, self._name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": self._record(0, _micro_time()),
            }
            try:
                await self._client.request("POST", self._path.rsplit("/", 1)[0], body=body)
            except ApiError as error:
                if error.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        expired = time.monotonic() - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
            acquire_time = _micro_time()
        else:
            acquire_time = spec.get("acquireTime") or _micro_time()
        lease["spec"] = self._record(transitions, acquire_time)
        try:
            await self._client.request("PUT", self._path, body=lease)
        except ApiError as error:
            if error.status == 409:  # someone else wrote first
                return False
            raise
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or `stop` is set (False)."""
        logger.info(
            "waiting to lead: lease %s/%s as %s", self._namespace, self._name, self.identity
        )
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    logger.info("became the leader (%s)", self.identity)
                    return True
            except ApiError as error:
                logger.warning("leader election: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._duration / 5)
        return False

    async def hold(self) -> None:
        """Renew until renewing fails for a whole lease duration; then return.

        Each attempt may take only until the lease runs out: past that, another replica
        may lead, whatever the answer to a late renewal would have been."""
        while True:
            await asyncio.sleep(self._duration / 3)
            remaining = self._valid_until - time.monotonic()
            if remaining <= 0:
                logger.error("the lease ran out before it could be renewed")
                return
            try:
                if await asyncio.wait_for(self.try_acquire_or_renew(), timeout=remaining):
                    continue
                logger.error("lost the lease to another replica")
                return
            except TimeoutError:
                logger.error("renewing the lease took longer than the lease had left")
                return
            except Exception as error:  # network or API trouble: keep trying until the deadline
                logger.warning("renewing the lease failed: %s", error)

    async def release(self) -> None:
        """Give the Lease up on a clean shutdown, so a standby takes over at once."""
        self._valid_until = 0.0
        try:
            lease = await self._client.get("Lease", self._namespace, self._name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self._client.request("PUT", self._path, body=lease)
        except Exception as error:
            logger.warning("releasing the lease failed: %s", error)
