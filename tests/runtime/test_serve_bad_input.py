"""Bad requests get a 4xx `{"error": ...}` that names the problem, and never hurt good ones."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import orjson
import pytest

from tests.runtime.conftest import Servers

pytestmark = pytest.mark.runtime

GOOD = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def _x(**changes: Any) -> bytes:
    item: dict[str, Any] = {"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
    item.update(changes)
    return orjson.dumps({"inputs": [item]})


# (case id, path, body, extra headers, status, words the error must contain)
V2 = "/v2/models/iris/infer"
V1 = "/v1/models/iris:predict"
NO_DATA = orjson.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4]}]})
TWICE = orjson.dumps({"inputs": [orjson.loads(_x())["inputs"][0]] * 2})
BAD_OUTPUT = orjson.dumps({**orjson.loads(_x()), "outputs": [{"name": "proba"}]})
BINARY_16 = _x(data=None, parameters={"binary_data_size": 16})
HEADER_16 = {"Inference-Header-Content-Length": str(len(BINARY_16))}
HEADER_LENGTH = "Inference-Header-Content-Length"
BAD: list[tuple[str, str, bytes, dict[str, str], int, list[str]]] = [
    ("malformed json", V2, b'{"inputs": [', {}, 400, ["not valid JSON"]),
    ("not an object", V2, b"[1, 2]", {}, 400, ["JSON object", "inputs"]),
    ("no inputs", V2, b'{"inputs": []}', {}, 400, ["non-empty", "X (FP32"]),
    ("unknown input", V2, _x(name="petal"), {}, 400, ["'petal'", "X (FP32 [-1, 4])"]),
    ("length mismatch", V2, _x(shape=[2, 4]), {}, 400, ["needs 8 values", "has 4"]),
    ("shape vs model", V2, _x(shape=[4]), {}, 400, ["[4]", "[-1, 4]"]),
    ("wrong datatype", V2, _x(datatype="INT64"), {}, 400, ["INT64", "expects FP32"]),
    ("unknown datatype", V2, _x(datatype="FLOAT"), {}, 400, ["'FLOAT'", "FP32"]),
    ("non-numeric", V2, _x(data=[1, "a", 3, 4]), {}, 400, ["numbers", "strings"]),
    ("null element", V2, _x(data=[1, None, 3, 4]), {}, 400, ["numbers"]),
    ("ragged", V2, _x(data=[[1, 2], [3]]), {}, 400, ["regular"]),
    ("beyond fp32", V2, _x(data=[1e39, 2, 3, 4]), {}, 400, ["NaN or Inf", "FP32"]),
    ("json infinity", V2, _x().replace(b"[1,2,3,4]", b"[1e999,2,3,4]"), {}, 400, ["infinity"]),
    ("negative shape", V2, _x(shape=[-1, 4]), {}, 400, ["non-negative"]),
    ("no data", V2, NO_DATA, {}, 400, ["neither 'data'"]),
    ("duplicate input", V2, TWICE, {}, 400, ["more than once"]),
    ("unknown output", V2, BAD_OUTPUT, {}, 400, ["'proba'", "label"]),
    ("binary without header", V2, BINARY_16, {}, 400, [HEADER_LENGTH]),
    ("binary too short", V2, BINARY_16 + b"\0" * 8, HEADER_16, 400, ["binary_data_size"]),
    ("header length too big", V2, _x(), {HEADER_LENGTH: "99999"}, 400, [HEADER_LENGTH]),
    ("v1 no instances", V1, b'{"inputs": 1}', {}, 400, ["instances"]),
    ("v1 bad row", V1, b'{"instances": [[1, 2, 3]]}', {}, 400, ["[1, 3]", "[-1, 4]"]),
    ("unknown model", "/v2/models/tulip/infer", _x(), {}, 404, ["'tulip'", "'iris'"]),
    ("unknown version", "/v2/models/iris/versions/v9/infer", _x(), {}, 404, ["'v9'", "'v1'"]),
    ("unknown v1 model", "/v1/models/tulip:predict", b'{"instances": [[1]]}', {}, 404, ["'tulip'"]),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_request_is_refused_with_reason(
    servers: Servers,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    words: list[str],
) -> None:
    with servers.iris.client() as client:
        response = client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for word in words:
        assert word in error


def test_nan_in_binary_data_is_refused(servers: Servers) -> None:
    header = _x(data=None, parameters={"binary_data_size": 16})
    blob = b"\x00\x00\xc0\x7f" + b"\x00" * 12  # little-endian float32 NaN, then zeros
    with servers.iris.client() as client:
        response = client.post(
            "/v2/models/iris/infer",
            content=header + blob,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert response.status_code == 400
    assert "NaN or Inf" in response.json()["error"]


def test_missing_input_of_several(servers: Servers) -> None:
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    with servers.mixed.client() as client:
        response = client.post("/v2/models/mixed/infer", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'b'" in error
    assert "'color'" in error


def test_bytes_input_given_numbers(servers: Servers) -> None:
    body = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [1.0]},
            {"name": "b", "datatype": "FP32", "shape": [1, 1], "data": [1.0]},
            {"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": [7]},
        ]
    }
    with servers.mixed.client() as client:
        response = client.post("/v2/models/mixed/infer", json=body)
    assert response.status_code == 400
    assert "must be strings" in response.json()["error"]


def test_integer_out_of_range(servers: Servers) -> None:
    item = {"name": "in_int8", "datatype": "INT8", "shape": [1, 2], "data": [1, 300]}
    with servers.identity.client() as client:
        response = client.post("/v2/models/identity/infer", json={"inputs": [item]})
    assert response.status_code == 400
    assert "[-128, 127]" in response.json()["error"]


def test_wrong_method(servers: Servers) -> None:
    with servers.iris.client() as client:
        response = client.get("/v2/models/iris/infer")
    assert response.status_code == 405
    assert "POST" in response.json()["error"]


def test_burst_of_bad_requests_leaves_good_ones_correct(servers: Servers) -> None:
    bad_bodies = [case[2] for case in BAD if case[1] == V2 and not case[3]]
    client = servers.iris.client(limits=httpx.Limits(max_connections=16))
    expected = client.post("/v2/models/iris/infer", json=GOOD).json()["outputs"]

    def call(i: int) -> tuple[bool, int, Any]:
        if i % 2:
            body = bad_bodies[i % len(bad_bodies)]
            response = client.post("/v2/models/iris/infer", content=body)
            return False, response.status_code, None
        response = client.post("/v2/models/iris/infer", json=GOOD)
        return True, response.status_code, response.json()["outputs"]

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(400)))
    finally:
        client.close()
    for good, status, outputs in results:
        if good:
            assert status == 200
            assert outputs == expected
        else:
            assert status == 400
    with servers.iris.client() as client:
        assert client.get("/v2/health/ready").status_code == 200


def test_malformed_bytes_data_is_a_400_never_a_500(servers: Servers) -> None:
    # 1000 levels deep: within what the JSON parser takes, beyond Python's recursion limit.
    placeholder = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": "DEEP"},
            {"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [0.5]},
            {"name": "b", "datatype": "FP32", "shape": [1, 1], "data": [0.5]},
        ]
    }
    nested = orjson.dumps(placeholder).replace(b'"DEEP"', b"[" * 1000 + b'"red"' + b"]" * 1000)
    row = {"a": 0.1, "b": 0.2, "color": "red"}
    ragged = {"instances": [row, {**row, "color": ["red", "blue"]}]}
    with servers.mixed.client() as client:
        too_deep = client.post("/v2/models/mixed/infer", content=nested)
        uneven = client.post("/v1/models/mixed:predict", json=ragged)
    assert too_deep.status_code == 400, too_deep.text
    assert "nested deeper" in too_deep.json()["error"]
    assert uneven.status_code == 400, uneven.text
    assert "must be strings, got list" in uneven.json()["error"]
