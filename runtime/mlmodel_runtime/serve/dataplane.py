"""The data plane of one worker: readiness, metadata, admission, deadlines, inference.

Knows nothing of HTTP (as MLServer's `handlers/dataplane.py` beside its REST
endpoints): the app (`app.py`) asks it whether the server is ready and for the
metadata answers, and the exchange of each inference request (`exchange.py`) is
admitted, timed and run through it. It owns the model's lifecycle:

- `load` builds the session with the injected factory (`model.py`) in a thread, so
  that liveness answers meanwhile, warms it up, and starts the batching thread;
- `begin_drain` (SIGTERM) turns readiness off while inference goes on;
- `stop` (the end of the ASGI lifespan) ends inference and lets the batching
  thread finish what it has.

One readiness rule: ready means a model is served and the server is not draining.
Inference and model metadata need only a served model, so they go on while
draining, until `stop`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Final

import orjson

from mlmodel_runtime.serve.admission import Admission, binary_weight
from mlmodel_runtime.serve.batching import Arrays, Batcher
from mlmodel_runtime.serve.codec import ModelRules
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.deadlines import Deadlines
from mlmodel_runtime.serve.metrics import RuntimeMetrics
from mlmodel_runtime.serve.model import Session, SessionFactory

log = logging.getLogger("mlmodel_runtime.serve")

SERVER_NAME: Final = "mlmodel-runtime"
EXTENSIONS: Final = ("binary_tensor_data", "kserve_v1")


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded and warmed-up model, as every inference request uses it."""

    rules: ModelRules
    # Weight of one byte of binary tensor data for this model's inputs (admission.py).
    binary_weight: int
    # Queue a request for the model (`Batcher.submit`): the future of its outputs, or
    # `QueueFull` at once when --max-queued-requests wait already.
    submit: Callable[[Arrays, int], asyncio.Future[Arrays]]
    # Whether that queue is full now: a request is then refused before its body is
    # decoded, which costs less than refusing it after (`exchange.py`).
    queue_full: Callable[[], bool]


def _package_version() -> str:
    try:
        return importlib_metadata.version("mlmodel-operator")
    except importlib_metadata.PackageNotFoundError:
        return "0"


class DataPlane:
    """One model served by one worker process."""

    def __init__(
        self, config: ServeConfig, *, load_session: SessionFactory, metrics: RuntimeMetrics
    ) -> None:
        self.config = config
        self._load_session = load_session
        self._metrics = metrics
        self.admission = Admission(
            max_requests=config.max_concurrent_requests, max_bytes=config.max_inflight_bytes
        )
        self.deadlines = Deadlines(config.request_timeout_s)
        # Set once the model is loaded and warmed up, cleared by `stop`.
        self.model: ServedModel | None = None
        self.session: Session | None = None
        self.server_version: Final = _package_version()
        self.server_metadata: Final = orjson.dumps(
            {"name": SERVER_NAME, "version": self.server_version, "extensions": list(EXTENSIONS)}
        )
        self.model_metadata: bytes | None = None  # set and cleared with `model`
        self._draining = False
        self._batcher: Batcher | None = None

    @property
    def ready(self) -> bool:
        """The readiness rule: a model is served, and the server is not draining."""
        return self.model is not None and not self._draining

    def not_ready_message(self) -> str:
        if self._draining:
            return "the server is shutting down"
        return f"model '{self.config.name}' is not ready yet (loading and warming up)"

    # ---- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """On the event loop, before the first request."""
        self.deadlines.start()

    async def load(self) -> float:
        """Load, warm up and serve the model; the seconds that took. Raises what the
        session factory raises (`ModelLoadError` for a model directory that cannot be
        served)."""
        session, seconds = await asyncio.to_thread(self._load)
        config = self.config
        self._metrics.use_outputs(session.rules.outputs)
        self._metrics.use_inputs([spec.name for spec in session.inputs])
        if self._metrics.input_histograms is not None:
            log.info(self._metrics.input_histograms.describe())
        batcher = Batcher(
            run=session.run,
            max_batch_size=config.max_batch_size,
            max_batch_delay_s=config.max_batch_delay_ms / 1000.0,
            batchable=session.batchable,
            max_queued=config.max_queued_requests,
            on_batch=self._metrics.observe_batch,
            check_shapes=any(-1 in spec.shape[1:] for spec in session.inputs),
        )
        batcher.start(asyncio.get_running_loop())
        self.model_metadata = orjson.dumps(
            {
                "name": config.name,
                "versions": [config.version] if config.version else [],
                "platform": "onnxruntime_onnx",
                "inputs": [spec.to_json() for spec in session.inputs],
                "outputs": [spec.to_json() for spec in session.outputs],
            }
        )
        self.session, self._batcher = session, batcher
        self.model = ServedModel(
            rules=session.rules,
            binary_weight=binary_weight(session.inputs),
            submit=batcher.submit,
            queue_full=lambda: batcher.full,
        )
        return seconds

    def _load(self) -> tuple[Session, float]:
        started = time.monotonic()
        session = self._load_session()
        try:
            session.warm_up(self.config.max_batch_size)
        except Exception as exc:
            # Synthetic zeros may be outside what a model accepts; it still loaded.
            log.warning("warm-up with synthetic inputs failed: %s", exc)
        # What imports and loading made lives as long as the process: out of the
        # collector's sight, so that a full collection walks only what requests made
        # (with a thousand connections open one took 25-100 ms here, a stall every
        # request waiting meanwhile pays).
        gc.collect()
        gc.freeze()
        return session, time.monotonic() - started

    def begin_drain(self) -> None:
        self._draining = True

    async def stop(self) -> None:
        """No more inference; the batching thread finishes what it has (up to
        --drain-timeout-s)."""
        self._draining = True
        self.model = self.model_metadata = None
        self.deadlines.stop()
        if self._batcher is not None:
            await asyncio.to_thread(self._batcher.stop, self.config.drain_timeout_s)
