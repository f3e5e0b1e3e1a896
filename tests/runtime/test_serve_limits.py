"""Limits that keep one server process bounded, seen from a client on a real socket.

Oversized bodies get a 413 the client can read; overload gets 503 with
Retry-After; a request's memory is checked before it is allocated; connections
that never finish their headers, or flood them, are cut off.
"""

from __future__ import annotations

import concurrent.futures
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.helpers.metrics import scrape, value
from tests.runtime.conftest import Server, ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime

ONE_ROW = orjson.dumps(
    {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
)
INFER = "/v2/models/iris/infer"


def _padded(size: int) -> bytes:
    """A valid one-row request of exactly `size` bytes (JSON allows trailing spaces)."""
    return ONE_ROW + b" " * (size - len(ONE_ROW))


def _open_request(server: Server, body: bytes, sent: int = 20) -> socket.socket:
    """A request in flight: headers and the first `sent` bytes of its body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[:sent])
    return sock


def _finish(sock: socket.socket, body: bytes, sent: int = 20) -> int:
    sock.sendall(body[sent:])
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before an answer"
        head += chunk
    sock.close()
    return int(head.split(b" ", 2)[1])


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (data is ignored)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def _peak_rss_kib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def _post_urllib(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    """POST as urllib does it: Connection: close, the whole body before reading the answer."""
    request = urllib.request.Request(url, data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def test_a_body_over_its_limit_gets_a_413_that_the_client_reads(
    fresh_server: ServerFactory, iris_model: TrainedModel, tmp_path: Path
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--max-body-bytes", "8000000"))
    # urllib sends all 20 MB (and Connection: close) before it reads the answer: the
    # server must take them rather than close on them, which the client sees as a reset.
    status, answer = _post_urllib(server.url + INFER, _padded(20_000_000))
    assert status == 413
    assert "exceeds the limit" in str(answer["error"])
    # curl reads while it sends and stops at the answer; with a large body it first
    # waits for 100 Continue, and then is answered without sending anything.
    big = tmp_path / "big.json"
    big.write_bytes(_padded(20_000_000))
    for expect in ("Expect: 100-continue", "Expect:"):
        curl = subprocess.run(
            [
                *("curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}", "-H", expect),
                *("--data-binary", f"@{big}", server.url + INFER),
            ],
            capture_output=True,
            timeout=30,
        )
        assert curl.returncode == 0, curl.stderr
        answer_text, code = curl.stdout.rsplit(b"\n", 1)
        assert code == b"413", answer_text
        assert b"exceeds the limit" in answer_text
    with server.client() as client:

        def chunks() -> Iterator[bytes]:
            yield ONE_ROW
            for _ in range(60):
                yield b" " * 50_000

        streamed = client.post(INFER, content=chunks())
        assert streamed.status_code == 413
        assert "--max-json-body-bytes" in streamed.json()["error"]
        assert client.post(INFER, content=ONE_ROW).status_code == 200


def shed(client: httpx.Client) -> dict[str, float]:
    """mlmodel_rejected_requests_total by reason."""
    samples = scrape(client)
    return {
        dict(labels)["reason"]: count
        for (name, labels), count in samples.items()
        if name == "mlmodel_rejected_requests_total"
    }


def test_too_many_requests_in_flight_get_503_with_retry_after(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--max-concurrent-requests", "2"))
    held = [_open_request(server, ONE_ROW) for _ in range(2)]
    time.sleep(0.2)
    with server.client() as client:
        refused = client.post(INFER, content=ONE_ROW)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "--max-concurrent-requests" in refused.json()["error"]
        # A small body is read and dropped, and the connection stays open for the next
        # request (a reconnect per shed request costs more than the shedding saves).
        assert "close" not in refused.headers.get("connection", "")
        assert [_finish(sock, ONE_ROW) for sock in held] == [200, 200]
        assert client.post(INFER, content=ONE_ROW).status_code == 200
        assert shed(client) == {"concurrency": 1.0, "memory": 0.0, "queue": 0.0, "loop": 0.0}


def test_requests_beyond_the_memory_budget_get_503_with_retry_after(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    # One 100 kB JSON body weighs 40 x 100 kB: the whole budget.
    server = fresh_server(
        iris_model.path,
        name="iris",
        extra=(
            *("--max-json-body-bytes", "100000", "--max-body-bytes", "2000000"),
            *("--max-inflight-bytes", "4000000"),
        ),
    )
    heavy = _padded(100_000)
    held = _open_request(server, heavy)
    time.sleep(0.2)
    with server.client() as client:
        refused = client.post(INFER, content=ONE_ROW)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "--max-inflight-bytes" in refused.json()["error"]
        assert _finish(held, heavy) == 200
        assert client.post(INFER, content=ONE_ROW).status_code == 200
        assert shed(client) == {"concurrency": 0.0, "memory": 1.0, "queue": 0.0, "loop": 0.0}


def test_a_full_batching_queue_answers_503_with_retry_after(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(
        iris_model.path,
        name="iris",
        extra=(
            *("--max-queued-requests", "1", "--max-batch-size", "1"),
            *("--max-request-elements", "16000000"),
        ),
    )
    rows = 2_000_000  # keeps the model busy for a good fraction of a second
    blob = np.zeros((rows, 4), dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "X", "datatype": "FP32", "shape": [rows, 4],
                 "parameters": {"binary_data_size": len(blob)}}
            ]
        }
    )  # fmt: skip

    def big() -> int:
        with server.client() as client:
            headers = {"Inference-Header-Content-Length": str(len(header))}
            return client.post(INFER, content=header + blob, headers=headers).status_code

    def scenario() -> tuple[int, list[httpx.Response]]:
        """The big request, and small ones while the model works on it."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool, server.client() as client:
            running = pool.submit(big)
            time.sleep(0.2)  # uploaded, decoded and queued by then
            refusals = []
            while not running.done():
                response = client.post(INFER, content=ONE_ROW)
                if response.status_code == 503:
                    refusals.append(response)
                else:
                    assert response.status_code == 200
                time.sleep(0.01)
            return running.result(), refusals

    # On a slow machine a small request may still hold the only place when the big
    # one comes; then the big one is refused and the scenario runs again.
    for _ in range(3):
        status, refusals = scenario()
        if status == 200:
            break
    assert status == 200
    assert refusals, "the queue never filled while the model was busy"
    assert refusals[0].headers["retry-after"] == "1"
    assert "--max-queued-requests" in refusals[0].json()["error"]
    with server.client() as client:
        assert client.post(INFER, content=ONE_ROW).status_code == 200
        counted = shed(client)
        # Every 503 was a shed request, counted under its bound (a refused big one too).
        assert counted["queue"] >= len(refusals)
        assert sum(counted.values()) == value(
            scrape(client), "mlmodel_requests_total", model="iris", version="v1", code="503"
        )


def test_bytes_shapes_are_checked_against_the_data_before_any_memory_is_taken(
    fresh_server: ServerFactory, mixed_model: TrainedModel
) -> None:
    server = fresh_server(mixed_model.path, name="mixed")

    def send(rows: int, blob: bytes) -> httpx.Response:
        header = orjson.dumps(
            {
                "inputs": [
                    {"name": "color", "datatype": "BYTES", "shape": [rows, 1],
                     "parameters": {"binary_data_size": len(blob)}},
                    {"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [0.5]},
                    {"name": "b", "datatype": "FP32", "shape": [1, 1], "data": [0.5]},
                ]
            }
        )  # fmt: skip
        with server.client() as client:
            headers = {"Inference-Header-Content-Length": str(len(header))}
            return client.post("/v2/models/mixed/infer", content=header + blob, headers=headers)

    one = struct.pack("<I", 3) + b"red"
    before = _peak_rss_kib(server)
    # 4 million elements declared, 7 bytes sent: an element takes at least 4 bytes.
    short = send(4_000_000, one)
    assert short.status_code == 400
    assert "at least 4 bytes" in short.json()["error"]
    # Far more elements than a request may carry: refused on its shape alone.
    huge = send(50_000_000, one)
    assert huge.status_code == 413
    assert "--max-request-elements" in huge.json()["error"]
    assert _peak_rss_kib(server) - before < 8 * 1024
    assert send(1, one).status_code == 200


def test_connections_that_never_finish_their_headers_are_closed(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--header-timeout-s", "1"))
    silent = socket.create_connection(("127.0.0.1", server.port))
    trickling = socket.create_connection(("127.0.0.1", server.port))
    started = time.monotonic()
    head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
    closed = False
    for byte in head + b"a" * 200:
        try:
            trickling.send(bytes([byte]))
        except OSError:
            closed = True
            break
        if _closed_by_server(trickling, 0.1):
            closed = True
            break
        if time.monotonic() - started > 6:
            break
    assert closed, "a client sending a header byte every 0.1 s kept its connection"
    assert time.monotonic() - started < 4
    assert _closed_by_server(silent, 1.0)
    with server.client() as client:
        assert client.post(INFER, content=ONE_ROW).status_code == 200


def test_endless_headers_get_431_and_a_closed_connection(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--max-header-bytes", "16384"))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    answer = b""
    try:
        sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\n".encode())
        for _ in range(100):
            sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            time.sleep(0.005)
    except OSError:
        pass
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"--max-header-bytes" in answer
    with server.client() as client:
        assert client.post(INFER, content=ONE_ROW).status_code == 200


def test_connections_beyond_the_cap_are_closed_at_once(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--max-connections", "4"))
    kept = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", server.port))
    assert _closed_by_server(extra, 2.0)
    for sock in kept:
        assert not _closed_by_server(sock, 0.05)
        sock.close()
    time.sleep(0.2)
    with server.client() as client:
        assert client.post(INFER, content=ONE_ROW).status_code == 200
