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
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mlmodel_operator import desired, ownership
from mlmodel_operator.analysis import parse_analysis
from mlmodel_operator.analysis_loop import Reading
from mlmodel_operator.kube import ApiError, KubeClient
from mlmodel_operator.opmetrics import OperatorMetrics
from mlmodel_operator.providers import prometheus, scrape
from mlmodel_operator.reconcile import Inputs, Observed, Plan, plan, written
from mlmodel_operator.routers import RequiredApi, router_for
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import SpecError, parse_spec

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _World:
    """What one reconcile observed of an MLModel's children."""

    observed: dict[str, Observed] = field(default_factory=dict)  # by revision
    pods: list[Mapping[str, Any]] = field(default_factory=list)  # of every owned revision
    owned: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> uid
    taken: dict[tuple[str, str], str] = field(default_factory=dict)  # -> who holds it


def _router_kind(spec: Mapping[str, Any]) -> str:
    try:
        required = router_for(parse_spec(spec).traffic.router).required
    except SpecError:
        return ""
    return required.kind if required else ""


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
        metadata = body["metadata"]
        spec = body.get("spec") or {}
        router_available = await self._router_available(spec)
        world = await self._observe(namespace, name, metadata["uid"], spec, router_available)
        reading = await self._read_metrics(body, world.pods)
        inputs = Inputs(
            ref=desired.ModelRef(name=name, namespace=namespace, uid=metadata["uid"]),
            generation=int(metadata.get("generation", 0)),
            spec=spec,
            status=body.get("status") or {},
            observed=world.observed,
            settings=self._settings,
            now=_now(),
            now_s=time.time(),
            annotations=metadata.get("annotations") or {},
            router_available=router_available,
            disruption_budgets=frozenset(
                n for kind, n in world.owned if kind == "PodDisruptionBudget"
            ),
            metrics=reading,
            taken=world.taken,
        )
        result = plan(inputs)
        taken = await self._foreign(namespace, metadata["uid"], result, world)
        if taken:
            result = plan(dataclasses.replace(inputs, taken={**world.taken, **taken}))
        await self._carry_out(body, result, world)
        return result.requeue_after

    async def _observe(
        self,
        namespace: str,
        name: str,
        uid: str,
        spec: Mapping[str, Any],
        router_available: bool,
    ) -> _World:
        """The MLModel's children as the API reports them, counting only what this
        MLModel controls (by uid): objects that merely carry its labels are someone
        else's, and their names are taken."""
        client = self._client
        selector = f"{desired.MODEL_LABEL}={name},{desired.MANAGED_BY}={desired.OPERATOR}"
        kinds = ["Deployment", "Service", "PodDisruptionBudget"]
        router_kind = _router_kind(spec)
        if router_kind and router_available:
            kinds.append(router_kind)
        listed = await asyncio.gather(
            *(client.list(kind, namespace, selector=selector) for kind in kinds),
            client.list("ReplicaSet", namespace, selector=f"{desired.MODEL_LABEL}={name}"),
            client.list("Pod", namespace, selector=f"{desired.MODEL_LABEL}={name}"),
        )
        *children, replicasets, pods = listed
        world = _World()
        mine: list[dict[str, Any]] = []
        for kind, items in zip(kinds, children, strict=True):
            for obj in items:
                key = (kind, obj["metadata"]["name"])
                if ownership.controlled_by(obj, uid):
                    world.owned[key] = ownership.uid_of(obj)
                    if kind == "Deployment":
                        mine.append(obj)
                else:
                    world.taken[key] = ownership.describe_holder(obj)
        pods_of = ownership.owned_chain(mine, replicasets, pods)
        for deployment in mine:
            revision = deployment["metadata"].get("labels", {}).get(desired.REVISION_LABEL)
            if revision:
                revision_pods = pods_of[ownership.uid_of(deployment)]
                world.observed[revision] = Observed(deployment, revision_pods)
                world.pods.extend(revision_pods)
        return world

    async def _foreign(
        self, namespace: str, uid: str, result: Plan, world: _World
    ) -> dict[tuple[str, str], str]:
        """Names the plan would write that are neither this MLModel's nor known to be
        someone else's: look each up once (it is usually absent: about to be created)."""
        taken: dict[tuple[str, str], str] = {}
        for kind, child in written(result):
            if (kind, child) in world.owned or (kind, child) in world.taken:
                continue
            existing = await self._client.get(kind, namespace, child)
            if existing is not None and not ownership.controlled_by(existing, uid):
                taken[(kind, child)] = ownership.describe_holder(existing)
        return taken

    async def _read_metrics(
        self, body: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
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

        def of(revision: str) -> list[Mapping[str, Any]]:
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

    async def _carry_out(self, body: Mapping[str, Any], result: Plan, world: _World) -> None:
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
            uid = world.owned.get((kind, child), "")
            if uid and await client.delete(kind, namespace, child, uid=uid):
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
