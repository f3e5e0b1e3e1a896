"""Inference over HTTP: v2 JSON and binary, every datatype, several inputs, KServe v1."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from tests.runtime.conftest import Servers, TrainedModel

pytestmark = pytest.mark.runtime

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _output(body: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [o for o in body["outputs"] if o["name"] == name]
    assert len(matches) == 1, body
    found: dict[str, Any] = matches[0]
    return found


def test_classifier_predicts_like_scikit_learn(servers: Servers, iris_model: TrainedModel) -> None:
    x = iris_model.x[::7]
    request = {
        "id": "req-42",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": list(x.shape), "data": x.tolist()}],
    }
    with servers.iris.client() as client:
        response = client.post("/v2/models/iris/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-42"
    assert body["model_name"] == "iris"
    assert body["model_version"] == "v1"
    label = _output(body, "label")
    assert label["datatype"] == "INT64"
    assert label["shape"] == [len(x)]
    assert label["data"] == iris_model.estimator.predict(x).tolist()
    probabilities = _output(body, "probabilities")
    assert probabilities["shape"] == [len(x), 3]
    expected = iris_model.estimator.predict_proba(x)
    np.testing.assert_allclose(
        np.array(probabilities["data"]).reshape(len(x), 3), expected, atol=1e-5
    )


def test_flat_and_nested_data_give_the_same_answer(servers: Servers) -> None:
    flat = [v for row in IRIS_ROWS for v in row]
    answers = []
    with servers.iris.client() as client:
        for data in (flat, IRIS_ROWS):
            request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4], "data": data}]}
            response = client.post("/v2/models/iris/infer", json=request)
            assert response.status_code == 200, response.text
            answers.append(response.json()["outputs"])
    assert answers[0] == answers[1]


def test_version_path_and_requested_outputs(servers: Servers) -> None:
    request = {
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4], "data": IRIS_ROWS}],
        "outputs": [{"name": "probabilities"}],
    }
    with servers.iris.client() as client:
        response = client.post("/v2/models/iris/versions/v1/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [o["name"] for o in body["outputs"]] == ["probabilities"]
    assert "id" not in body


def test_binary_tensor_data_extension(servers: Servers, iris_model: TrainedModel) -> None:
    x = iris_model.x[:5]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "X",
                    "datatype": "FP32",
                    "shape": [5, 4],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [
                {"name": "label", "parameters": {"binary_data": True}},
                {"name": "probabilities", "parameters": {"binary_data": False}},
            ],
        }
    )
    with servers.iris.client() as client:
        response = client.post(
            "/v2/models/iris/infer",
            content=header + x.astype("<f4").tobytes(),
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    body = orjson.loads(response.content[:header_length])
    label = _output(body, "label")
    assert label["parameters"]["binary_data_size"] == 5 * 8
    assert "data" not in label
    labels = np.frombuffer(response.content[header_length:], dtype="<i8")
    assert labels.tolist() == iris_model.estimator.predict(x).tolist()
    assert len(_output(body, "probabilities")["data"]) == 15


def test_binary_data_output_for_all_outputs(servers: Servers) -> None:
    request = {
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4], "data": IRIS_ROWS}],
        "parameters": {"binary_data_output": True},
    }
    with servers.iris.client() as client:
        response = client.post("/v2/models/iris/infer", json=request)
        json_response = client.post(
            "/v2/models/iris/infer", json={"inputs": request["inputs"]}
        ).json()
    assert response.status_code == 200
    header_length = int(response.headers["inference-header-content-length"])
    body = orjson.loads(response.content[:header_length])
    blob = response.content[header_length:]
    sizes = [o["parameters"]["binary_data_size"] for o in body["outputs"]]
    assert sum(sizes) == len(blob)
    labels = np.frombuffer(blob[: sizes[0]], dtype="<i8")
    probabilities = np.frombuffer(blob[sizes[0] :], dtype="<f4")
    assert labels.tolist() == _output(json_response, "label")["data"]
    np.testing.assert_allclose(probabilities, _output(json_response, "probabilities")["data"])


def test_several_inputs_with_bytes(servers: Servers, mixed_model: TrainedModel) -> None:
    frame = mixed_model.x.iloc[:6]
    request = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [6, 1], "data": list(frame["color"])},
            {"name": "a", "datatype": "FP32", "shape": [6, 1], "data": frame["a"].tolist()},
            {"name": "b", "datatype": "FP32", "shape": [6, 1], "data": frame["b"].tolist()},
        ]
    }
    with servers.mixed.client() as client:
        response = client.post("/v2/models/mixed/infer", json=request)
        v1 = client.post(
            "/v1/models/mixed:predict",
            json={"instances": frame.to_dict(orient="records")},
        )
    assert response.status_code == 200, response.text
    expected = mixed_model.estimator.predict(frame).tolist()
    assert _output(response.json(), "label")["data"] == expected
    assert v1.status_code == 200, v1.text
    assert v1.json() == {"predictions": expected}


def test_bytes_input_in_binary_form(servers: Servers, mixed_model: TrainedModel) -> None:
    frame = mixed_model.x.iloc[:4]
    colors = b"".join(struct.pack("<I", len(c)) + c.encode() for c in frame["color"])
    a = frame["a"].to_numpy(np.float32).tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [4, 1],
                 "parameters": {"binary_data_size": len(a)}},
                {"name": "color", "datatype": "BYTES", "shape": [4, 1],
                 "parameters": {"binary_data_size": len(colors)}},
                {"name": "b", "datatype": "FP32", "shape": [4, 1], "data": frame["b"].tolist()},
            ]
        }
    )  # fmt: skip
    with servers.mixed.client() as client:
        response = client.post(
            "/v2/models/mixed/infer",
            content=header + a + colors,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert response.status_code == 200, response.text
    assert (
        _output(response.json(), "label")["data"] == mixed_model.estimator.predict(frame).tolist()
    )


def test_regressor(servers: Servers, regressor_model: TrainedModel) -> None:
    x = regressor_model.x[:8]
    with servers.regressor.client() as client:
        response = client.post(
            "/v2/models/diabetes/infer",
            json={
                "inputs": [{"name": "X", "datatype": "FP32", "shape": [8, 10], "data": x.tolist()}]
            },
        )
        v1 = client.post("/v1/models/diabetes:predict", json={"instances": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "model_version" not in body
    out = _output(body, "variable")
    assert out["datatype"] == "FP32"
    assert out["shape"] == [8, 1]
    expected = regressor_model.estimator.predict(x)
    np.testing.assert_allclose(out["data"], expected, rtol=1e-4)
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(np.array(v1.json()["predictions"]).reshape(-1), expected, rtol=1e-4)


def test_v1_predict_classifier(servers: Servers, iris_model: TrainedModel) -> None:
    with servers.iris.client() as client:
        response = client.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200, response.text
    expected = iris_model.estimator.predict(np.array(IRIS_ROWS, dtype=np.float32)).tolist()
    assert response.json() == {"predictions": expected}


# One row of two values per datatype, chosen at the edges of each type's range.
DATATYPE_VALUES: dict[str, list[Any]] = {
    "BOOL": [True, False],
    "INT8": [-128, 127],
    "INT16": [-32768, 32767],
    "INT32": [-(2**31), 2**31 - 1],
    "INT64": [-(2**63), 2**63 - 1],
    "UINT8": [0, 255],
    "UINT16": [0, 65535],
    "UINT32": [0, 2**32 - 1],
    "UINT64": [0, 2**64 - 1],
    "FP16": [0.5, -65504.0],
    "FP32": [1.5, -3.25e38],
    "FP64": [0.1, -1.7976931348623157e308],
    "BYTES": ["héllo", ""],
}
NUMPY_TYPES = {
    "BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def _identity_inputs(binary: bool) -> tuple[list[dict[str, Any]], bytes]:
    inputs, blobs = [], []
    for datatype, values in DATATYPE_VALUES.items():
        item: dict[str, Any] = {
            "name": f"in_{datatype.lower()}",
            "datatype": datatype,
            "shape": [1, 2],
        }
        if binary:
            if datatype == "BYTES":
                blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
            else:
                blob = np.array(values, dtype=NUMPY_TYPES[datatype]).tobytes()
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            item["data"] = [values]
        inputs.append(item)
    return inputs, b"".join(blobs)


def test_every_datatype_round_trips_as_json(servers: Servers) -> None:
    inputs, _ = _identity_inputs(binary=False)
    with servers.identity.client() as client:
        response = client.post("/v2/models/identity/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    for datatype, values in DATATYPE_VALUES.items():
        out = _output(body, f"out_{datatype.lower()}")
        assert out["datatype"] == datatype
        assert out["shape"] == [1, 2]
        if datatype in ("FP16", "FP32"):
            expected = np.array(values, dtype=NUMPY_TYPES[datatype]).astype(float).tolist()
            np.testing.assert_allclose(out["data"], expected, rtol=1e-7)
        else:
            assert out["data"] == values, datatype


def test_every_datatype_round_trips_as_binary(servers: Servers) -> None:
    inputs, blob = _identity_inputs(binary=True)
    header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    with servers.identity.client() as client:
        response = client.post(
            "/v2/models/identity/infer",
            content=header + blob,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    body = orjson.loads(response.content[:header_length])
    # The identity model returns the input bytes unchanged, in the same order.
    assert response.content[header_length:] == blob
    sizes = [o["parameters"]["binary_data_size"] for o in body["outputs"]]
    assert sum(sizes) == len(blob)
