"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does.

Two operator replicas must never both act on a model: only the Lease holder
starts kopf and the work queue; the others wait. Expiry is judged on the local
clock from when the holder's record last changed (immune to clock skew between
nodes). A leader that cannot renew within the lease duration stops acting.
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

    async def try_acquire_or_renew(self) -> bool:
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
        """Renew until renewing fails for a whole lease duration; then return."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self._duration / 3)
            try:
                if await self.try_acquire_or_renew():
                    last_renewed = time.monotonic()
                    continue
                logger.error("lost the lease to another replica")
                return
            except Exception as error:  # network or API trouble: keep trying until the deadline
                logger.warning("renewing the lease failed: %s", error)
            if time.monotonic() - last_renewed > self._duration:
                logger.error("could not renew the lease for %.0f s", self._duration)
                return

    async def release(self) -> None:
        """Give the Lease up on a clean shutdown, so a standby takes over at once."""
        try:
            lease = await self._client.get("Lease", self._namespace, self._name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self._client.request("PUT", self._path, body=lease)
        except Exception as error:
            logger.warning("releasing the lease failed: %s", error)
