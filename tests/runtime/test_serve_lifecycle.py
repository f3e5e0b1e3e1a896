"""Start-up, readiness, limits, timeouts and graceful shutdown of the server process."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.runtime.conftest import ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime

BODY = orjson.dumps(
    {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
)


def _partial_request(port: int, path: str = "/v2/models/iris/infer") -> socket.socket:
    """Open a connection and send the headers and half of the body of an infer request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    sock.sendall(head + BODY[:20])
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(h.split(":")[1]) for h in lines[1:] if h.lower().startswith("content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def test_graceful_shutdown_finishes_in_flight_requests(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--drain-timeout-s", "20"))
    with server.client() as client:
        expected = client.post("/v2/models/iris/infer", content=BODY).json()["outputs"]
    in_flight = [_partial_request(server.port) for _ in range(3)]
    time.sleep(0.2)
    server.process.send_signal(signal.SIGTERM)
    # The listener closes: new connections are refused while the old ones drain.
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            refused = True
    assert refused, "the server still accepts connections after SIGTERM"
    assert server.process.poll() is None, "the server exited with requests in flight"
    for sock in in_flight:
        sock.sendall(BODY[20:])
        status, body = _read_response(sock)
        sock.close()
        assert status == 200
        assert orjson.loads(body)["outputs"] == expected
    assert server.process.wait(15) == 0
    assert "Traceback" not in server.log()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_after_sigterm_the_server_keeps_answering_unready_for_the_delay_then_drains_and_exits(
    fresh_server: ServerFactory, iris_model: TrainedModel, workers: int
) -> None:
    delay, drain = 2.0, 5.0
    server = fresh_server(
        iris_model.path,
        name="iris",
        extra=(
            "--workers",
            str(workers),
            "--drain-timeout-s",
            str(drain),
            *("--shutdown-delay-s", str(delay)),
        ),
    )
    in_flight = _partial_request(server.port)
    time.sleep(0.2)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    answered = 0
    # Endpoints and gateways still send traffic for a while: it must be served, on
    # new connections too, while readiness already says to stop.
    while time.monotonic() - signalled < delay - 0.5:
        with server.client() as client:
            assert client.get("/v2/health/ready").status_code == 503
            response = client.post("/v2/models/iris/infer", content=BODY)
            assert response.status_code == 200
            assert response.headers["connection"] == "close"
            answered += 1
        time.sleep(0.1)
    assert answered >= 3
    while not _refused(server.port):
        assert time.monotonic() - signalled < delay + 3, "still listening long after the delay"
        time.sleep(0.05)
    assert time.monotonic() - signalled >= delay - 0.2
    assert server.process.poll() is None, "exited with a request in flight"
    in_flight.sendall(BODY[20:])
    status, _ = _read_response(in_flight)
    in_flight.close()
    assert status == 200
    assert server.process.wait(drain) == 0
    assert time.monotonic() - signalled < delay + drain
    assert "Traceback" not in server.log()


def test_slow_body_times_out_and_big_body_is_refused(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(
        iris_model.path,
        name="iris",
        extra=("--request-timeout-s", "0.5", "--max-body-bytes", "2000"),
    )
    sock = _partial_request(server.port)
    started = time.monotonic()
    status, body = _read_response(sock)
    sock.close()
    assert status == 408
    assert "0.5 s" in orjson.loads(body)["error"]
    assert time.monotonic() - started < 5
    with server.client() as client:
        big = client.post("/v2/models/iris/infer", content=b" " * 3000 + BODY)
        assert big.status_code == 413
        assert "2000" in big.json()["error"]

        def chunks() -> object:
            for _ in range(30):
                yield b" " * 100
            yield BODY

        streamed = client.post("/v2/models/iris/infer", content=chunks())  # type: ignore[arg-type]
        assert streamed.status_code == 413
        assert client.post("/v2/models/iris/infer", content=BODY).status_code == 200


def test_one_json_start_up_line_and_no_request_logs(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(
        iris_model.path,
        name="iris",
        version="v5",
        extra=("--log-format", "json", "--max-batch-size", "16", "--revision", "abc123"),
    )
    with server.client() as client:
        for _ in range(20):
            assert client.post("/v2/models/iris/infer", content=BODY).status_code == 200
        assert client.post("/v2/models/iris/infer", content=b"{").status_code == 400
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert len(records) == 1, lines
    record = records[0]
    assert record["message"] == "ready to serve"
    assert record["level"] == "info"
    assert record["model"] == "iris"
    assert record["version"] == "v5"
    assert record["revision"] == "abc123"
    assert record["inputs"] == ["X:FP32[-1, 4]"]
    assert record["outputs"] == ["label:INT64[-1]", "probabilities:FP32[-1, 3]"]
    assert record["max_batch_size"] == 16
    assert record["batching"] is True


def test_missing_model_dir_exits_with_reason(fresh_server: ServerFactory, tmp_path: Path) -> None:
    server = fresh_server(tmp_path / "nowhere", name="iris", wait=False)
    assert server.process.wait(30) != 0
    assert "nowhere" in server.log()


def test_unloadable_model_exits_with_reason(
    fresh_server: ServerFactory, iris_model: TrainedModel, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_bytes((iris_model.path / "metadata.json").read_bytes())
    (broken / "model.onnx").write_bytes(b"this is not an onnx model")
    server = fresh_server(broken, name="iris", wait=False)
    with httpx.Client(trust_env=False, timeout=1) as client:
        # Liveness may answer while the model loads; readiness never turns 200.
        for _ in range(100):
            if server.process.poll() is not None:
                break
            try:
                ready = client.get(f"{server.url}/v2/health/ready")
                assert ready.status_code == 503
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    assert server.process.wait(30) == 1
    assert "cannot load" in server.log()
