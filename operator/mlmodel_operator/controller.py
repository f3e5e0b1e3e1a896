"""The work queue that reconciles MLModels, fed by kopf's watches.

Level-triggered, like controller-runtime: a watch event on an MLModel or on
one of its Deployments or Pods enqueues the model's key; a worker reads the
model and its children fresh from the API, asks the pure `reconcile.plan`, and
carries the plan out (apply, delete, status, Events). One key is never
reconciled twice at once; each reconcile schedules the next (resync). Nothing
is kept in memory that is not rebuilt from the API, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from mlmodel_operator import desired
from mlmodel_operator.analysis import parse_analysis
from mlmodel_operator.analysis_loop import Reading
from mlmodel_operator.kube import ApiError, KubeClient
from mlmodel_operator.opmetrics import OperatorMetrics
from mlmodel_operator.providers import prometheus, scrape
from mlmodel_operator.reconcile import Inputs, Observed, Plan, plan
from mlmodel_operator.routers import RequiredApi, router_for
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import SpecError, parse_spec

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without the fields that change on every write, to skip no-op writes."""
    return {k: v for k, v in status.items() if k != "kopf"}


class Controller:
    def __init__(self, client: KubeClient, settings: Settings, metrics: OperatorMetrics) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._metrics_session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        # Pods and Prometheus are plain HTTP; a short timeout keeps a dead pod from
        # stalling a reconcile (the interval is then Inconclusive).
        self._metrics_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=scrape.TIMEOUT_S)
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"reconcile-{i}")
            for i in range(self._settings.workers)
        ]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._metrics_session is not None:
            await self._metrics_session.close()

    def enqueue(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in self._active:
            self._dirty.add(key)  # reconcile again as soon as the running one ends
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _enqueue_after(self, key: Key, delay: float) -> None:
        if (old := self._timers.pop(key, None)) is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self.enqueue, *key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            started = time.monotonic()
            try:
                requeue = await self.reconcile(*key)
            except Exception:
                logger.exception("reconciling %s/%s failed; retrying in 5 s", *key)
                requeue = 5.0
            finally:
                self._active.discard(key)
                self._metrics.reconcile.observe(time.monotonic() - started)
            if key in self._dirty:
                self._dirty.discard(key)
                self.enqueue(*key)
            elif requeue is not None:
                self._enqueue_after(key, requeue)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """One reconcile of one MLModel; returns when to look again (None: gone)."""
        client = self._client
        body = await client.get("MLModel", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._timers.pop((namespace, name), None)
            return None  # children go with it: they carry owner references
        selector = f"{desired.MODEL_LABEL}={name},{desired.MANAGED_BY}={desired.OPERATOR}"
        deployments = await client.list("Deployment", namespace, selector=selector)
        pods = await client.list("Pod", namespace, selector=f"{desired.MODEL_LABEL}={name}")
        observed: dict[str, Observed] = {}
        for deployment in deployments:
            revision = deployment["metadata"].get("labels", {}).get(desired.REVISION_LABEL)
            if not revision:
                continue
            observed[revision] = Observed(
                deployment,
                [
                    p
                    for p in pods
                    if p["metadata"].get("labels", {}).get(desired.REVISION_LABEL) == revision
                ],
            )
        budgets = await client.list("PodDisruptionBudget", namespace, selector=selector)
        metadata = body["metadata"]
        reading = await self._read_metrics(body, pods)
        result = plan(
            Inputs(
                ref=desired.ModelRef(name=name, namespace=namespace, uid=metadata["uid"]),
                generation=int(metadata.get("generation", 0)),
                spec=body.get("spec") or {},
                status=body.get("status") or {},
                observed=observed,
                settings=self._settings,
                now=_now(),
                now_s=time.time(),
                annotations=metadata.get("annotations") or {},
                router_available=await self._router_available(body.get("spec") or {}),
                disruption_budgets=frozenset(b["metadata"]["name"] for b in budgets),
                metrics=reading,
            )
        )
        await self._carry_out(body, result)
        return result.requeue_after

    async def _read_metrics(
        self, body: Mapping[str, Any], pods: list[dict[str, Any]]
    ) -> Reading | None:
        """Read the stable's and the canary's metrics while a canary takes traffic and
        the MLModel asks for analysis; None otherwise."""
        raw = ((body.get("spec") or {}).get("rollout") or {}).get("analysis")
        status = body.get("status") or {}
        canary = status.get("canary") or {}
        stable = (status.get("stable") or {}).get("revision")
        if not raw or not stable or not canary.get("revision") or canary.get("aborted"):
            return None
        if int(canary.get("step", -1)) < 0 or self._metrics_session is None:
            return None
        try:
            spec = parse_analysis(raw)
        except SpecError:
            return None  # the plan reports it
        if spec.provider == "prometheus":
            return await prometheus.read(
                self._metrics_session,
                url=spec.prometheus_url,
                namespace=body["metadata"]["namespace"],
                name=body["metadata"]["name"],
                stable=stable,
                canary=canary["revision"],
                interval_s=spec.interval_s,
                custom=tuple(m for m in spec.metrics if m.name == "custom"),
            )

        def of(revision: str) -> list[dict[str, Any]]:
            return [
                p
                for p in pods
                if p["metadata"].get("labels", {}).get(desired.REVISION_LABEL) == revision
            ]

        return await scrape.read(
            self._metrics_session, stable_pods=of(stable), canary_pods=of(canary["revision"])
        )

    async def _router_available(self, spec: Mapping[str, Any]) -> bool:
        try:
            required = router_for(parse_spec(spec).traffic.router).required
        except SpecError:
            return True  # the plan reports the invalid spec itself
        return required is None or await self._api_served(required)

    async def _api_served(self, api: RequiredApi) -> bool:
        """Discovery (allowed to every authenticated user): is the router's CRD installed?"""
        try:
            resources = await self._client.request("GET", f"/apis/{api.group_version}")
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return any(r.get("name") == api.plural for r in resources.get("resources", ()))

    async def _carry_out(self, body: Mapping[str, Any], result: Plan) -> None:
        client = self._client
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        status = result.status
        for obj in result.apply:
            applied = await client.apply(obj)
            if obj["kind"] == result.router_kind and "canary" in status:
                router = router_for((body.get("spec") or {}).get("traffic", {}).get("router"))
                weight = router.applied_weight(applied)
                status = {**status, "canary": {**status["canary"], "effectiveWeight": weight}}
        for deployment, replicas in result.scale:
            await client.scale("Deployment", namespace, deployment, replicas)
        for kind, child in result.delete:
            if await client.delete(kind, namespace, child):
                logger.info("deleted %s %s/%s", kind, namespace, child)
        old_status = body.get("status") or {}
        if _comparable(old_status) != _comparable(status):
            try:
                await client.apply_status("MLModel", namespace, name, status)
            except ApiError as error:
                if error.status != 404:
                    raise
            if old_status.get("phase") != result.status.get("phase"):
                logger.info(
                    "%s/%s: %s -> %s: %s",
                    namespace,
                    name,
                    old_status.get("phase"),
                    status.get("phase"),
                    status.get("message"),
                )
        self._metrics.observe(
            namespace, name, old_status, status, [event.reason for event in result.events]
        )
        for event in result.events:
            await client.event(
                involved=body, type_=event.type, reason=event.reason, message=event.message
            )
