"""The HTTP app: a raw ASGI application for the Open Inference Protocol v2 and KServe v1.

Created by `server.py` in each worker process. Routes are exact-match dictionary
lookups built at start-up; request bodies go through `codec.py`, model execution
through `batching.py` (never on the event loop), metrics through `metrics.py`.
Every answer on a model path is counted with its status code; bad requests get
`{"error": "..."}` with a 4xx status and never reach the model.

Lifecycle: the ASGI lifespan start-up only reads metadata.json and starts loading
the model in a thread, so `/v2/health/live` answers at once while
`/v2/health/ready` (and inference) answer 503 until the model is loaded and
warmed up. `begin_drain` (on SIGTERM) turns readiness off again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from enum import Enum, auto
from importlib import metadata as importlib_metadata
from typing import Any, Final

import orjson

from mlmodel_runtime.modeldir import ModelMetadata, read_metadata
from mlmodel_runtime.serve.batching import Batcher
from mlmodel_runtime.serve.codec import (
    RequestError,
    decode_infer_request,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
    error_body,
)
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.metrics import CONTENT_TYPE, RuntimeMetrics
from mlmodel_runtime.serve.session import ModelLoadError, ModelSession, SessionOptions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("mlmodel_runtime.serve")

_JSON: Final = (b"content-type", b"application/json")
_HEADER_LENGTH: Final = b"inference-header-content-length"
_CONTENT_LENGTH: Final = b"content-length"
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
# Routes counted in mlmodel_requests_total: probes and scrapes would dilute error rates.
_COUNTED: Final = frozenset(
    {Route.INFER, Route.V1_PREDICT, Route.MODEL_METADATA, Route.MODEL_READY}
)
_MODEL_PREFIXES: Final = ("/v2/models/", "/v1/models/")


class _ClientGone(Exception):
    pass


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
        self._timeout = config.request_timeout_s
        self._max_body = config.max_body_bytes
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
        self._sweep_task: asyncio.Task[None] | None = None
        # Per-request deadlines, enforced by one sweeping task: an asyncio.timeout()
        # per request costs several microseconds on the hot path, a dict entry does not.
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweep_interval = max(0.005, min(0.05, self._timeout / 4))
        self._loop_time: Callable[[], float] = time.monotonic

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

    def _load(self) -> tuple[ModelSession, float]:
        started = time.monotonic()
        session = ModelSession(
            self.config.model_dir,
            SessionOptions(
                intra_op_threads=self.config.intra_op_threads,
                allow_non_finite=self.config.allow_non_finite,
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
            on_batch=self.metrics.observe_batch,
            check_shapes=any(-1 in spec.shape[1:] for spec in session.inputs),
        )
        batcher.start(asyncio.get_running_loop())
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

    async def _sweep(self) -> None:
        deadlines = self._deadlines
        while True:
            await asyncio.sleep(self._sweep_interval)
            now = self._loop_time()
            expired = [task for task, deadline in deadlines.items() if deadline <= now]
            for task in expired:
                del deadlines[task]
                self._expired.add(task)
                task.cancel()

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
            "request_timeout_s": c.request_timeout_s,
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
                self._loop_time = asyncio.get_running_loop().time
                self._load_task = asyncio.create_task(self._load_model())
                self._sweep_task = asyncio.create_task(self._sweep())
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
                if self._sweep_task is not None:
                    self._sweep_task.cancel()
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
        counted = route in _COUNTED or (route is None and path.startswith(_MODEL_PREFIXES))
        try:
            if route is None:
                status = await self._not_found(scope, send)
            else:
                want = _METHODS.get(route, "GET")
                if scope["method"] != want:
                    message = f"{path} takes {want}, not {scope['method']}"
                    status = await _answer(send, 405, error_body(message))
                elif route is Route.INFER or route is Route.V1_PREDICT:
                    status = await self._infer(scope, receive, send, route)
                else:
                    status = await self._get(route, send)
        except Exception:
            log.exception("unexpected error answering %s", scope.get("path"))
            status = 500
            try:
                await _answer(send, 500, error_body("internal error; see the server log"))
            except Exception:
                log.debug("could not send the 500 answer", exc_info=True)
        if counted:
            self.metrics.observe_request(status, time.perf_counter() - started)

    async def _get(self, route: Route, send: Send) -> int:
        if route is Route.LIVE:
            return await _answer(send, 200, b'{"live":true}')
        if route is Route.READY:
            ready = self.ready and not self.draining
            return await _answer(send, 200 if ready else 503, b'{"ready":%s}' % _bool(ready))
        if route is Route.MODEL_READY:
            ready = self.ready and not self.draining
            body = orjson.dumps({"name": self.config.name, "ready": ready})
            return await _answer(send, 200 if ready else 503, body)
        if route is Route.MODEL_METADATA:
            if not self.ready:
                return await _answer(send, 503, error_body(self._not_ready_message()))
            return await _answer(send, 200, self._model_metadata)
        if route is Route.SERVER_METADATA:
            return await _answer(send, 200, self._server_metadata)
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
        return await _answer(send, 404, error_body(message))

    async def _infer(self, scope: Scope, receive: Receive, send: Send, route: Route) -> int:
        if not self.ready or self.draining:
            await _drain_body(receive)
            return await _answer(send, 503, error_body(self._not_ready_message()))
        batcher = self.batcher
        session = self.session
        assert batcher is not None
        assert session is not None
        body_read = False
        task = asyncio.current_task()
        assert task is not None
        deadlines = self._deadlines
        deadlines[task] = self._loop_time() + self._timeout
        try:
            body, header_length = await self._read_body(scope, receive)
            body_read = True
            if route is Route.INFER:
                request = decode_infer_request(body, header_length, session.rules)
            else:
                request = decode_v1_request(body, session.rules)
            outputs = await batcher.submit(request.arrays, request.rows)
        except RequestError as exc:
            return await _answer(send, exc.status, error_body(exc.message))
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            if body_read:
                message = f"inference did not finish within {self._timeout} s"
                return await _answer(send, 504, error_body(message))
            message = f"request body not received within {self._timeout} s"
            return await _answer(send, 408, error_body(message))
        except _ClientGone:
            return 499
        except Exception as exc:
            if type(exc).__name__ in ("InvalidArgument", "InvalidGraph"):
                return await _answer(send, 400, error_body(f"the model rejected the input: {exc}"))
            raise
        finally:
            deadlines.pop(task, None)
        if route is Route.V1_PREDICT:
            return await _answer(send, 200, encode_v1_response(session.rules, outputs))
        names = session.output_names
        payload, header_length = encode_infer_response(
            model_name=self.config.name,
            model_version=self.config.version,
            request_id=request.id,
            outputs=[(names[i], outputs[i], binary) for i, binary in request.outputs],
        )
        if header_length is None:
            return await _answer(send, 200, payload)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"%d" % len(payload)),
                    (_HEADER_LENGTH, b"%d" % header_length),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return 200

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, int | None]:
        header_length: int | None = None
        limit = self._max_body
        for key, value in scope["headers"]:
            if key == _CONTENT_LENGTH:
                declared = int(value) if value.isdigit() else 0
                if declared > limit:
                    raise RequestError(
                        f"request body of {declared} bytes exceeds the limit of {limit} bytes "
                        "(--max-body-bytes)",
                        413,
                    )
            elif key == _HEADER_LENGTH:
                try:
                    header_length = int(value)
                except ValueError:
                    raise RequestError(
                        f"Inference-Header-Content-Length must be an integer, got {value!r}"
                    ) from None
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if message["type"] == "http.disconnect":
                raise _ClientGone
            if len(body) > limit:
                raise RequestError(
                    f"request body exceeds the limit of {limit} bytes (--max-body-bytes)", 413
                )
            return body, header_length
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    f"request body exceeds the limit of {limit} bytes (--max-body-bytes)", 413
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), header_length


def _bool(value: bool) -> bytes:
    return b"true" if value else b"false"


async def _answer(send: Send, status: int, body: bytes) -> int:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


async def _drain_body(receive: Receive) -> None:
    message = await receive()
    while message.get("more_body", False):
        message = await receive()
