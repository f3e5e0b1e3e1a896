"""Faults injected between a client and a real server, for the fault tests (issue 21).

`FaultyProxy` listens on a port of 127.0.0.1 and forwards each connection to the real
server behind it, until a test switches it to a fault: `hang` (connections are accepted
and read, and never answered: a server stuck behind a load balancer, a half-dead
node) or `garbage` (every request is answered 200 with a body that is not what the
client expects: a misconfigured proxy, a captive portal). The server behind it stays
real; only the path to it fails, the way it fails in clusters.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Literal

Mode = Literal["pass", "hang", "garbage"]
_GARBAGE_BODY = b"<html>this is not an answer</html>"
GARBAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    + f"Content-Length: {len(_GARBAGE_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _GARBAGE_BODY
)


class FaultyProxy:
    """`FaultyProxy(host, port).start()`; `.mode = "hang"` ... `.mode = "pass"`; `.close()`.
    A mode applies to connections accepted from then on; switching to a fault also cuts
    the connections open at that moment, so that a client's kept-alive connection meets
    the fault at its next request."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._mode: Mode = "pass"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self.accepted: dict[str, int] = {"pass": 0, "hang": 0, "garbage": 0}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode
            cut, self._open = self._open, set()
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.close()

    def start(self) -> FaultyProxy:
        threading.Thread(target=self._accept, daemon=True, name="faulty-proxy").start()
        return self

    def close(self) -> None:
        self._closed.set()
        self.mode = "pass"  # cuts every open connection
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self._mode
                self._open.add(client)
                self.accepted[mode] += 1
            handler = {"pass": self._forward, "hang": self._hang, "garbage": self._garble}[mode]
            threading.Thread(target=handler, args=(client,), daemon=True).start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            self._forget(client)
            return
        with self._lock:
            self._open.add(upstream)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                if self._closed.is_set():
                    return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            self._forget(client, upstream)

    def _hang(self, client: socket.socket) -> None:
        """Read whatever comes, answer nothing, until the client gives up or the mode
        changes (which closes the socket)."""
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass
        finally:
            self._forget(client)

    def _garble(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = client.recv(65536)
                if not chunk:
                    return
                received += chunk
            client.sendall(GARBAGE)
        except OSError:
            pass
        finally:
            self._forget(client)
