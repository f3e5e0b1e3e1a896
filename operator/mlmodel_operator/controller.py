"""The work queue that reconciles MLModels, fed by watches.

Level-triggered, like controller-runtime: a watch event on an MLModel (kopf's) or on
one of its Deployments or Pods (`children.ChildCache`) enqueues the model's key; a
worker reads the model fresh from the API and its children from the watches' store
(listing a kind whose store may be behind), asks the pure `reconcile.plan`, and
carries the plan out (apply, delete, status, Events). One key is never
reconciled twice at once; each reconcile schedules the next (resync). Nothing
is kept in memory that is not rebuilt from the API, so a restart loses nothing.

The queue has priorities (`Priority`): with thousands of models, the resyncs and the
follow-ups of children's changes are a standing backlog, and a new or changed
MLModel, a step's pause that ended or an analysis reading that came in must not wait
behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mlmodel_operator import applied, desired, naming, ownership
from mlmodel_operator.analysis import templates
from mlmodel_operator.children import ChildCache
from mlmodel_operator.errors import SpecError
from mlmodel_operator.kube import ApiError, KubeClient
from mlmodel_operator.metrics_reader import MetricsReader
from mlmodel_operator.operator_metrics import OperatorMetrics
from mlmodel_operator.reconcile import Inputs, Observed, Plan, plan, written
from mlmodel_operator.routers import ApiResource, apis_of, gatewayapi, router_for
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import MLModelSpec, parse_or_error
from mlmodel_operator.webhooks import WebhookCaller

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _World:
    """What one reconcile observed of an MLModel's children."""

    observed: dict[str, Observed] = field(default_factory=dict)  # by revision
    pods: list[Mapping[str, Any]] = field(default_factory=list)  # of every owned revision
    objects: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)  # owned
    taken: dict[tuple[str, str], str] = field(default_factory=dict)  # -> who holds it
    route: Mapping[str, Any] | None = None  # the router's object `<name>`, if owned


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without the fields that change on every write, to skip no-op writes."""
    return {k: v for k, v in status.items() if k != "kopf"}


class Priority(enum.IntEnum):
    """The order in which queued models are reconciled (lowest first)."""

    URGENT = 0  # the spec changed, a timed step or interval is due, a reading came in
    NORMAL = 1  # a child changed, the status was written, a person's annotation
    RESYNC = 2  # nothing happened: the periodic look


def event_priority(body: Mapping[str, Any]) -> Priority:
    """An MLModel event is urgent when the spec changed since the status last
    answered it (a new model, an edit) or the model is being deleted; otherwise it is
    mostly the operator's own status write coming back."""
    metadata = body.get("metadata") or {}
    observed = (body.get("status") or {}).get("observedGeneration")
    if metadata.get("deletionTimestamp") or metadata.get("generation") != observed:
        return Priority.URGENT
    return Priority.NORMAL


@dataclass(frozen=True)
class Requeue:
    """Look at a model again `after` seconds from `since` (monotonic clock).

    From the decision, not from the end of the reconcile: the plan's `requeue_after`
    counts from the moment it decided (`now_s`), so a step's pause that ends 3 s after
    the decision is looked at then, not 3 s after a write that took 2 s on a busy API
    server."""

    after: float
    since: float = field(default_factory=time.monotonic)


class Conflict(RuntimeError):
    """The MLModel changed between reading it and writing its status."""


class NotLeading(RuntimeError):
    """The Lease ran out: this replica must not write anything more."""


