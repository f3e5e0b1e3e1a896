"""The HTTP app: a raw ASGI application for the Open Inference Protocol v2 and KServe v1.

Created by `server.py` in each worker process. Routes are exact-match dictionary
lookups built at start-up; inference requests go to `inference.py` (admission,
limits, decoding, the model), the rest is answered here. Only inference requests
are counted in the metrics (`metrics.py`), with every status they get, 4xx and 5xx
included: the canary analysis judges the model by them, and requests to other
paths must not be able to pad or dilute that. Bad requests get
`{"error": "..."}` with a 4xx status and never reach the model; overload gets 503
with Retry-After.

Lifecycle: the ASGI lifespan start-up only reads metadata.json and starts loading
the model in a thread, so `/v2/health/live` answers at once while
`/v2/health/ready` (and inference) answer 503 until the model is loaded and
warmed up. `begin_drain` (on SIGTERM) turns readiness off again while inference
goes on, answers then carrying `Connection: close` so that clients and gateways
let go of their connections to this process before it stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import Enum, auto
from importlib import metadata as importlib_metadata
from typing import Final

import orjson

from mlmodel_runtime.modeldir import ModelMetadata, read_metadata
from mlmodel_runtime.serve.asgi import Receive, Scope, Send, answer
from mlmodel_runtime.serve.batching import Batcher
from mlmodel_runtime.serve.codec import error_body
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.inference import Inference
from mlmodel_runtime.serve.metrics import CONTENT_TYPE, RuntimeMetrics
from mlmodel_runtime.serve.model import ModelLoadError
from mlmodel_runtime.serve.session import ModelSession, SessionOptions

log = logging.getLogger("mlmodel_runtime.serve")

_SERVER_NAME: Final = "mlmodel-runtime"


class Route(Enum):
    INFER = auto()
    V1_PREDICT = auto()
    MODEL_METADATA = auto()
    MODEL_READY = auto()
    SERVER_METADATA = auto()
    LIVE = auto()
    READY = auto()
    METRICS = auto()


_METHODS: Final = {
    Route.INFER: "POST",
    Route.V1_PREDICT: "POST",
}


def _package_version() -> str:
    try:
        return importlib_metadata.version("mlmodel-operator")
    except importlib_metadata.PackageNotFoundError:
        return "0"


class ServeApp:
    """The ASGI callable; one per worker process."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        on_fatal: Callable[[], None] | None = None,
        announce: bool = True,
    ) -> None:
        self.config = config
        self._on_fatal = on_fatal
        self._announce = announce
        self.metadata: ModelMetadata = read_metadata(config.model_dir)
        self.metrics = RuntimeMetrics(
            model=config.name,
            version=config.version,
            revision=config.revision,
            metadata=self.metadata,
        )
        self.session: ModelSession | None = None
        self.batcher: Batcher | None = None
        self.ready = False
        self.draining = False
        self.inference = Inference(config)
        self._routes = self._build_routes()
        self._server_metadata = orjson.dumps(
            {
                "name": _SERVER_NAME,
                "version": _package_version(),
                "extensions": ["binary_tensor_data", "kserve_v1"],
            }
        )
        self._model_metadata = b""
        self._load_task: asyncio.Task[None] | None = None

    def _build_routes(self) -> dict[str, Route]:
        name, version = self.config.name, self.config.version
        bases = [f"/v2/models/{name}"]
        if version:
            bases.append(f"/v2/models/{name}/versions/{version}")
        routes = {
            "/v2": Route.SERVER_METADATA,
            "/v2/health/live": Route.LIVE,
            "/v2/health/ready": Route.READY,
            "/metrics": Route.METRICS,
            f"/v1/models/{name}:predict": Route.V1_PREDICT,
        }
        for base in bases:
            routes[base] = Route.MODEL_METADATA
            routes[base + "/ready"] = Route.MODEL_READY
            routes[base + "/infer"] = Route.INFER
        return routes

    # ---- lifecycle -------------------------------------------------------

    def begin_drain(self) -> None:
        self.draining = True
        self.inference.begin_drain()

    def _load(self) -> tuple[ModelSession, float]:
        started = time.monotonic()
        session = ModelSession(
            self.config.model_dir,
            SessionOptions(
                intra_op_threads=self.config.intra_op_threads,
                allow_non_finite=self.config.allow_non_finite,
                max_request_elements=self.config.max_request_elements,
            ),
        )
        try:
            session.warm_up(self.config.max_batch_size)
        except Exception as exc:
            # Synthetic zeros may be outside what a model accepts; it still loaded.
            log.warning("warm-up with synthetic inputs failed: %s", exc)
        return session, time.monotonic() - started

    async def _load_model(self) -> None:
        try:
            session, seconds = await asyncio.to_thread(self._load)
        except ModelLoadError as exc:
            log.error("cannot serve the model: %s", exc)
            self._fatal()
            return
        except Exception:
            log.exception("cannot serve the model")
            self._fatal()
            return
        self.metrics.use_outputs(session.output_names)
        batcher = Batcher(
            run=session.run,
            max_batch_size=self.config.max_batch_size,
            max_batch_delay_s=self.config.max_batch_delay_ms / 1000.0,
            batchable=session.batchable,
            max_queued=self.config.max_queued_requests,
            on_batch=self.metrics.observe_batch,
            check_shapes=any(-1 in spec.shape[1:] for spec in session.inputs),
        )
        batcher.start(asyncio.get_running_loop())
        self.inference.serve_model(session, batcher)
        self.session, self.batcher = session, batcher
        self._model_metadata = orjson.dumps(
            {
                "name": self.config.name,
                "versions": [self.config.version] if self.config.version else [],
                "platform": "onnxruntime_onnx",
                "inputs": [spec.to_json() for spec in session.inputs],
                "outputs": [spec.to_json() for spec in session.outputs],
            }
        )
        self.ready = True
        self._log_ready(session, seconds)

    def _fatal(self) -> None:
        if self._on_fatal is not None:
            self._on_fatal()

    def _log_ready(self, session: ModelSession, seconds: float) -> None:
        c = self.config
        fields = {
            "model": c.name,
            "version": c.version,
            "revision": c.revision,
            "digest": self.metadata.model_sha256,
            "task": self.metadata.task,
            "inputs": [f"{s.name}:{s.datatype}{list(s.shape)}" for s in session.inputs],
            "outputs": [f"{s.name}:{s.datatype}{list(s.shape)}" for s in session.outputs],
            "address": f"{c.host}:{c.port}",
            "workers": c.workers,
            "max_batch_size": c.max_batch_size,
            "max_batch_delay_ms": c.max_batch_delay_ms,
            "batching": session.batchable and c.max_batch_size > 1,
            "intra_op_threads": c.intra_op_threads,
            "max_body_bytes": c.max_body_bytes,
            "max_json_body_bytes": c.max_json_body_bytes,
            "max_request_elements": c.max_request_elements,
            "max_inflight_bytes": c.max_inflight_bytes,
            "max_concurrent_requests": c.max_concurrent_requests,
            "max_queued_requests": c.max_queued_requests,
            "max_connections": c.max_connections,
            "max_header_bytes": c.max_header_bytes,
            "request_timeout_s": c.request_timeout_s,
            "header_timeout_s": c.header_timeout_s,
            "idle_timeout_s": c.idle_timeout_s,
            "shutdown_delay_s": c.shutdown_delay_s,
            "drain_timeout_s": c.drain_timeout_s,
            "allow_non_finite": c.allow_non_finite,
            "load_seconds": round(seconds, 3),
        }
        level = logging.INFO if self._announce else logging.DEBUG
        log.log(level, "ready to serve", extra={"fields": fields})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.inference.start()
                self._load_task = asyncio.create_task(self._load_model())
                if self.config.workers > 1:
                    # Workers share one listening socket: a worker accepts connections
                    # only once its model is ready, so the kernel hands requests to ready
                    # workers and a readiness probe answered by one speaks for all.
                    await self._load_task
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                self.ready = False
                if self._load_task is not None and not self._load_task.done():
                    self._load_task.cancel()
                self.inference.stop()
                if self.batcher is not None:
                    await asyncio.to_thread(self.batcher.stop, self.config.drain_timeout_s)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- HTTP ------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        route = self._routes.get(path)
        inference = (route is Route.INFER or route is Route.V1_PREDICT) and (
            scope["method"] == "POST"
        )
        try:
            if inference:
                v1 = route is Route.V1_PREDICT
                status = await self.inference.handle(scope, receive, send, v1=v1)
            elif route is None:
                status = await self._not_found(scope, send)
            else:
                want = _METHODS.get(route, "GET")
                if scope["method"] != want:
                    message = f"{path} takes {want}, not {scope['method']}"
                    status = await answer(send, 405, error_body(message))
                else:
                    status = await self._get(route, send)
        except Exception:
            log.exception("unexpected error answering %s", scope.get("path"))
            status = 500
            try:
                await answer(send, 500, error_body("internal error; see the server log"))
            except Exception:
                log.debug("could not send the 500 answer", exc_info=True)
        if inference:
            self.metrics.observe_request(status, time.perf_counter() - started)

    async def _get(self, route: Route, send: Send) -> int:
        if route is Route.LIVE:
            return await answer(send, 200, b'{"live":true}')
        if route is Route.READY:
            ready = self.ready and not self.draining
            return await answer(send, 200 if ready else 503, b'{"ready":%s}' % _bool(ready))
        if route is Route.MODEL_READY:
            ready = self.ready and not self.draining
            body = orjson.dumps({"name": self.config.name, "ready": ready})
            return await answer(send, 200 if ready else 503, body)
        if route is Route.MODEL_METADATA:
            if not self.ready:
                return await answer(send, 503, error_body(self._not_ready_message()))
            return await answer(send, 200, self._model_metadata)
        if route is Route.SERVER_METADATA:
            return await answer(send, 200, self._server_metadata)
        body = await asyncio.to_thread(self.metrics.exposition)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE.encode()),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return 200

    def _not_ready_message(self) -> str:
        if self.draining:
            return "the server is shutting down"
        return f"model '{self.config.name}' is not ready yet (loading and warming up)"

    async def _not_found(self, scope: Scope, send: Send) -> int:
        path: str = scope["path"]
        served = f"'{self.config.name}'" + (
            f" version '{self.config.version}'" if self.config.version else " (no versions)"
        )
        parts = path.split("/")
        if path.startswith("/v2/models/") and len(parts) > 3:
            name = parts[3]
            if name != self.config.name:
                message = f"unknown model '{name}'; this server serves {served}"
            elif len(parts) > 5 and parts[4] == "versions":
                message = (
                    f"unknown version '{parts[5]}' of model '{name}'; this server serves {served}"
                )
            else:
                message = f"unknown path {path}; see /v2/models/{self.config.name}"
        elif path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :].split(":", 1)[0]
            if name != self.config.name:
                message = f"unknown model '{name}'; this server serves {served}"
            else:
                message = f"unknown path {path}; use /v1/models/{name}:predict"
        else:
            message = f"unknown path {path}"
        return await answer(send, 404, error_body(message))


def _bool(value: bool) -> bytes:
    return b"true" if value else b"false"
