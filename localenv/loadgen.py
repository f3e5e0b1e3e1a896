"""A load generator standing in for the gateway in front of an MLModel's pods.

At a fixed rate it sends Open Inference Protocol v2 requests straight to pod IPs
(loopback), until a request count or a duration is reached, or until `stop()` when
neither is given (the demo's load runs as long as the demo). For each request it
picks the canary with probability `status.canary.effectiveWeight`/100, else the
stable revision, then a ready pod of that revision (labels mlops.dev/model and
mlops.dev/revision, Ready condition True, not being deleted). When the chosen side
has no ready pod it falls back to the other side, as a route with one empty
backend does. Answers are counted by revision and status code.

With `gateway=True` it plays a Gateway API implementation instead: the split is the
weights of the backendRefs of the MLModel's HTTPRoute (the rule without header matches), and
each backend Service's pods are those its selector picks, as a gateway programmed from
that HTTPRoute would route.

The routing table (MLModel status or HTTPRoute, Services, pods) is re-read every
REFRESH_S from the API server. Async, one event loop in one thread: light on CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from localenv.kubeapi import ApiAccess, KubeApi, Plane

REFRESH_S = 0.5
REQUEST_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 64
NO_ENDPOINT = "no-endpoint"


@dataclass(frozen=True)
class Route:
    stable: str = ""
    canary: str = ""
    canary_share: float = 0.0
    pods: dict[str, tuple[str, ...]] = field(default_factory=dict)  # revision -> pod IPs


def pick(route: Route, rng: random.Random) -> tuple[str, str] | None:
    """(revision, pod IP) for one request, or None when no revision has a ready pod."""
    wants_canary = bool(route.canary) and rng.random() < route.canary_share
    order = (route.canary, route.stable) if wants_canary else (route.stable, route.canary)
    for revision in order:
        addresses = route.pods.get(revision) if revision else None
        if addresses:
            return revision, rng.choice(addresses)
    return None


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (
        not pod["metadata"].get("deletionTimestamp")
        and bool(status.get("podIP"))
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
    )


@dataclass
class LoadResult:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (revision, code)
    versions: Counter[str] = field(default_factory=Counter)  # model_version of 200 answers
    seconds: float = 0.0
    # time.monotonic() of the first and of the last answer from each revision
    first_answer: dict[str, float] = field(default_factory=dict)
    last_answer: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_revision(self, code: str | None = None) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (revision, answered), n in self.counts.items():
            if code is None or answered == code:
                out[revision] += n
        return dict(out)

    def failures(self) -> dict[tuple[str, str], int]:
        return {key: n for key, n in self.counts.items() if key[1] != "200"}


class LoadGenerator:
    """`LoadGenerator(...).start()` runs in a thread; `wait()` returns the counts.

    `count` and `duration` bound the load, whichever comes first; with neither it runs
    until `stop()`."""

    def __init__(
        self,
        access: ApiAccess | Plane,
        *,
        namespace: str,
        name: str,
        body: dict[str, Any],
        rate: float,
        count: int | None = None,
        duration: float | None = None,
        port: int = 8080,
        seed: int = 0,
        gateway: bool = False,
    ) -> None:
        self.access = ApiAccess.of(access)  # a control plane: as its admin
        self.namespace = namespace
        self.name = name
        self.body = body
        self.rate = rate
        self.count = count
        self.duration = duration
        self.port = port
        self.rng = random.Random(seed)
        self.gateway = gateway
        self.result = LoadResult()
        self.route = Route()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # ---- thread API ----------------------------------------------------------------

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._thread_main, name="loadgen", daemon=True)
        self._thread.start()
        return self

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as error:
            self._error = error

    def stop(self) -> None:
        """Stop sending early; requests in flight are still answered and counted."""
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> LoadResult:
        """The counts once the load has ended: by itself, or after `stop()`."""
        if timeout is None:
            by_count = None if self.count is None else self.count / self.rate
            bounds = [s for s in (self.duration, by_count) if s is not None]
            if not bounds and not self._stopping.is_set():
                raise RuntimeError("this load runs until stop(): call it before wait()")
            timeout = min(bounds, default=0.0) + 30
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the load generator did not finish in time")
        if self._error is not None:
            raise RuntimeError(f"the load generator failed: {self._error}") from self._error
        return self.result

    # ---- the load ------------------------------------------------------------------

    async def run(self) -> LoadResult:
        api = KubeApi(self.access)
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16)
        client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, trust_env=False, limits=limits)
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        try:
            await self._refresh(api)
            refresher = asyncio.create_task(self._refresh_forever(api))
            indices = range(self.count) if self.count is not None else itertools.count()
            for index in indices:
                due = start + index / self.rate
                if self._stopping.is_set() or (
                    self.duration is not None and due - start > self.duration
                ):
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await in_flight.acquire()
                task = asyncio.create_task(self._one(client, in_flight))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 1)
            refresher.cancel()
        finally:
            await client.aclose()
            await api.aclose()
        self.result.seconds = time.monotonic() - start
        return self.result

    async def _refresh_forever(self, api: KubeApi) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self._refresh(api)

    async def _refresh(self, api: KubeApi) -> None:
        base = f"/namespaces/{self.namespace}"
        try:
            pods = await api.get(
                f"/api/v1{base}/pods", {"labelSelector": f"mlops.dev/model={self.name}"}
            )
            if self.gateway:
                route = await self._gateway_route(api, base)
            else:
                model = await api.get(f"/apis/mlops.dev/v1alpha1{base}/mlmodels/{self.name}")
                status = (model or {}).get("status") or {}
                route = Route(
                    stable=(status.get("stable") or {}).get("revision", ""),
                    canary=(status.get("canary") or {}).get("revision", ""),
                    canary_share=float((status.get("canary") or {}).get("effectiveWeight") or 0)
                    / 100,
                )
        except (httpx.HTTPError, RuntimeError):
            return  # keep the last routing table, as a gateway does
        ready: dict[str, list[str]] = {}
        for pod in (pods or {}).get("items") or ():
            if _ready(pod):
                revision = pod["metadata"]["labels"].get("mlops.dev/revision", "")
                ready.setdefault(revision, []).append(pod["status"]["podIP"])
        self.route = replace(
            route, pods={revision: tuple(sorted(ips)) for revision, ips in ready.items()}
        )

    async def _gateway_route(self, api: KubeApi, base: str) -> Route:
        """The split of the HTTPRoute, and the revision each backend Service selects."""
        http_route = await api.get(
            f"/apis/gateway.networking.k8s.io/v1{base}/httproutes/{self.name}"
        )
        split: dict[str, int] = {}
        for rule in ((http_route or {}).get("spec") or {}).get("rules") or ():
            # The API server defaults `matches` to a path prefix `/`: the split is the
            # rule that matches on no header.
            if not any(m.get("headers") for m in rule.get("matches") or ()):
                split = {r["name"]: int(r.get("weight", 1)) for r in rule.get("backendRefs") or ()}
                break
        revisions: dict[str, str] = {}
        for service_name in split:
            service = await api.get(f"/api/v1{base}/services/{service_name}")
            selector = ((service or {}).get("spec") or {}).get("selector") or {}
            revisions[service_name] = str(selector.get("mlops.dev/revision", ""))
        stable, canary = f"{self.name}-stable", f"{self.name}-canary"
        total = sum(split.values())
        return Route(
            stable=revisions.get(stable, ""),
            canary=revisions.get(canary, ""),
            canary_share=split.get(canary, 0) / total if total else 0.0,
        )

    def snapshot(self) -> LoadResult:
        """The counts so far (callable from another thread while the load runs)."""
        with self._lock:
            return LoadResult(
                counts=Counter(self.result.counts),
                versions=Counter(self.result.versions),
                seconds=self.result.seconds,
                first_answer=dict(self.result.first_answer),
                last_answer=dict(self.result.last_answer),
            )

    async def _one(self, client: httpx.AsyncClient, in_flight: asyncio.Semaphore) -> None:
        version = ""
        try:
            target = pick(self.route, self.rng)
            if target is None:
                revision, code = "", NO_ENDPOINT
            else:
                revision, address = target
                url = f"http://{address}:{self.port}/v2/models/{self.name}/infer"
                try:
                    response = await client.post(url, json=self.body)
                    code = str(response.status_code)
                    if response.status_code == 200:
                        version = str(response.json().get("model_version", ""))
                except httpx.HTTPError as error:
                    code = type(error).__name__
            with self._lock:
                self.result.counts[(revision, code)] += 1
                if revision and code.isdigit():  # an HTTP answer, not a connection error
                    answered = time.monotonic()
                    self.result.first_answer.setdefault(revision, answered)
                    self.result.last_answer[revision] = answered
                if version:
                    self.result.versions[version] += 1
        finally:
            in_flight.release()
