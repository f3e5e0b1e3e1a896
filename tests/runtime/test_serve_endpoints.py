"""Health, server and model metadata endpoints of the Open Inference Protocol."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Servers

pytestmark = pytest.mark.runtime


def test_health(servers: Servers) -> None:
    with servers.iris.client() as client:
        live = client.get("/v2/health/live")
        ready = client.get("/v2/health/ready")
    assert live.status_code == 200
    assert live.json() == {"live": True}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}


def test_server_metadata(servers: Servers) -> None:
    with servers.iris.client() as client:
        body = client.get("/v2").json()
    assert body["name"] == "mlmodel-runtime"
    assert "binary_tensor_data" in body["extensions"]
    assert isinstance(body["version"], str)


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/v1"])
def test_model_metadata(servers: Servers, path: str) -> None:
    with servers.iris.client() as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "name": "iris",
        "versions": ["v1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }


def test_model_metadata_of_several_inputs(servers: Servers) -> None:
    with servers.mixed.client() as client:
        body = client.get("/v2/models/mixed").json()
    assert [(i["name"], i["datatype"]) for i in body["inputs"]] == [
        ("a", "FP32"),
        ("b", "FP32"),
        ("color", "BYTES"),
    ]


@pytest.mark.parametrize("path", ["/v2/models/iris/ready", "/v2/models/iris/versions/v1/ready"])
def test_model_ready(servers: Servers, path: str) -> None:
    with servers.iris.client() as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


def test_server_without_version_has_no_version_paths(servers: Servers) -> None:
    with servers.regressor.client() as client:
        assert client.get("/v2/models/diabetes").json()["versions"] == []
        response = client.get("/v2/models/diabetes/versions/v1")
    assert response.status_code == 404
    assert "'v1'" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/v2/models/rose", ["'rose'", "'iris'"]),
        ("/v2/models/rose/ready", ["'rose'"]),
        ("/v2/models/iris/versions/v2", ["'v2'", "'v1'"]),
        ("/v2/models/iris/versions/v2/ready", ["'v2'"]),
        ("/nothing/here", ["/nothing/here"]),
    ],
)
def test_unknown_paths_are_404(servers: Servers, path: str, words: list[str]) -> None:
    with servers.iris.client() as client:
        response = client.get(path)
    assert response.status_code == 404
    for word in words:
        assert word in response.json()["error"]


def test_metrics_endpoint_is_prometheus_text(servers: Servers) -> None:
    with servers.iris.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE mlmodel_requests_total counter" in response.text
