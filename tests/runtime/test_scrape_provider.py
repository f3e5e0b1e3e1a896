"""The operator's `scrape` provider against real runtime processes: it reads their
/metrics as it reads pods' (IP and `http` port from the pod), and its readings make a
real analysis interval."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from mlmodel_operator.analysis.loop import Reading, step
from mlmodel_operator.analysis.spec import parse_analysis
from mlmodel_operator.providers import scrape
from tests.runtime.conftest import Server, ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.7, 1.5], [6.3, 3.3, 6.0, 2.5]]


def pod(server: Server) -> dict[str, Any]:
    """A Running, Ready pod as the API reports it, whose serve container is `server`."""
    return {
        "metadata": {"name": f"iris-{server.port}"},
        "spec": {
            "containers": [
                {"name": "serve", "ports": [{"name": "http", "containerPort": server.port}]}
            ]
        },
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def infer(server: Server, count: int) -> None:
    body = {
        "inputs": [
            {
                "name": "X",
                "shape": [3, 4],
                "datatype": "FP32",
                "data": [v for row in ROWS for v in row],
            }
        ]
    }
    with server.client() as client:
        for _ in range(count):
            assert client.post("/v2/models/iris/infer", json=body).status_code == 200
        assert client.post("/v2/models/iris/infer", json={"inputs": []}).status_code == 400


def read(stable: list[Server], canary: list[Server]) -> Reading:
    async def go() -> Reading:
        async with aiohttp.ClientSession() as session:
            return await scrape.read(
                session,
                stable_pods=[pod(s) for s in stable],
                canary_pods=[pod(s) for s in canary],
            )

    return asyncio.run(go())


def test_scrape_reads_and_adds_up_the_pods_of_each_revision(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    stable = [fresh_server(iris_model.path, name="iris") for _ in range(2)]
    canary = [fresh_server(iris_model.path, name="iris", version="v2")]
    infer(stable[0], 5)
    infer(stable[1], 7)
    infer(canary[0], 4)

    reading = read(stable, canary)
    assert reading.error == ""
    assert reading.stable is not None
    assert reading.canary is not None
    assert reading.stable.requests == {"200": 12, "400": 2}
    assert reading.canary.requests == {"200": 4, "400": 1}
    # Three rows a request, one predicted class each.
    assert sum(reading.stable.classes.values()) == 36
    assert reading.stable.latency is not None
    assert reading.stable.latency.observations == 14


def test_a_window_of_real_traffic_is_judged(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    stable = [fresh_server(iris_model.path, name="iris")]
    canary = [fresh_server(iris_model.path, name="iris", version="v2")]
    spec = parse_analysis(
        {
            "interval": "1s",
            "minSamples": 10,
            "metrics": [
                {"name": "error-rate", "max": 0.05},
                {"name": "prediction-divergence", "max": 0.1},
            ],
        }
    )
    begun = step(spec=spec, previous=None, attempt_key="c/1", reading=read(stable, canary), now=0)
    infer(stable[0], 30)
    infer(canary[0], 30)
    judged = step(
        spec=spec, previous=begun.record, attempt_key="c/1", reading=read(stable, canary), now=2
    )
    assert judged.judged
    verdicts = {m["name"]: m["verdict"] for m in judged.status["metrics"]}
    # 400s are the client's fault, not errors; the same model predicts the same classes.
    assert verdicts == {"error-rate": "Pass", "prediction-divergence": "Pass"}
    assert judged.status["verdict"] == "Pass"


def test_an_unreachable_pod_is_an_error_not_a_pass(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    stable = [fresh_server(iris_model.path, name="iris")]
    gone = fresh_server(iris_model.path, name="iris")
    gone.stop()
    reading = read(stable, [gone])
    assert reading.error.startswith("scraping the pods failed")
