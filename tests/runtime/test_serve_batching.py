"""Adaptive batching: concurrent clients get the same answers with batching on and off."""

from __future__ import annotations

import concurrent.futures
import random
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers.metrics import scrape, value
from tests.runtime.conftest import Server, Servers, TrainedModel

pytestmark = pytest.mark.runtime

CONCURRENCY = 48
REQUESTS = 480


def _requests(x: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    bodies = []
    for _ in range(REQUESTS):
        start = rng.randrange(len(x) - 3)
        rows = x[start : start + rng.randint(1, 3)].tolist()
        bodies.append(
            {"inputs": [{"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]}
        )
    return bodies


def _send_all(server: Server, bodies: list[dict[str, Any]]) -> list[Any]:
    # One shared client in many threads: httpx's async client is far slower here.
    client = server.client(limits=httpx.Limits(max_connections=CONCURRENCY))

    def one(body: dict[str, Any]) -> Any:
        response = client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        return response.json()["outputs"]

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            return list(pool.map(one, bodies))
    finally:
        client.close()


def _batches(server: Server) -> tuple[float, float]:
    """(model executions so far, executions of more than 3 rows so far)."""
    with server.client() as client:
        samples = scrape(client)
    common = {"model": "iris", "version": "v1"}
    total = value(samples, "mlmodel_batch_size_count", **common)
    small = value(samples, "mlmodel_batch_size_bucket", le="4.0", **common)
    return total, total - small


def test_batching_on_and_off_give_identical_answers(
    servers: Servers, iris_model: TrainedModel
) -> None:
    bodies = _requests(iris_model.x)
    before_on = _batches(servers.iris)
    before_off = _batches(servers.iris_unbatched)
    batched = _send_all(servers.iris, bodies)
    unbatched = _send_all(servers.iris_unbatched, bodies)
    after_on = _batches(servers.iris)
    after_off = _batches(servers.iris_unbatched)

    assert batched == unbatched
    for body, outputs in zip(bodies, batched, strict=True):
        x = np.array(body["inputs"][0]["data"], dtype=np.float32)
        assert outputs[0]["data"] == iris_model.estimator.predict(x).tolist()
        assert outputs[0]["shape"] == [len(x)]
        assert outputs[1]["shape"] == [len(x), 3]

    runs_on = after_on[0] - before_on[0]
    merged_on = after_on[1] - before_on[1]
    runs_off = after_off[0] - before_off[0]
    merged_off = after_off[1] - before_off[1]
    # Without batching every request is one execution of at most 3 rows.
    assert runs_off == REQUESTS
    assert merged_off == 0
    # With batching, concurrent requests were merged into fewer, larger executions.
    assert runs_on < REQUESTS
    assert merged_on > 0
