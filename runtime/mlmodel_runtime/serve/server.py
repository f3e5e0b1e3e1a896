"""Process management of `mlmodel-runtime serve`: uvicorn, signals, drain, workers.

`serve(config)` is called by `command.py`. With one worker (the default, and the
fastest on small machines: the event loop takes one core, the model thread the
other) the app runs in this process. With `--workers N` this process binds the
socket, points PROMETHEUS_MULTIPROC_DIR at a fresh temporary directory (so that
every worker's metrics are aggregated on each scrape), starts N spawned workers
sharing the socket, forwards SIGTERM to them, waits for them to drain, and
removes the directory.

SIGTERM (and SIGINT) in a worker: readiness turns 503 at once, but the worker
keeps accepting connections and answering for `--shutdown-delay-s` (endpoints,
kube-proxy and gateways take a few seconds to stop sending traffic to a pod that
is terminating; a closed port meanwhile means refused connections). Then the
listening socket is closed, idle keep-alive connections are closed, in-flight
requests finish (up to `--drain-timeout-s`), and the process exits 0. A second
signal during the delay cuts it short.

The uvicorn protocol is `protocol.py`'s, bounding connections and request
headers; the server sweeps connections for slow request heads once a second
from its main loop.

This is where the app is put together for a process: `metadata.json` is read,
and the app gets a factory of the ONNX Runtime session (`session.py`) over the
model directory; tests build the app around sessions of their own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from mlmodel_runtime.modeldir import read_metadata
from mlmodel_runtime.serve.config import ServeConfig
from mlmodel_runtime.serve.logs import configure_logging
from mlmodel_runtime.serve.metrics import MULTIPROC_ENV
from mlmodel_runtime.serve.overload import LoopGuard
from mlmodel_runtime.serve.protocol import SlowHeads, protocol_class

if TYPE_CHECKING:
    from mlmodel_runtime.serve.app import ServeApp

log = logging.getLogger("mlmodel_runtime.serve")


class _DrainingServer(uvicorn.Server):
    """uvicorn's server: on SIGTERM the app turns unready, serving goes on for the
    shutdown delay, then uvicorn drains and the process exits 0."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        begin_drain: Callable[[], None],
        shutdown_delay_s: float,
        slow_heads: SlowHeads,
    ) -> None:
        super().__init__(config)
        self._begin_drain = begin_drain
        self._delay = shutdown_delay_s
        self._slow_heads = slow_heads
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only flags and a clock reading; on_tick acts on them.
        self._begin_drain()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        elif self._stop_at is None and self._delay > 0:
            self._stop_at = time.monotonic() + self._delay
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s from uvicorn's main loop; a True answer starts the drain."""
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        if counter % 10 == 0:
            self._slow_heads.sweep(self.server_state.connections, time.monotonic())
        return await super().on_tick(counter)


def _uvicorn_config(
    config: ServeConfig, app: object, guard: LoopGuard | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=config.host,
        port=config.port,
        loop="uvloop",
        http=protocol_class(
            max_connections=config.max_connections,
            max_header_bytes=config.max_header_bytes,
            guard=guard,
        ),
        # No WebSocket endpoint exists; an upgraded connection would escape the guards.
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        date_header=False,
        # uvicorn passes it to asyncio.wait_for, which takes fractions of a second.
        timeout_graceful_shutdown=config.drain_timeout_s,  # type: ignore[arg-type]
        timeout_keep_alive=config.idle_timeout_s,  # type: ignore[arg-type]
        backlog=2048,
    )


def build_app(
    config: ServeConfig, *, on_fatal: Callable[[], None] | None = None, announce: bool = True
) -> ServeApp:
    """The app of one worker process, serving the model directory with ONNX Runtime."""
    # Imported here: a supervisor of several workers needs neither ONNX Runtime nor the app.
    from mlmodel_runtime.serve.app import ServeApp
    from mlmodel_runtime.serve.session import ModelSession, SessionOptions

    options = SessionOptions(
        intra_op_threads=config.intra_op_threads,
        allow_non_finite=config.allow_non_finite,
        max_request_elements=config.max_request_elements,
    )
    return ServeApp(
        config,
        metadata=read_metadata(config.model_dir),
        load_session=partial(ModelSession, config.model_dir, options),
        on_fatal=on_fatal,
        announce=announce,
    )


def run_worker(config: ServeConfig, sock: socket.socket | None = None, index: int = 0) -> int:
    """Serve in this process until SIGTERM; the exit code."""
    configure_logging(config.log_format, config.log_level)
    exit_code = 0
    server: _DrainingServer | None = None

    def fatal() -> None:
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True

    try:
        app = build_app(config, on_fatal=fatal, announce=index == 0)
    except (OSError, ValueError, KeyError) as exc:
        log.error("cannot serve %s: %s", config.model_dir, exc)
        return 1
    server = _DrainingServer(
        _uvicorn_config(config, app, app.loop_guard),
        begin_drain=app.begin_drain,
        shutdown_delay_s=config.shutdown_delay_s,
        slow_heads=SlowHeads(
            header_timeout_s=config.header_timeout_s, idle_timeout_s=config.idle_timeout_s
        ),
    )
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started and exit_code == 0:
        exit_code = 1  # could not bind, or start-up failed
    return exit_code


def _worker_main(config_json: str, sock: socket.socket, index: int) -> None:
    raise SystemExit(run_worker(ServeConfig.from_json(config_json), sock, index))


def serve(config: ServeConfig) -> int:
    if config.workers == 1:
        return run_worker(config)
    return _supervise(config)


def _supervise(config: ServeConfig) -> int:
    configure_logging(config.log_format, config.log_level)
    try:
        read_metadata(config.model_dir)
    except (OSError, ValueError, KeyError) as exc:
        log.error("cannot serve %s: %s", config.model_dir, exc)
        return 1
    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = tempfile.mkdtemp(prefix="mlmodel-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    sock = _uvicorn_config(config, None).bind_socket()
    multiprocessing.allow_connection_pickling()
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers = [
        spawn.Process(target=_worker_main, args=(config.to_json(), sock, i), name=f"worker-{i}")
        for i in range(config.workers)
    ]
    exit_code = 0
    try:
        for worker in workers:
            worker.start()
        # Each worker inherited the socket. Without this copy the port closes when the
        # last worker stops listening; with it, the kernel would go on queueing
        # connections that nobody accepts until this process exits.
        sock.close()
        while not stop.wait(0.2):
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                log.error(
                    "worker %s exited with code %s; stopping the others",
                    dead[0].name,
                    dead[0].exitcode,
                )
                exit_code = 1
                break
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(config.shutdown_delay_s + config.drain_timeout_s + 10)
            if worker.is_alive():
                worker.kill()
                worker.join()
            if worker.exitcode not in (0, None) and not stop.is_set():
                exit_code = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return exit_code
