"""A load generator that sends inference requests to an MLModel's front door, as its
clients would: the gateway's address (the `gatewayAPI` router) or the `<name>` Service's
ClusterIP (the `replicas` router), inside the network sandbox.

At a fixed rate it sends Open Inference Protocol v2 requests to one URL, until a request
count or a duration is reached, or until `stop()` when neither is given (the demo's
load runs as long as the demo). It never chooses a backend, reads weights or reads the
MLModel's status: what the gateway, kube-proxy and the Services do with the requests is
what is measured. Each answer is counted by the revision that answered (the runtime's
`x-mlmodel-revision` response header; the answer's `model_version` where a runtime does
not send it) and by status code; a request that got no HTTP answer is counted by its
error. Async, one event loop in one thread: light on CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from localenv.kubeapi import ApiAccess, KubeApi, Plane

REQUEST_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 64
REVISION_HEADER = "x-mlmodel-revision"
RECORDED_FAILURES = 50  # the first failures are kept whole, to say what went wrong


@dataclass(frozen=True)
class Failure:
    """A request that got no 200: when it was sent (time.monotonic()), which revision
    answered (empty without an HTTP answer), and what: the status and the start of the
    body, or the connection error."""

    sent_at: float
    revision: str
    code: str
    detail: str


@dataclass
class LoadResult:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (revision, code)
    versions: Counter[str] = field(default_factory=Counter)  # model_version of 200 answers
    seconds: float = 0.0
    # time.monotonic() of the first and of the last answer from each revision
    first_answer: dict[str, float] = field(default_factory=dict)
    last_answer: dict[str, float] = field(default_factory=dict)
    first_failures: list[Failure] = field(default_factory=list)

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

    def explain(self) -> str:
        """The counts and the first failures, for an assertion's message."""
        lines = [f"counts: {dict(self.counts)}"]
        for f in self.first_failures:
            lines.append(f"  sent at {f.sent_at:.3f}: {f.revision or '-'} {f.code}: {f.detail}")
        return "\n".join(lines)


async def service_url(access: ApiAccess | Plane, namespace: str, name: str) -> str:
    """The inference URL of MLModel `name` through its `<name>` Service's ClusterIP."""
    api = KubeApi(ApiAccess.of(access))
    try:
        service = await api.get(f"/api/v1/namespaces/{namespace}/services/{name}")
    finally:
        await api.aclose()
    if not service or not (service.get("spec") or {}).get("clusterIP"):
        raise RuntimeError(f"the Service {namespace}/{name} has no ClusterIP")
    return f"http://{service['spec']['clusterIP']}/v2/models/{name}/infer"


def gateway_url(gateway: str, name: str) -> str:
    """The inference URL of MLModel `name` through a gateway at `gateway` (http://ip:port)."""
    return f"{gateway.rstrip('/')}/v2/models/{name}/infer"


class LoadGenerator:
    """`LoadGenerator(url, ...).start()` runs in a thread; `wait()` returns the counts.

    `count` and `duration` bound the load, whichever comes first; with neither it runs
    until `stop()`. `headers` go with every request (a `Host` for a route with hostnames,
    `x-mlmodel-variant` to pin a side). `keep_alive` False opens a connection per request:
    kube-proxy picks an endpoint per connection, so a Service's split by ready pods shows
    only over many connections. `recorded_failures`: how many failures are kept whole
    (when, which revision, the code and the body), for a run that must explain each."""

    def __init__(
        self,
        url: str,
        *,
        body: dict[str, Any],
        rate: float,
        count: int | None = None,
        duration: float | None = None,
        headers: Mapping[str, str] | None = None,
        keep_alive: bool = True,
        recorded_failures: int = RECORDED_FAILURES,
    ) -> None:
        self.url = url
        self.recorded_failures = recorded_failures
        self.keep_alive = keep_alive
        self.body = body
        self.rate = rate
        self.count = count
        self.duration = duration
        self.headers = dict(headers or {})
        self.result = LoadResult()
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

    def snapshot(self) -> LoadResult:
        """The counts so far (callable from another thread while the load runs)."""
        with self._lock:
            return LoadResult(
                counts=Counter(self.result.counts),
                versions=Counter(self.result.versions),
                seconds=self.result.seconds,
                first_answer=dict(self.result.first_answer),
                last_answer=dict(self.result.last_answer),
                first_failures=list(self.result.first_failures),
            )

    # ---- the load ------------------------------------------------------------------

    async def run(self) -> LoadResult:
        # Keep-alive as clients do (a gateway spreads requests over its backends anyway),
        # unless asked for a connection per request.
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16 if self.keep_alive else 0
        )
        client = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT_S, trust_env=False, limits=limits, headers=self.headers
        )
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        try:
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
        finally:
            await client.aclose()
        self.result.seconds = time.monotonic() - start
        return self.result

    async def _one(self, client: httpx.AsyncClient, in_flight: asyncio.Semaphore) -> None:
        revision, version, detail = "", "", ""
        sent_at = time.monotonic()
        try:
            try:
                response = await client.post(self.url, json=self.body)
                code = str(response.status_code)
                if response.status_code == 200:
                    version = str(response.json().get("model_version", ""))
                else:
                    detail = response.text[:200]
                revision = response.headers.get(REVISION_HEADER, "") or version
            except httpx.HTTPError as error:
                code = type(error).__name__
                detail = str(error) or repr(error)
            with self._lock:
                self.result.counts[(revision, code)] += 1
                if code != "200" and len(self.result.first_failures) < self.recorded_failures:
                    failure = Failure(sent_at, revision, code, detail)
                    self.result.first_failures.append(failure)
                if revision and code.isdigit():  # an HTTP answer, not a connection error
                    answered = time.monotonic()
                    self.result.first_answer.setdefault(revision, answered)
                    self.result.last_answer[revision] = answered
                if version:
                    self.result.versions[version] += 1
        finally:
            in_flight.release()


async def until_answering(
    url: str,
    *,
    body: dict[str, Any],
    headers: Mapping[str, str] | None = None,
    within_s: float = 60.0,
) -> None:
    """Return once `url` answers a request with 200: a new Service or route is only
    usable once kube-proxy or the gateway has programmed it, which follows the API
    by up to a second or two. Load that counts failures starts after this."""
    deadline = time.monotonic() + within_s
    last = ""
    async with httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_S, trust_env=False, headers=dict(headers or {})
    ) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post(url, json=body)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {within_s:g} s; last: {last}")
