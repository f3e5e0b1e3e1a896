"""Limits that keep one server process bounded, seen from a client on a real socket.

A request's memory is checked before it is allocated.
"""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import orjson
import pytest

from tests.runtime.conftest import Server, ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime


def _peak_rss_kib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


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