class Controller:
    def __init__(
        self,
        client: KubeClient,
        settings: Settings,
        metrics: OperatorMetrics,
        *,
        fence: Callable[[], bool] = lambda: True,
        watch_children: bool = False,
    ) -> None:
        """`fence` says whether this replica may still act (it holds the Lease); it is
        asked before every write, so a leader whose lease ran out (paused, partitioned)
        writes nothing even before it notices and stops. `watch_children`: keep the
        models' children from watches (`children.ChildCache`), which also reconcile a
        model when its Deployments or Pods change; without it, every reconcile lists
        them and nothing else notices their changes."""
        self._client = client
        self._watch_children = watch_children
        self._children: ChildCache | None = None
        self._settings = settings
        self._metrics = metrics
        self._fence = fence
        self._queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self._order = itertools.count()  # first in, first out within a priority
        self._queued: dict[Key, Priority] = {}
        # Since when each key has been wanted, at the priority it is wanted at: what a
        # worker taking it reports as its queue wait (`_work`).
        self._wanted: dict[Key, tuple[Priority, float]] = {}
        self._active: set[Key] = set()
        self._dirty: dict[Key, Priority] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._soon: dict[Key, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._reader: MetricsReader | None = None
        self._webhooks: WebhookCaller | None = None

    def start(self) -> None:
        self._reader = MetricsReader(
            timeout_s=self._settings.metrics_timeout_seconds,
            concurrency=self._settings.metrics_concurrency,
            on_read=self.enqueue,
        )
        self._webhooks = WebhookCaller(on_answer=self.enqueue)
        if self._watch_children:
            self._children = ChildCache(
                self._client,
                self._settings.namespaces,
                on_change=self.soon,
                on_expiry=self._metrics.watch_expiry,
            )
            self._children.start()
        self._workers = [
            asyncio.create_task(self._work(), name=f"reconcile-{i}")
            for i in range(self._settings.workers)
        ]

    async def stop(self) -> None:
        for timer in (*self._timers.values(), *self._soon.values()):
            timer.cancel()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._children is not None:
            await self._children.stop()
        if self._reader is not None:
            await self._reader.close()
        if self._webhooks is not None:
            await self._webhooks.close()

    def enqueue(self, namespace: str, name: str, priority: Priority = Priority.URGENT) -> None:
        key = (namespace, name)
        wanted = self._wanted.get(key)
        if wanted is None or priority < wanted[0]:
            self._wanted[key] = (priority, time.monotonic())
        if key in self._active:
            # Reconcile again as soon as the running one ends.
            self._dirty[key] = min(priority, self._dirty.get(key, priority))
            return
        held = self._queued.get(key)
        if held is not None and held <= priority:
            return
        # Queued already at a lower priority: the entry added here comes first, and the
        # old one is skipped when it comes up (`_next`).
        self._queued[key] = priority
        self._queue.put_nowait((priority, next(self._order), key))

    async def _next(self) -> Key:
        while True:
            priority, _, key = await self._queue.get()
            if self._queued.get(key) == priority:
                del self._queued[key]
                wanted, since = self._wanted.pop(key, (Priority(priority), time.monotonic()))
                self._metrics.queue_wait.labels(wanted.name.lower()).observe(
                    time.monotonic() - since
                )
                return key

    def soon(self, namespace: str, name: str) -> None:
        """A child of the model changed: reconcile it `coalesce_seconds` from now, once
        for every change until then. One new model's Deployment and Pod change a dozen
        times in its first seconds (created, scheduled, started, ready, each status
        field the controllers fill in); reconciled one by one, each costs the reads of
        a whole reconcile, and with thousands of models those reads are most of what
        the API server does. The MLModel's own changes are not delayed."""
        key = (namespace, name)
        if key in self._soon or self._queued.get(key, Priority.RESYNC) <= Priority.NORMAL:
            return  # that reconcile comes soon enough and will see this change
        if self._settings.coalesce_seconds <= 0:
            self.enqueue(namespace, name, Priority.NORMAL)
            return
        loop = asyncio.get_running_loop()
        self._soon[key] = loop.call_later(self._settings.coalesce_seconds, self._due, key)

    def _due(self, key: Key) -> None:
        self._soon.pop(key, None)
        self.enqueue(*key, Priority.NORMAL)

    def _enqueue_after(self, key: Key, requeue: Requeue) -> None:
        if (old := self._timers.pop(key, None)) is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        # A requeue sooner than the resync is something due (a pause's end, an interval).
        due = requeue.after < self._settings.resync_seconds
        priority = Priority.URGENT if due else Priority.RESYNC
        due_at = requeue.since + requeue.after
        self._timers[key] = loop.call_later(
            max(0.0, due_at - time.monotonic()), self._fire, key, priority, due_at
        )

    def _fire(self, key: Key, priority: Priority, due_at: float) -> None:
        """A requeue's timer: how late it fired is how long the event loop was busy
        (parsing watch events, planning) when it was due."""
        self._timers.pop(key, None)
        self._metrics.requeue_lateness.observe(max(0.0, time.monotonic() - due_at))
        self.enqueue(*key, priority)

    async def _work(self) -> None:
        while True:
            key = await self._next()
            self._active.add(key)
            started = time.monotonic()
            try:
                requeue = await self.reconcile(*key)
            except NotLeading:
                logger.error("not the leader any more: %s/%s left as it is", *key)
                requeue = None
            except Conflict:
                # The MLModel changed since it was read: decide again on what it is now.
                logger.debug("%s/%s changed while reconciling; again", *key)
                requeue = Requeue(0.0)
            except Exception:
                logger.exception("reconciling %s/%s failed; retrying in 5 s", *key)
                requeue = Requeue(5.0)
            finally:
                self._active.discard(key)
                self._metrics.reconcile.observe(time.monotonic() - started)
            if key in self._dirty:
                self.enqueue(*key, self._dirty.pop(key))
            elif requeue is not None:
                self._enqueue_after(key, requeue)

    async def reconcile(self, namespace: str, name: str) -> Requeue | None:
        """One reconcile of one MLModel; returns when to look again (None: gone)."""
        started = time.monotonic()
        client = self._client
        reader, hooks = self._reader, self._webhooks
        assert reader is not None, "start() first"
        assert hooks is not None, "start() first"
        body = await client.get("MLModel", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._timers.pop((namespace, name), None)
            reader.forget((namespace, name))
            hooks.forget((namespace, name))
            self._metrics.forget(namespace, name)
            return None  # children go with it: they carry owner references
        metadata = body["metadata"]
        spec, analysis_problem = await self.resolved_spec(namespace, body.get("spec") or {})
        router = None if isinstance(spec, SpecError) else router_for(spec.traffic.router)
        apis = () if router is None else apis_of(router)
        served = await asyncio.gather(*(self._api_served(api) for api in apis))
        router_available = all(served)
        world = await self._observe(
            namespace, name, metadata["uid"], apis if router_available else ()
        )
        status_now = body.get("status") or {}
        by_revision = router is not None and router.splits_by_revision
        routed, ready_backends = (
            await self._endpoints(namespace, name, world.observed, by_revision=by_revision)
            if apis
            and (
                by_revision
                or status_now.get("previous")
                or status_now.get("retiring")
                or status_now.get("canary")
            )
            else (None, None)
        )
        gateway_controllers = await self._gateway_controllers(namespace, spec)
        decided = time.monotonic()
        inputs = Inputs(
            ref=naming.ModelRef(name=name, namespace=namespace, uid=metadata["uid"]),
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
                n for kind, n in world.objects if kind == "PodDisruptionBudget"
            ),
            autoscalers=frozenset(
                n for kind, n in world.objects if kind == "HorizontalPodAutoscaler"
            ),
            routes=frozenset(key for key in world.objects if key[0] in {a.kind for a in apis}),
            metrics=reader.latest((namespace, name)),
            taken=world.taken,
            routed_pods=routed,
            services=frozenset(n for kind, n in world.objects if kind == "Service"),
            ready_backends=ready_backends,
            route=world.route,
            gateway_controllers=gateway_controllers,
            webhook_answers=hooks.answers((namespace, name)),
            analysis_problem=analysis_problem,
        )
        result = plan(inputs)
        self._metrics.reconcile_stage.labels("read").observe(decided - started)
        self._metrics.reconcile_stage.labels("decide").observe(time.monotonic() - decided)
        writing = time.monotonic()
        taken = await self._foreign(namespace, metadata["uid"], result, world)
        if taken:
            result = plan(dataclasses.replace(inputs, taken={**world.taken, **taken}))
        await self._carry_out(body, result, world)
        reader.want(
            (namespace, name),
            result.read,
            {revision: seen.pods for revision, seen in world.observed.items()},
        )
        # After the status is written: a decision that lost a conflict was not taken,
        # and a notification says what happened, never what was about to.
        for call in result.gates:
            hooks.gate((namespace, name), call.key, call.hook, call.body)
        hooks.forget_gates((namespace, name), {call.key for call in result.gates})
        for call in result.notifications:
            hooks.notify((namespace, name), call.key, call.hook, call.body)
        self._metrics.reconcile_stage.labels("write").observe(time.monotonic() - writing)
        return None if result.requeue_after is None else Requeue(result.requeue_after, decided)

    async def resolved_spec(
        self, namespace: str, raw: Mapping[str, Any]
    ) -> tuple[MLModelSpec | SpecError, str]:
        """The parsed spec, with the analysis template it names merged in, and why the
        canary must hold ('' for no reason). The template is read at every reconcile
        (nothing watches it), so a change to it applies from the next interval."""
        try:
            ref = templates.reference(raw, namespace)
        except SpecError as error:
            return error, ""
        if ref is None:
            return parse_or_error(raw), ""
        try:
            template = await self._client.get(ref.kind, ref.namespace, ref.name)
        except ApiError as error:
            if error.status != 403:
                raise
            logger.debug("%s: %s", ref.describe(), error)  # status says it
            return parse_or_error(templates.without_template(raw)), templates.missing(
                ref, forbidden=True
            )
        if template is None:
            return parse_or_error(templates.without_template(raw)), templates.missing(ref)
        try:
            merged = templates.with_template(raw, ref, template.get("spec") or {})
        except SpecError as error:
            return error, ""
        return parse_or_error(merged), ""

    async def _observe(
        self, namespace: str, name: str, uid: str, router_apis: tuple[ApiResource, ...]
    ) -> _World:
        """The MLModel's children as the API reports them, counting only what this
        MLModel controls (by uid): objects that merely carry its labels are someone
        else's, and their names are taken. `router_apis`: the kinds the router writes,
        the one carrying the weights first, when their APIs are served."""
        client = self._client
        selector = f"{naming.MODEL_LABEL}={name},{naming.MANAGED_BY}={naming.OPERATOR}"
        kinds = [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ConfigMap",
            "HorizontalPodAutoscaler",
        ]
        kinds += [api.kind for api in router_apis]
        route_kind = router_apis[0].kind if router_apis else None

        async def children_of(kind: str, selector: str) -> list[dict[str, Any]]:
            # The store's selectors (`children.SELECTORS`) with the model's own label
            # take what these lists take.
            if self._children is not None:
                cached = self._children.of_model(kind, namespace, name)
                if cached is not None:
                    return cached
            return await client.list(kind, namespace, selector=selector)

        listed = await asyncio.gather(
            *(children_of(kind, selector) for kind in kinds),
            children_of("ReplicaSet", f"{naming.MODEL_LABEL}={name}"),
            children_of("Pod", f"{naming.MODEL_LABEL}={name}"),
        )
        *children, replicasets, pods = listed
        world = _World()
        mine: list[dict[str, Any]] = []
        for kind, items in zip(kinds, children, strict=True):
            for obj in items:
                key = (kind, obj["metadata"]["name"])
                if ownership.controlled_by(obj, uid):
                    world.objects[key] = obj
                    if kind == "Deployment":
                        mine.append(obj)
                    elif key == (route_kind, name):
                        world.route = obj
                else:
                    world.taken[key] = ownership.describe_holder(obj)
        pods_of = ownership.owned_chain(mine, replicasets, pods)
        for deployment in mine:
            revision = deployment["metadata"].get("labels", {}).get(naming.REVISION_LABEL)
            if revision:
                revision_pods = pods_of[ownership.uid_of(deployment)]
                world.observed[revision] = Observed(deployment, revision_pods)
                world.pods.extend(revision_pods)
        return world

    async def _endpoints(
        self,
        namespace: str,
        name: str,
        observed: Mapping[str, Observed],
        *,
        by_revision: bool,
    ) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """From the model's EndpointSlices, in one list: the pods the `<name>-stable` and
        `<name>-canary` Services' slices list (read while a revision may be retiring),
        and with a router that splits `by_revision`, which per-revision Services' slices
        list a ready pod (`reconcile._own_backend`). (None, None) when they cannot
        be read (RBAC from before this was added): the delay alone then decides, and
        routes keep the variant Services, as before."""
        variants = (f"{name}-stable", f"{name}-canary")
        per_revision = (
            tuple(desired.revision_service(name, revision) for revision in sorted(observed))
            if by_revision
            else ()
        )
        services = ",".join((*variants, *per_revision))
        try:
            slices = await self._client.list(
                "EndpointSlice", namespace, selector=f"kubernetes.io/service-name in ({services})"
            )
        except ApiError as error:
            if error.status != 403:
                raise
            logger.warning("cannot list EndpointSlices in %s: %s", namespace, error)
            return None, None
        routed: set[str] = set()
        ready: set[str] = set()
        for endpoint_slice in slices:
            service = ((endpoint_slice.get("metadata") or {}).get("labels") or {}).get(
                "kubernetes.io/service-name", ""
            )
            for endpoint in endpoint_slice.get("endpoints") or ():
                ref = endpoint.get("targetRef") or {}
                if ref.get("kind") != "Pod" or not ref.get("name"):
                    continue
                if service in variants:
                    routed.add(str(ref["name"]))
                elif (endpoint.get("conditions") or {}).get("ready") is True:
                    # Only an explicit ready: gateways (Traefik) skip an endpoint without.
                    ready.add(service)
        return frozenset(routed), (frozenset(ready) if by_revision else None)

    async def _foreign(
        self, namespace: str, uid: str, result: Plan, world: _World
    ) -> dict[tuple[str, str], str]:
        """Names the plan would write that are neither this MLModel's nor known to be
        someone else's: look each up once (it is usually absent: about to be created)."""
        taken: dict[tuple[str, str], str] = {}
        for kind, child in written(result):
            if (kind, child) in world.objects or (kind, child) in world.taken:
                continue
            existing = await self._client.get(kind, namespace, child)
            if existing is not None and not ownership.controlled_by(existing, uid):
                taken[(kind, child)] = ownership.describe_holder(existing)
        return taken

    async def _gateway_controllers(
        self, namespace: str, spec: MLModelSpec | SpecError
    ) -> tuple[str, ...]:
        """The controllerName of each parent Gateway's GatewayClass, read only for a
        gatewayAPI rollout with mirror steps (whether its Gateways can mirror). A Gateway
        or class this operator cannot read is left out: unknown is not refused."""
        if isinstance(spec, SpecError) or not any(s.mirror for s in spec.rollout.steps):
            return ()
        settings = spec.traffic.settings
        if not isinstance(settings, gatewayapi.GatewaySettings):
            return ()
        base = f"/apis/{gatewayapi.GATEWAY_GROUP}/v1"
        controllers: list[str] = []
        for ref in settings.parent_refs:
            if ref.get("kind", "Gateway") != "Gateway":
                continue
            if ref.get("group", gatewayapi.GATEWAY_GROUP) != gatewayapi.GATEWAY_GROUP:
                continue
            gateway_ns = quote(str(ref.get("namespace") or namespace))
            try:
                gateway = await self._client.request(
                    "GET", f"{base}/namespaces/{gateway_ns}/gateways/{quote(str(ref['name']))}"
                )
                class_name = str((gateway.get("spec") or {}).get("gatewayClassName", ""))
                gateway_class = await self._client.request(
                    "GET", f"{base}/gatewayclasses/{quote(class_name)}"
                )
            except ApiError as error:
                logger.debug("gateway %s/%s unreadable: %s", gateway_ns, ref.get("name"), error)
                continue
            controllers.append(str((gateway_class.get("spec") or {}).get("controllerName", "")))
        return tuple(controllers)

    async def _api_served(self, api: ApiResource) -> bool:
        """Discovery (allowed to every authenticated user): is the router's CRD installed?"""
        try:
            resources = await self._client.request("GET", api.prefix)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return any(r.get("name") == api.plural for r in resources.get("resources", ()))

    def _written(self, obj: Mapping[str, Any]) -> None:
        """What the API answered to a write of a child: into the store, so that the next
        reconcile sees it even if the watch has not brought it yet."""
        if self._children is not None:
            self._children.written(obj)

    def _check_fence(self) -> None:
        if not self._fence():
            raise NotLeading()

    async def _carry_out(self, body: Mapping[str, Any], result: Plan, world: _World) -> None:
        client = self._client
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        status = result.status
        for revision, replicas in result.handover:
            self._check_fence()
            ref = naming.ModelRef(name=name, namespace=namespace, uid=body["metadata"]["uid"])
            try:
                self._written(
                    await client.apply(
                        desired.replicas_handover(ref, revision, replicas),
                        manager=desired.HANDOVER_MANAGER,
                        force=False,
                    )
                )
            except ApiError as error:
                # A conflict: the HPA has set the replicas since they were read, and owns
                # them alone; the apply below can leave them out safely.
                if error.status != 409:
                    raise
        for obj in result.apply:
            wanted = applied.stamped(obj)
            key = (str(obj.get("kind", "")), str(obj["metadata"]["name"]))
            if applied.unchanged(wanted, world.objects.get(key)):
                continue
            self._check_fence()
            self._written(await client.apply(wanted))
        for deployment, replicas in result.scale:
            self._check_fence()
            await client.scale("Deployment", namespace, deployment, replicas)
        for kind, child in result.delete:
            owned = world.objects.get((kind, child))
            uid = ownership.uid_of(owned) if owned is not None else ""
            self._check_fence()
            if uid and await client.delete(kind, namespace, child, uid=uid):
                logger.info("deleted %s %s/%s", kind, namespace, child)
        old_status = body.get("status") or {}
        if _comparable(old_status) != _comparable(status):
            self._check_fence()
            try:
                # Conditional on the version that was read: a status decided from an
                # older MLModel (or by a replica that no longer leads) never wins.
                await client.apply_status(
                    "MLModel",
                    namespace,
                    name,
                    status,
                    resource_version=body["metadata"].get("resourceVersion", ""),
                )
            except ApiError as error:
                if error.status == 409:
                    raise Conflict() from error
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
            self._check_fence()
            await client.event(
                involved=body, type_=event.type, reason=event.reason, message=event.message
            )
