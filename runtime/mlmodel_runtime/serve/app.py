"""The HTTP app: a raw ASGI application for the Open Inference Protocol v2 and KServe v1.

Created by `server.py` in each worker process, with the model's metadata and a
factory of its session (`model.py`) injected, so that tests can build it in-process
around a fake or a real session. It turns HTTP into calls on the layers below and
holds no model state itself:

- the routing table (`routes.py`), built once: one dict lookup per request;
- inference paths go to the exchange (`exchange.py`) with the protocol adapters
  (`adapters.py`) their route carries;
- health, readiness and metadata are answered from the data plane
  (`dataplane.py`), which has the one readiness rule.

Only inference requests are counted in the metrics (`metrics.py`), with every
status they get, 4xx and 5xx included: the canary analysis judges the model by
them, and requests to other paths must not be able to pad or dilute that.

With `--grpc-port`, the lifespan also runs the Open Inference Protocol's gRPC
service (`grpc_server.py`) on the same loop and data plane; grpcio is imported only
then.

Lifecycle: the ASGI lifespan start-up only starts loading the model in a task, so
`/v2/health/live` answers at once while `/v2/health/ready` (and inference) answer
503 until the model is loaded and warmed up. `begin_drain` (on SIGTERM) turns
readiness off while inference goes on, answers then carrying `Connection: close` so
that clients and gateways let go of their connections to this process before it
stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from mlmodel_runtime.modeldir import ModelMetadata
from mlmodel_runtime.serve import drift
from mlmodel_runtime.serve.adapters import v1_adapters, v2_adapters
from mlmodel_runtime.serve.asgi import Receive, Scope, Send, answer
from mlmodel_runtime.serve.codec import error_body
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.dataplane import DataPlane
from mlmodel_runtime.serve.exchange import InferenceExchange
from mlmodel_runtime.serve.metrics import CONTENT_TYPE, RuntimeMetrics
from mlmodel_runtime.serve.model import ModelLoadError, SessionFactory
from mlmodel_runtime.serve.overload import LoopGuard, LoopLag
from mlmodel_runtime.serve.routes import Route, build_routes, not_found_message

if TYPE_CHECKING:
    from mlmodel_runtime.serve.grpc_server import GrpcService

log = logging.getLogger("mlmodel_runtime.serve")


class ServeApp:
    """The ASGI callable; one per worker process."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        metadata: ModelMetadata,
        load_session: SessionFactory,
        on_fatal: Callable[[], None] | None = None,
        announce: bool = True,
    ) -> None:
        self.config = config
        self.metadata = metadata
        self._on_fatal = on_fatal
        self._announce = announce
        self.metrics = RuntimeMetrics(
            model=config.name,
            version=config.version,
            revision=config.revision,
            metadata=metadata,
            baseline=drift.read_baseline(config.model_dir),
            drift_max_features=config.drift_max_features,
        )
        self.plane = DataPlane(config, load_session=load_session, metrics=self.metrics)
        self._exchange = InferenceExchange(config, self.plane, on_shed=self.metrics.observe_shed)
        self._routes = build_routes(
            name=config.name,
            version=config.version,
            v2=v2_adapters(config),
            v1=v1_adapters(config),
        )
        self._observe_request = self.metrics.observe_request
        self._load_task: asyncio.Task[None] | None = None
        self.grpc: GrpcService | None = None
        # Shedding by the loop's lateness, done by the connection protocol (server.py
        # hands it this guard); None with --max-loop-lag-ms 0.
        self.loop_guard: LoopGuard | None = None
        if config.max_loop_lag_ms > 0:
            self.loop_guard = LoopGuard.build(
                LoopLag(config.max_loop_lag_ms / 1000),
                self.metrics.observe_loop_shed,
                headers=self._exchange.identity,
            )

    # ---- lifecycle -------------------------------------------------------

    def begin_drain(self) -> None:
        self.plane.begin_drain()
        self._exchange.begin_drain()

    async def _load_model(self) -> None:
        try:
            seconds = await self.plane.load()
        except ModelLoadError as exc:
            log.error("cannot serve the model: %s", exc)
            self._fatal()
            return
        except Exception:
            log.exception("cannot serve the model")
            self._fatal()
            return
        self._log_ready(seconds)

    def _fatal(self) -> None:
        if self._on_fatal is not None:
            self._on_fatal()

    def _log_ready(self, seconds: float) -> None:
        c = self.config
        session = self.plane.session
        assert session is not None
        fields = {
            "model": c.name,
            "version": c.version,
            "revision": c.revision,
            "digest": self.metadata.model_sha256,
            "task": self.metadata.task,
            "inputs": [f"{s.name}:{s.datatype}{list(s.shape)}" for s in session.inputs],
            "outputs": [f"{s.name}:{s.datatype}{list(s.shape)}" for s in session.outputs],
            "address": f"{c.host}:{c.port}",
            "grpc_port": self.grpc.port if self.grpc is not None else None,
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
                self.plane.start()
                if self.loop_guard is not None:
                    self.loop_guard.lag.start(asyncio.get_running_loop())
                if self.config.grpc_port:
                    try:
                        await self._start_grpc()
                    except Exception as exc:
                        message_text = f"cannot serve gRPC on port {self.config.grpc_port}: {exc}"
                        log.error(message_text)
                        await send({"type": "lifespan.startup.failed", "message": message_text})
                        return
                self._load_task = asyncio.create_task(self._load_model())
                if self.config.workers > 1:
                    # Workers share one listening socket: a worker accepts connections
                    # only once its model is ready, so the kernel hands requests to ready
                    # workers and a readiness probe answered by one speaks for all.
                    await self._load_task
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._load_task is not None and not self._load_task.done():
                    self._load_task.cancel()
                if self.grpc is not None:
                    # uvicorn has drained HTTP; calls in flight finish, new ones are refused.
                    await self.grpc.stop(self.config.drain_timeout_s)
                await self.plane.stop()
                if self.loop_guard is not None:
                    self.loop_guard.lag.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_grpc(self) -> None:
        from mlmodel_runtime.serve.grpc_server import GrpcService

        self.grpc = GrpcService(
            self.config, self.plane, self.metrics, refusal_answer=self._exchange.refusal_answer
        )
        await self.grpc.start()

    # ---- HTTP ------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        # Inline rather than a coroutine of its own: this is every request's path.
        endpoint = self._routes.get(scope["path"])
        if endpoint is not None and endpoint.adapters is not None and scope["method"] == "POST":
            started = time.perf_counter()
            try:
                status = await self._exchange.handle(scope, receive, send, endpoint.adapters)
            except Exception:
                status = await self._internal_error(scope, send)
            self._observe_request(status, time.perf_counter() - started)
            return
        try:
            if endpoint is None:
                await self._not_found(scope, send)
            elif scope["method"] != endpoint.method:
                message = f"{scope['path']} takes {endpoint.method}, not {scope['method']}"
                await answer(send, 405, error_body(message))
            else:
                await self._get(endpoint.route, send)
        except Exception:
            await self._internal_error(scope, send)

    async def _internal_error(self, scope: Scope, send: Send) -> int:
        """A bug: logged with its traceback, answered 500, and the server goes on."""
        log.exception("unexpected error answering %s", scope.get("path"))
        try:
            await answer(send, 500, error_body("internal error; see the server log"))
        except Exception:
            log.debug("could not send the 500 answer", exc_info=True)
        return 500

    async def _get(self, route: Route, send: Send) -> int:
        plane = self.plane
        if route is Route.LIVE:
            return await answer(send, 200, b'{"live":true}')
        if route is Route.READY:
            ready = plane.ready
            return await answer(send, 200 if ready else 503, b'{"ready":%s}' % _bool(ready))
        if route is Route.MODEL_READY:
            ready = plane.ready
            body = orjson.dumps({"name": self.config.name, "ready": ready})
            return await answer(send, 200 if ready else 503, body)
        if route is Route.MODEL_METADATA:
            if plane.model_metadata is None:
                return await answer(send, 503, error_body(plane.not_ready_message()))
            return await answer(send, 200, plane.model_metadata)
        if route is Route.SERVER_METADATA:
            return await answer(send, 200, plane.server_metadata)
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

    async def _not_found(self, scope: Scope, send: Send) -> int:
        message = not_found_message(
            scope["path"], name=self.config.name, version=self.config.version
        )
        return await answer(send, 404, error_body(message))


def _bool(value: bool) -> bytes:
    return b"true" if value else b"false"
