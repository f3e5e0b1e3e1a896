"""The Open Inference Protocol gRPC service (`inference.GRPCInferenceService`).

Started by the app (`app.py`) on `--grpc-port` when it is not 0, on the same event
loop and over the same data plane (`dataplane.py`) as REST: one model session, one
batching queue (gRPC and REST requests are merged into the same batches), one
admission budget, one readiness rule, and the same metrics. A ModelInfer call is
counted in `mlmodel_requests_total` with the HTTP status its gRPC status stands for
(the inverse of gRPC's HTTP mapping: OK 200, INVALID_ARGUMENT 400, NOT_FOUND 404,
RESOURCE_EXHAUSTED 413 for a request too large ever to run, UNAVAILABLE 503,
DEADLINE_EXCEEDED 504, INTERNAL 500), so that the canary analysis judges a
revision by all its requests, whatever protocol they came by.

The handlers are generic (bytes in, bytes out) rather than generated stubs: a
request is weighed and admitted, or shed, from its length before it is parsed, as
REST does with its body (`exchange.py`). Shed calls end UNAVAILABLE with
`grpc-retry-pushback-ms` (gRPC's Retry-After), which gRPC clients retry when their
retry policy allows.

On SIGTERM the service goes on answering (readiness false) while the process
keeps serving for `--shutdown-delay-s`; `stop` then lets calls in flight finish
for up to `--drain-timeout-s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn

import grpc
from grpc import aio

from mlmodel_runtime.serve import grpc_codec
from mlmodel_runtime.serve.admission import Refusal, grpc_weight
from mlmodel_runtime.serve.batching import QueueFull
from mlmodel_runtime.serve.codec import InferRequest, ModelRules, RequestError
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.dataplane import EXTENSIONS, SERVER_NAME, DataPlane
from mlmodel_runtime.serve.metrics import RuntimeMetrics
from mlmodel_runtime.serve.model import InputRejected
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb

log = logging.getLogger("mlmodel_runtime.serve")

SERVICE: Final = "inference.GRPCInferenceService"
# Messages from this size on are decoded in a thread (as REST bodies, exchange.py).
_DECODE_IN_THREAD_BYTES: Final = 256 * 1024
# The HTTP status each gRPC status of a ModelInfer call is counted as.
HTTP_STATUS: Final[dict[grpc.StatusCode, int]] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_STATUS_CODE: Final = {status: code for code, status in HTTP_STATUS.items()}
_RETRY_PUSHBACK: Final = (("grpc-retry-pushback-ms", "1000"),)

Handler = Callable[[bytes, aio.ServicerContext[Any, Any]], Awaitable[bytes]]


class _Failed(Exception):
    """A call that ends with this HTTP-equivalent status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GrpcService:
    """The gRPC server of one worker process."""

    def __init__(
        self,
        config: ServeConfig,
        plane: DataPlane,
        metrics: RuntimeMetrics,
        *,
        refusal_answer: Callable[[Refusal], tuple[int, str]],
    ) -> None:
        self.config = config
        self._plane = plane
        self._metrics = metrics
        # The exchange's wording and shed counting (exchange.py), one for both protocols.
        self._refusal_answer = refusal_answer
        self._enter = plane.admission.enter
        self._leave = plane.admission.leave
        self._deadlines = plane.deadlines
        self._server: aio.Server | None = None
        self._metadata: bytes | None = None
        self._server_info = pb.ServerMetadataResponse(
            name=SERVER_NAME, version=plane.server_version, extensions=list(EXTENSIONS)
        ).SerializeToString()
        self._trailing: tuple[tuple[str, str], ...] = ()
        if config.revision:
            self._trailing = (("x-mlmodel-revision", config.revision),)
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; the port bound. Raises RuntimeError when the port is taken."""
        config = self.config
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", config.max_body_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.max_concurrent_streams", config.max_concurrent_requests),
                # Workers share the port as they share the HTTP socket (server.py).
                ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
            ],
        )
        handlers: dict[str, Handler] = {
            "ServerLive": self._server_live,
            "ServerReady": self._server_ready,
            "ModelReady": self._model_ready,
            "ServerMetadata": self._server_metadata,
            "ModelMetadata": self._model_metadata,
            "ModelInfer": self._model_infer,
        }
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        name: grpc.unary_unary_rpc_method_handler(fn)
                        for name, fn in handlers.items()
                    },
                ),
            )
        )
        self.port = server.add_insecure_port(f"{_host(config.host)}:{config.grpc_port}")
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    # ---- health and metadata ----------------------------------------------

    async def _server_live(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        return pb.ServerLiveResponse(live=True).SerializeToString()

    async def _server_ready(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        return pb.ServerReadyResponse(ready=self._plane.ready).SerializeToString()

    async def _model_ready(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        message = _parse(pb.ModelReadyRequest, request)
        if message is None or not self._is_ours(message.name, message.version):
            await self._abort(context, 404, self._unknown_model(message))
        return pb.ModelReadyResponse(ready=self._plane.ready).SerializeToString()

    async def _server_metadata(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        return self._server_info

    async def _model_metadata(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        message = _parse(pb.ModelMetadataRequest, request)
        if message is None or not self._is_ours(message.name, message.version):
            await self._abort(context, 404, self._unknown_model(message))
        session = self._plane.session
        if self._plane.model is None or session is None:
            await self._abort(context, 503, self._plane.not_ready_message())
        if self._metadata is None:
            config = self.config
            self._metadata = pb.ModelMetadataResponse(
                name=config.name,
                versions=[config.version] if config.version else [],
                platform="onnxruntime_onnx",
                inputs=grpc_codec.tensor_metadata(session.inputs),
                outputs=grpc_codec.tensor_metadata(session.outputs),
            ).SerializeToString()
        return self._metadata

    # ---- inference ---------------------------------------------------------

    async def _model_infer(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        started = time.perf_counter()
        status = 500
        try:
            answer = await self._infer(request, context)
            status = 200
            return answer
        except _Failed as failed:
            status = failed.status
            await self._abort(context, failed.status, failed.message)
        except asyncio.CancelledError:
            status = 499  # the client cancelled, or its deadline passed
            raise
        except Exception:
            log.exception("unexpected error answering a gRPC ModelInfer call")
            await self._abort(context, 500, "internal error; see the server log")
        finally:
            self._metrics.observe_request(status, time.perf_counter() - started)

    async def _infer(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        """Admit, decode, run and encode one call. Its deadline is the data plane's
        (`--request-timeout-s`, as for REST); a shorter one of the client's is gRPC's own
        (the call is cancelled, counted 499)."""
        plane = self._plane
        model = plane.model
        if model is None:
            raise _Failed(503, plane.not_ready_message())
        weight = grpc_weight(len(request), binary_weight=model.binary_weight)
        refusal = Refusal.QUEUED if model.queue_full() else self._enter(weight)
        if refusal is not None:
            status, message = self._refusal_answer(refusal)
            raise _Failed(status, message)
        deadlines = self._deadlines
        task = deadlines.arm()
        try:
            if len(request) >= _DECODE_IN_THREAD_BYTES:
                decoded = await asyncio.to_thread(self._decode, request, model.rules)
            else:
                decoded = self._decode(request, model.rules)
            del request
            outputs = await model.submit(decoded.arrays, decoded.rows)
            names = model.rules.outputs
            if self._trailing:
                context.set_trailing_metadata(self._trailing)
            return grpc_codec.encode_model_infer(
                model_name=self.config.name,
                model_version=self.config.version,
                request_id=decoded.id,
                outputs=[(names[i], outputs[i], raw) for i, raw in decoded.outputs],
            )
        except asyncio.CancelledError:
            if not deadlines.was_expired(task):
                raise
            timeout = deadlines.timeout_s
            raise _Failed(504, f"inference did not finish within {timeout} s") from None
        except QueueFull:  # it filled while this call was decoded
            status, text = self._refusal_answer(Refusal.QUEUED)
            raise _Failed(status, text) from None
        except InputRejected as exc:
            raise _Failed(400, f"the model rejected the input: {exc}") from None
        finally:
            deadlines.disarm(task)
            self._leave(weight)

    def _decode(self, request: bytes, rules: ModelRules) -> InferRequest:
        try:
            message = grpc_codec.parse_request(request)
            if not self._is_ours(message.model_name, message.model_version):
                raise _Failed(404, self._unknown_model(message))
            return grpc_codec.decode_model_infer(message, rules)
        except RequestError as exc:
            raise _Failed(exc.status, exc.message) from None

    # ---- helpers -------------------------------------------------------------

    def _is_ours(self, name: str, version: str) -> bool:
        return name == self.config.name and version in ("", self.config.version)

    def _unknown_model(self, message: Any) -> str:
        config = self.config
        served = f"'{config.name}'" + (f" version '{config.version}'" if config.version else "")
        if message is None:
            return f"the request is not a valid message; this server serves model {served}"
        name = getattr(message, "model_name", None) or getattr(message, "name", "")
        version = getattr(message, "model_version", None) or getattr(message, "version", "")
        asked = f"'{name}'" + (f" version '{version}'" if version else "")
        return f"no model {asked} here; this server serves model {served}"

    async def _abort(
        self, context: aio.ServicerContext[Any, Any], status: int, message: str
    ) -> NoReturn:
        """End the call with the gRPC status for `status` (context.abort raises)."""
        if status == 503:
            context.set_trailing_metadata((*self._trailing, *_RETRY_PUSHBACK))
        elif self._trailing:
            context.set_trailing_metadata(self._trailing)
        await context.abort(_STATUS_CODE.get(status, grpc.StatusCode.INTERNAL), message)


def _parse(kind: Any, request: bytes) -> Any:
    try:
        return kind.FromString(request)
    except Exception:
        return None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
