"""Inference through the ASGI app in-process, without a server process.

The app is built around a real ONNX Runtime session over a tiny model made with
`onnx.helper` (label = argmax of the row, probabilities = softmax), or around a fake
session where a test needs to hold the model. The same requests over a real socket
are in `tests/runtime/test_serve_*.py`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import pytest

from mlmodel_runtime.modeldir import read_metadata
from mlmodel_runtime.serve.app import ServeApp
from tests.helpers.inprocess import (
    FakeSession,
    config,
    fake_metadata,
    onnx_session,
    running,
    tiny_classifier,
)

pytestmark = pytest.mark.unit

T = TypeVar("T")
INFER = "/v2/models/tiny/infer"
ROWS = [[0.1, 0.9, 0.3, 0.2], [5.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 7.0]]
LABELS = [1, 0, 3]


def _request(rows: list[list[float]]) -> dict[str, Any]:
    shape = [len(rows), len(rows[0])]
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": shape, "data": rows}]}


def _softmax(rows: list[list[float]]) -> np.ndarray[Any, Any]:
    x = np.array(rows, dtype=np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    result: np.ndarray[Any, Any] = e / e.sum(axis=1, keepdims=True)
    return result


def _tiny_app(tmp_path: Path, **settings: Any) -> ServeApp:
    model_dir = tiny_classifier(tmp_path / "tiny")
    return ServeApp(
        config(model_dir, **settings),
        metadata=read_metadata(model_dir),
        load_session=onnx_session(model_dir),
    )


def _serve(app: ServeApp, calls: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with running(app) as client:
            return await calls(client)

    return asyncio.run(main())


def test_v2_json_inference_answers_what_the_model_computes(tmp_path: Path) -> None:
    request = {**_request(ROWS), "id": "r-1"}
    response = _serve(_tiny_app(tmp_path), lambda client: client.post(INFER, json=request))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model_name"] == "tiny"
    assert body["model_version"] == "v1"
    assert body["id"] == "r-1"
    label, probabilities = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": LABELS}
    assert probabilities["shape"] == [3, 4]
    np.testing.assert_allclose(np.reshape(probabilities["data"], (3, 4)), _softmax(ROWS), rtol=1e-6)


def test_v2_binary_tensors_in_and_out(tmp_path: Path) -> None:
    x = np.array(ROWS, dtype="<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "X", "datatype": "FP32", "shape": [3, 4],
                 "parameters": {"binary_data_size": x.nbytes}}
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
        }
    )  # fmt: skip
    response = _serve(
        _tiny_app(tmp_path),
        lambda client: client.post(
            INFER,
            content=header + x.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(header))},
        ),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    [label] = orjson.loads(response.content[:length])["outputs"]
    assert label["parameters"] == {"binary_data_size": 3 * 8}
    assert np.frombuffer(response.content[length:], dtype="<i8").tolist() == LABELS


def test_v1_predict_answers_the_label_of_each_instance(tmp_path: Path) -> None:
    response = _serve(
        _tiny_app(tmp_path),
        lambda client: client.post("/v1/models/tiny:predict", json={"instances": ROWS}),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": LABELS}


def test_a_malformed_request_is_a_400_naming_the_problem(tmp_path: Path) -> None:
    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(INFER, content=b'{"inputs": ['),
            await client.post(INFER, json=_request([[1.0, 2.0, 3.0]])),
            await client.post("/v1/models/tiny:predict", json={"rows": ROWS}),
        ]

    not_json, wrong_shape, not_v1 = _serve(_tiny_app(tmp_path), calls)
    assert (not_json.status_code, wrong_shape.status_code, not_v1.status_code) == (400, 400, 400)
    assert "not valid JSON" in not_json.json()["error"]
    assert "[1, 3]" in wrong_shape.json()["error"]
    assert "[-1, 4]" in wrong_shape.json()["error"]
    assert "instances" in not_v1.json()["error"]


def test_inputs_the_model_itself_refuses_are_a_400_not_a_500(tmp_path: Path) -> None:
    # metadata.json lets any width through; ONNX Runtime then refuses 3 columns.
    model_dir = tiny_classifier(tmp_path / "loose", declared_shape=(-1, -1))
    app = ServeApp(
        config(model_dir), metadata=read_metadata(model_dir), load_session=onnx_session(model_dir)
    )
    response = _serve(app, lambda client: client.post(INFER, json=_request([[1.0, 2.0, 3.0]])))
    assert response.status_code == 400, response.text
    assert "the model rejected the input" in response.json()["error"]


def test_a_body_over_its_limit_is_a_413_and_the_next_request_is_served(tmp_path: Path) -> None:
    app = _tiny_app(tmp_path, max_json_body_bytes=1000)
    padded = orjson.dumps(_request(ROWS)) + b" " * 2000

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        too_large = await client.post(INFER, content=padded)
        return too_large, await client.post(INFER, json=_request(ROWS))

    too_large, after = _serve(app, calls)
    assert too_large.status_code == 413
    assert "--max-json-body-bytes" in too_large.json()["error"]
    assert too_large.headers["connection"] == "close"
    assert after.status_code == 200


def test_a_full_model_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    gate = threading.Event()
    session = FakeSession(gate)
    app = ServeApp(
        config(tmp_path, max_queued_requests=1, max_batch_size=1),
        metadata=fake_metadata(),
        load_session=lambda: session,
    )

    async def calls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        held = asyncio.create_task(client.post(INFER, json=_request(ROWS)))
        try:
            assert await asyncio.to_thread(session.running.wait, 10)
            refused = await client.post(INFER, json=_request(ROWS))
        finally:
            gate.set()
        return await held, refused

    held, refused = _serve(app, calls)
    assert held.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "--max-queued-requests" in refused.json()["error"]


def test_inference_past_the_request_deadline_is_a_504(tmp_path: Path) -> None:
    gate = threading.Event()
    session = FakeSession(gate)
    app = ServeApp(
        config(tmp_path, request_timeout_s=0.2),
        metadata=fake_metadata(),
        load_session=lambda: session,
    )

    async def calls(client: httpx.AsyncClient) -> httpx.Response:
        try:
            return await client.post(INFER, json=_request(ROWS))
        finally:
            gate.set()

    response = _serve(app, calls)
    assert response.status_code == 504
    assert "0.2 s" in response.json()["error"]


def test_every_inference_answer_is_counted_with_its_status(tmp_path: Path) -> None:
    app = _tiny_app(tmp_path, max_json_body_bytes=1000)

    async def calls(client: httpx.AsyncClient) -> str:
        await client.post(INFER, json=_request(ROWS))
        await client.post("/v1/models/tiny:predict", json={"instances": ROWS})
        await client.post(INFER, content=b"{")
        await client.post(INFER, content=b" " * 2000)
        return (await client.get("/metrics")).text

    metrics = _serve(app, calls)
    for code, count in (("200", 2), ("400", 1), ("413", 1)):
        assert f'mlmodel_requests_total{{code="{code}",model="tiny",version="v1"}} {count}.0' in (
            metrics
        )
    # Three rows per executed request, each predicted label counted by class.
    assert 'mlmodel_predictions_total{class="3",model="tiny",output="label",version="v1"} 2.0' in (
        metrics
    )


def test_answers_name_the_revision_that_computed_them(tmp_path: Path) -> None:
    """Behind a traffic split a client can count answers by revision (x-mlmodel-revision);
    a runtime started without --revision sends no such header."""

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(INFER, json=_request(ROWS)),
            await client.post("/v1/models/tiny:predict", json={"instances": ROWS}),
            await client.post(INFER, json={"inputs": []}),
        ]

    v2, v1, refused = _serve(_tiny_app(tmp_path, revision="3f2a9c1e0b"), calls)
    assert (v2.status_code, v1.status_code, refused.status_code) == (200, 200, 400)
    assert [r.headers.get("x-mlmodel-revision") for r in (v2, v1, refused)] == ["3f2a9c1e0b"] * 3
    anonymous = _serve(
        _tiny_app(tmp_path / "b"), lambda client: client.post(INFER, json=_request(ROWS))
    )
    assert anonymous.status_code == 200
    assert "x-mlmodel-revision" not in anonymous.headers


@pytest.mark.parametrize("revision", ["a\r\nx: y", "ä", "x" * 64, "a b"])
def test_a_revision_that_is_not_a_header_token_is_refused(tmp_path: Path, revision: str) -> None:
    with pytest.raises(ValueError, match="--revision"):
        config(tmp_path, revision=revision)
