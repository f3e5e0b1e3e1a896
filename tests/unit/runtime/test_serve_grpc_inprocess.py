"""The gRPC service in-process, around a held fake model: deadlines and shedding give
the gRPC status of their REST status, with the same accounting (the conformance tests
against server processes are in tests/runtime/test_serve_grpc.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from mlmodel_runtime.serve.app import ServeApp
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb
from tests.helpers.inprocess import FakeSession, config, fake_metadata, running

pytestmark = pytest.mark.unit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request() -> bytes:
    request = pb.ModelInferRequest(model_name="tiny")
    request.inputs.add(name="X", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend(
        [1, 2, 3, 4]
    )
    return request.SerializeToString()


def _app(tmp_path: Path, session: FakeSession, **settings: Any) -> tuple[ServeApp, str]:
    port = _free_port()
    app = ServeApp(
        config(tmp_path, host="127.0.0.1", grpc_port=port, **settings),
        metadata=fake_metadata(),
        load_session=lambda: session,
    )
    return app, f"127.0.0.1:{port}"


async def _call(address: str) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    async with aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as chan:
        method: aio.UnaryUnaryMultiCallable[bytes, bytes] = chan.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer"
        )
        try:
            await method(_request())
        except aio.AioRpcError as error:
            trailing = {k: str(v) for k, v in (error.trailing_metadata() or ())}
            return error.code(), str(error.details()), trailing
        return grpc.StatusCode.OK, "", {}


def _metric(app: ServeApp, prefix: str) -> float:
    for line in app.metrics.exposition().decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_call_past_the_request_deadline_ends_deadline_exceeded(tmp_path: Path) -> None:
    gate = threading.Event()
    app, address = _app(tmp_path, FakeSession(gate), request_timeout_s=0.2)

    async def main() -> tuple[grpc.StatusCode, str, dict[str, str]]:
        async with running(app):
            try:
                return await _call(address)
            finally:
                gate.set()

    code, details, _ = asyncio.run(main())
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert details == "inference did not finish within 0.2 s"
    assert _metric(app, 'mlmodel_requests_total{code="504"') == 1


def test_a_call_beyond_the_queue_is_shed_unavailable_with_a_pushback(tmp_path: Path) -> None:
    gate = threading.Event()
    session = FakeSession(gate)
    app, address = _app(tmp_path, session, max_queued_requests=1, max_batch_size=1)

    async def main() -> tuple[tuple[grpc.StatusCode, str, dict[str, str]], ...]:
        async with running(app):
            held = asyncio.create_task(_call(address))
            await asyncio.to_thread(session.running.wait, 10)
            try:
                refused = await _call(address)
            finally:
                gate.set()
            return await held, refused

    held, refused = asyncio.run(main())
    assert held[0] is grpc.StatusCode.OK
    code, details, trailing = refused
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "--max-queued-requests" in details
    assert trailing["grpc-retry-pushback-ms"] == "1000"
    assert _metric(app, 'mlmodel_requests_total{code="503"') == 1
    assert _metric(app, 'mlmodel_rejected_requests_total{model="tiny",reason="queue"') == 1
