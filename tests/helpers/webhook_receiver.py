"""A webhook receiver for tests: an HTTP server on 127.0.0.1 that records every request.

It runs in a thread of the test's own process, so a test can start it, hand its URLs to
an MLModel and read what arrived. In the end-to-end tests the operator runs in the
network sandbox, whose 127.0.0.1 is the sandbox's loopback: the receiver must therefore
be started by the test process inside the same sandbox, which it is.

    with WebhookReceiver() as receiver:
        receiver.respond("/gate", 503)        # every path answers 200 unless told
        receiver.hang("/slow", 5)             # wait 5 s before answering
        ... receiver.url("/gate") ...
        assert [c.body["type"] for c in receiver.calls("/gate")] == ["pre-rollout"]
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

ENDLESS_CHUNK = b"x" * 65536


@dataclass(frozen=True)
class Received:
    """One request, as it arrived: `body` is its JSON (None when it was not JSON)."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float  # time.time() when the request's body was read


@dataclass
class _Behaviour:
    status: int = 200
    body: bytes = b""
    location: str = ""
    endless: bool = False
    hang_s: float = 0.0


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(init=False)
    behaviours: dict[str, _Behaviour] = field(default_factory=dict)
    queued: dict[str, list[_Behaviour]] = field(default_factory=dict)  # before `behaviours`
    closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging answer must not hold up the test's exit
    block_on_close = False

    def __init__(self, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `calls`, not stderr."""

    def _handle(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with state.lock:
            state.received.append(
                Received(
                    method=self.command,
                    path=path,
                    body=body,
                    headers=dict(self.headers.items()),
                    at=time.time(),
                )
            )
            state.arrived.notify_all()
            queued = state.queued.get(path)
            behaviour = queued.pop(0) if queued else state.behaviours.get(path, _Behaviour())
        if behaviour.hang_s and state.closing.wait(behaviour.hang_s):
            return  # closing: leave without an answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(behaviour)  # the client may stop reading whenever it likes

    def _answer(self, behaviour: _Behaviour) -> None:
        self.send_response(behaviour.status)
        if behaviour.location:
            self.send_header("Location", behaviour.location)
        if behaviour.endless:
            # No Content-Length: the body runs until the connection closes.
            self.send_header("Connection", "close")
            self.end_headers()
            # Until the client hangs up (or the receiver closes): a client that reads
            # everything never gets to the end.
            while not self.server.state.closing.is_set():
                self.wfile.write(ENDLESS_CHUNK)
            return
        self.send_header("Content-Length", str(len(behaviour.body)))
        self.end_headers()
        self.wfile.write(behaviour.body)


class WebhookReceiver:
    """An HTTP server on a free port of 127.0.0.1, serving in a background thread."""

    def __init__(self) -> None:
        self._state = _State()
        self._server = _Server(self._state)
        self._thread = threading.Thread(target=self._serve, name="webhook-receiver", daemon=True)

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)  # so that closing is quick

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._state.closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(
        self,
        path: str,
        status: int,
        *,
        body: bytes = b"",
        location: str = "",
        endless: bool = False,
        times: int | None = None,
    ) -> None:
        """Answer requests to `path` with `status` (and `body`, or a `Location` header,
        or a body that never ends): from now on, or only the next `times` requests,
        after which `path` answers as it did before."""
        with self._state.lock:
            hang_s = self._state.behaviours.get(path, _Behaviour()).hang_s
            behaviour = _Behaviour(status, body, location, endless, hang_s)
            if times is None:
                self._state.behaviours[path] = behaviour
            else:
                self._state.queued.setdefault(path, []).extend([behaviour] * times)

    def hang(self, path: str, seconds: float) -> None:
        """Wait `seconds` before answering requests to `path` (0: answer at once)."""
        with self._state.lock:
            behaviour = self._state.behaviours.get(path, _Behaviour())
            self._state.behaviours[path] = replace(behaviour, hang_s=seconds)

    def calls(self, path: str | None = None) -> list[Received]:
        """The requests received so far (to `path`, or all), in order of arrival."""
        with self._state.lock:
            return [r for r in self._state.received if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, *, timeout: float = 10.0
    ) -> list[Received]:
        """The requests (to `path`, or all) once there are at least `count` of them;
        AssertionError naming what did arrive after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while True:
                calls = [r for r in self._state.received if path is None or r.path == path]
                left = deadline - time.monotonic()
                if len(calls) >= count or left <= 0:
                    break
                self._state.arrived.wait(left)
        if len(calls) < count:
            arrived = [(r.path, r.at) for r in calls]
            raise AssertionError(f"{count} calls to {path or 'any path'} wanted, got {arrived}")
        return calls
