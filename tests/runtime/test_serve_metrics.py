"""Prometheus metrics after a known number of requests, with one worker and with two."""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import pytest

from tests.helpers.metrics import scrape, value
from tests.runtime.conftest import ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime


def rows_request(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]}


def test_counts_after_known_requests(fresh_server: ServerFactory, iris_model: TrainedModel) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--revision", "rev-7"))
    x = iris_model.x
    labels: collections.Counter[int] = collections.Counter()
    with server.client() as client:
        for i in range(10):
            rows = x[i * 15 : i * 15 + 3].tolist()
            response = client.post("/v2/models/iris/infer", json=rows_request(rows))
            assert response.status_code == 200
            labels.update(response.json()["outputs"][0]["data"])
        response = client.post("/v1/models/iris:predict", json={"instances": x[100:102].tolist()})
        labels.update(response.json()["predictions"])
        for _ in range(4):
            assert client.post("/v2/models/iris/infer", content=b"{").status_code == 400
        samples = scrape(client)
    common = {"model": "iris", "version": "v1"}
    assert value(samples, "mlmodel_requests_total", code="200", **common) == 11
    assert value(samples, "mlmodel_requests_total", code="400", **common) == 4
    assert value(samples, "mlmodel_request_duration_seconds_count", **common) == 15
    assert value(samples, "mlmodel_request_duration_seconds_sum", **common) > 0
    # Every request ran on its own here, so 11 executions of 32 rows in all.
    assert value(samples, "mlmodel_batch_size_count", **common) == 11
    assert value(samples, "mlmodel_batch_size_sum", **common) == 32
    for cls in (0, 1, 2):
        counted = value(
            samples, "mlmodel_predictions_total", output="label", **{"class": str(cls)}, **common
        )
        assert counted == labels[cls], cls
    digest = hashlib.sha256((iris_model.path / "model.onnx").read_bytes()).hexdigest()
    assert value(samples, "mlmodel_info", revision="rev-7", digest=digest, **common) == 1


def test_only_inference_requests_are_counted_whatever_their_answer(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(iris_model.path, name="iris", extra=("--max-body-bytes", "1000"))
    one_row = rows_request(iris_model.x[:1].tolist())
    with server.client() as client:
        # Anything but inference: a client must not be able to pad or dilute the
        # figures the canary analysis judges the model by.
        for path in ("/v2/models/rose/infer", "/v2/models/iris/versions/v9/infer", "/nowhere"):
            assert client.post(path, json=one_row).status_code == 404
        assert client.get("/v2/models/iris/infer").status_code == 405
        assert client.get("/v2/models/iris").status_code == 200
        assert client.get("/v2/models/iris/ready").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2").status_code == 200
        # Inference, every answer counted: 200, 400, 413.
        assert client.post("/v2/models/iris/infer", json=one_row).status_code == 200
        assert client.post("/v2/models/iris/versions/v1/infer", json=one_row).status_code == 200
        assert (
            client.post("/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}).status_code
            == 200
        )
        assert client.post("/v2/models/iris/infer", content=b"{").status_code == 400
        assert client.post("/v2/models/iris/infer", content=b" " * 2000).status_code == 413
        samples = scrape(client)
    common = {"model": "iris", "version": "v1"}
    counted = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "mlmodel_requests_total"
    }
    assert counted == {
        frozenset({**common, "code": "200"}.items()): 3,
        frozenset({**common, "code": "400"}.items()): 1,
        frozenset({**common, "code": "413"}.items()): 1,
    }
    assert value(samples, "mlmodel_request_duration_seconds_count", **common) == 5


def test_regressor_prediction_values(
    fresh_server: ServerFactory, regressor_model: TrainedModel
) -> None:
    server = fresh_server(
        regressor_model.path, name="diabetes", version="v3", env={"MLMODEL_REVISION": "from-env"}
    )
    x = regressor_model.x[:12]
    request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [12, 10], "data": x.tolist()}]}
    with server.client() as client:
        response = client.post("/v2/models/diabetes/infer", json=request)
        assert response.status_code == 200
        predictions = response.json()["outputs"][0]["data"]
        samples = scrape(client)
    common = {"model": "diabetes", "version": "v3"}
    assert value(samples, "mlmodel_prediction_value_count", output="variable", **common) == 12
    # prometheus_client leaves out _sum when buckets go below zero; the buckets carry
    # the distribution that the canary analysis compares.
    assert (
        "mlmodel_prediction_value_sum",
        frozenset({**common, "output": "variable"}.items()),
    ) not in samples
    assert max(predictions) > 0
    below_100 = sum(1 for p in predictions if p <= 100)
    assert value(
        samples, "mlmodel_prediction_value_bucket", output="variable", le="100.0", **common
    ) == (below_100)
    assert not any(name == "mlmodel_predictions_total" for name, _ in samples)
    infos = [labels for name, labels in samples if name == "mlmodel_info"]
    assert ("revision", "from-env") in infos[0]


def test_two_workers_report_complete_metrics(
    fresh_server: ServerFactory, iris_model: TrainedModel, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = fresh_server(
        iris_model.path,
        name="iris",
        extra=("--workers", "2"),
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    body = rows_request(iris_model.x[:1].tolist())
    for _ in range(40):
        # A new connection each time, so the kernel spreads them over both workers.
        with server.client() as client:
            response = client.post("/v2/models/iris/infer", json=body)
            assert response.status_code == 200
    for _ in range(6):
        with server.client() as client:
            samples = scrape(client)
        assert (
            value(samples, "mlmodel_requests_total", code="200", model="iris", version="v1") == 40
        )
        assert value(samples, "mlmodel_batch_size_count", model="iris", version="v1") == 40
        infos = [labels for name, labels in samples if name == "mlmodel_info"]
        assert len(infos) == 1
    # Both workers write their own value files, which every scrape aggregates.
    pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}
    assert len(pids) == 2, sorted(metrics_dir.iterdir())
    assert server.stop() == 0
