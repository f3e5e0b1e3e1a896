"""The Open Inference Protocol over gRPC, judged by an independent client.

Triton's `tritonclient.grpc` (not this project's code) talks to `mlmodel-runtime
serve --grpc-port` processes: health, metadata, inference with every datatype the
REST tests cover (as Triton's client sends them: raw_input_contents), errors with
their gRPC status. Typed `contents`, which Triton's client never sends, are sent
with the runtime's own generated messages over a plain grpc channel. Both
protocols share one model and one set of metrics.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from mlmodel_runtime.serve.grpc_codec import CONTENTS_FIELD
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb
from tests.runtime.conftest import (
    Server,
    ServerFactory,
    TrainedModel,
    free_port,
    identity_model_dir,
)
from tests.runtime.test_serve_infer import DATATYPE_VALUES, IRIS_ROWS, NUMPY_TYPES

pytestmark = pytest.mark.runtime


class GrpcServer:
    """A served model's HTTP server and the address of its gRPC port."""

    def __init__(self, server: Server, grpc_port: int) -> None:
        self.server = server
        self.address = f"127.0.0.1:{grpc_port}"

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.address)


def _start(factory: ServerFactory, model: TrainedModel, name: str, *extra: str) -> GrpcServer:
    port = free_port()
    server = factory(model.path, name=name, extra=("--grpc-port", str(port), *extra))
    return GrpcServer(server, port)


@pytest.fixture(scope="module")
def iris(session_servers: ServerFactory, iris_model: TrainedModel) -> GrpcServer:
    served = _start(
        session_servers, iris_model, "iris", "--revision", "r1", "--max-batch-delay-ms", "2"
    )
    served.server.wait_ready()
    return served


@pytest.fixture(scope="module")
def identity(session_servers: ServerFactory, identity_model: TrainedModel) -> GrpcServer:
    served = _start(session_servers, identity_model, "identity")
    served.server.wait_ready()
    return served


@pytest.fixture(scope="module")
def mixed(session_servers: ServerFactory, mixed_model: TrainedModel) -> GrpcServer:
    served = _start(session_servers, mixed_model, "mixed")
    served.server.wait_ready()
    return served


TYPED_VALUES = {d: v for d, v in DATATYPE_VALUES.items() if d != "FP16"}


@pytest.fixture(scope="module")
def typed_identity(session_servers: ServerFactory, models_root: Path) -> GrpcServer:
    """The identity model without FP16 (the one datatype that has no typed field)."""
    path = identity_model_dir(models_root / "typed-identity", TYPED_VALUES)
    served = _start(session_servers, TrainedModel(path, None, None), "typed")
    served.server.wait_ready()
    return served


@pytest.fixture
def channel(identity: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(identity.address) as chan:
        yield chan


def _infer_call(chan: grpc.Channel) -> Any:
    return chan.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


# ---- health and metadata ---------------------------------------------------------


def test_health_and_metadata(iris: GrpcServer) -> None:
    client = iris.client()
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "v1")
    server = client.get_server_metadata()
    assert server.name == "mlmodel-runtime"
    assert "binary_tensor_data" in server.extensions
    model = client.get_model_metadata("iris")
    assert model.name == "iris"
    assert list(model.versions) == ["v1"]
    assert model.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("X", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 3]),
    ]
    # The same answers as REST's metadata.
    with iris.server.client() as http:
        rest = http.get("/v2/models/iris").json()
    assert rest["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]


def test_unknown_model_is_not_found(iris: GrpcServer) -> None:
    client = iris.client()
    calls: tuple[Callable[[], object], ...] = (
        lambda: client.is_model_ready("other"),
        lambda: client.is_model_ready("iris", "v9"),
        lambda: client.get_model_metadata("other"),
        lambda: client.infer("other", [_iris_input(np.array(IRIS_ROWS, np.float32))]),
    )
    for call in calls:
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == "StatusCode.NOT_FOUND"
        assert "this server serves model 'iris' version 'v1'" in caught.value.message()


# ---- inference ------------------------------------------------------------------


def _iris_input(rows: np.ndarray[Any, Any]) -> triton.InferInput:
    tensor = triton.InferInput("X", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_classifier_predicts_like_scikit_learn(iris: GrpcServer, iris_model: TrainedModel) -> None:
    rows = np.asarray(iris_model.x, dtype=np.float32)
    result = iris.client().infer(
        "iris", [_iris_input(rows)], request_id="req-7", model_version="v1"
    )
    np.testing.assert_array_equal(result.as_numpy("label"), iris_model.estimator.predict(rows))
    probabilities = result.as_numpy("probabilities")
    np.testing.assert_allclose(
        probabilities, iris_model.estimator.predict_proba(rows), rtol=1e-5, atol=1e-6
    )
    response = result.get_response()
    assert response.id == "req-7"
    assert (response.model_name, response.model_version) == ("iris", "v1")


def test_requested_outputs_only(iris: GrpcServer) -> None:
    result = iris.client().infer(
        "iris",
        [_iris_input(np.array(IRIS_ROWS, np.float32))],
        outputs=[triton.InferRequestedOutput("probabilities")],
    )
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("probabilities").shape == (3, 3)


def test_grpc_and_rest_answer_alike(iris: GrpcServer) -> None:
    rows = np.array(IRIS_ROWS, np.float32)
    result = iris.client().infer("iris", [_iris_input(rows)])
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4], "data": IRIS_ROWS}]}
    with iris.server.client() as http:
        rest = {
            o["name"]: o["data"]
            for o in http.post("/v2/models/iris/infer", json=body).json()["outputs"]
        }
    assert result.as_numpy("label").tolist() == rest["label"]
    np.testing.assert_allclose(result.as_numpy("probabilities").reshape(-1), rest["probabilities"])


def test_every_datatype_round_trips_raw(identity: GrpcServer) -> None:
    """As Triton's client sends tensors: raw_input_contents, BYTES length-prefixed."""
    inputs, expected = [], {}
    for datatype, values in DATATYPE_VALUES.items():
        tensor = triton.InferInput(f"in_{datatype.lower()}", [1, 2], datatype)
        if datatype == "BYTES":
            data = np.array([[v.encode() for v in values]], dtype=np.object_)
        else:
            data = np.array([values], dtype=NUMPY_TYPES[datatype])
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
        expected[datatype] = data
    result = identity.client().infer("identity", inputs)
    for datatype, data in expected.items():
        out = result.as_numpy(f"out_{datatype.lower()}")
        assert out is not None, datatype
        assert out.shape == (1, 2), datatype
        if datatype == "BYTES":
            assert out.reshape(-1).tolist() == [v.encode() for v in DATATYPE_VALUES["BYTES"]]
        else:
            assert out.dtype == data.dtype, datatype
            np.testing.assert_array_equal(out, data, err_msg=datatype)
        tensor = next(
            o for o in result.get_response().outputs if o.name == f"out_{datatype.lower()}"
        )
        assert tensor.datatype == datatype


def test_every_datatype_round_trips_as_typed_contents(typed_identity: GrpcServer) -> None:
    """Typed contents in, typed contents out, for every datatype that has a field."""
    request = pb.ModelInferRequest(model_name="typed", id="typed")
    for datatype, values in TYPED_VALUES.items():
        tensor = request.inputs.add(name=f"in_{datatype.lower()}", datatype=datatype, shape=[1, 2])
        getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(
            [v.encode() for v in values] if datatype == "BYTES" else values
        )
    with grpc.insecure_channel(typed_identity.address) as chan:
        response = _infer_call(chan)(request)
    assert response.id == "typed"
    assert not response.raw_output_contents
    for datatype, values in TYPED_VALUES.items():
        out = next(o for o in response.outputs if o.name == f"out_{datatype.lower()}")
        assert (out.datatype, list(out.shape)) == (datatype, [1, 2])
        got = list(getattr(out.contents, CONTENTS_FIELD[datatype]))
        if datatype == "BYTES":
            assert got == [v.encode() for v in values]
        elif datatype == "FP32":
            np.testing.assert_array_equal(np.array(got, np.float32), np.array(values, np.float32))
        else:
            assert got == values, datatype


def test_fp16_cannot_travel_typed(channel: grpc.Channel) -> None:
    request = pb.ModelInferRequest(model_name="identity")
    request.inputs.add(name="in_fp16", datatype="FP16", shape=[1, 2])
    with pytest.raises(grpc.RpcError) as caught:
        _infer_call(channel)(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "FP16, which has no typed contents field: send it in raw_input_contents" in str(
        caught.value.details()
    )


def test_typed_values_out_of_range_or_miscounted(typed_identity: GrpcServer) -> None:
    cases: list[tuple[str, list[Any], str]] = [
        ("INT8", [1, 300], "values must lie in [-128, 127], got 1..300"),
        ("UINT16", [1], "needs 2 values, but its contents.uint_contents has 1"),
    ]
    with grpc.insecure_channel(typed_identity.address) as chan:
        for datatype, values, words in cases:
            request = pb.ModelInferRequest(model_name="typed")
            for other, other_values in TYPED_VALUES.items():
                tensor = request.inputs.add(
                    name=f"in_{other.lower()}", datatype=other, shape=[1, 2]
                )
                chosen = values if other == datatype else other_values
                getattr(tensor.contents, CONTENTS_FIELD[other]).extend(
                    [v.encode() for v in chosen] if other == "BYTES" else chosen
                )
            with pytest.raises(grpc.RpcError) as caught:
                _infer_call(chan)(request)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert words in str(caught.value.details())


def test_typed_contents_answered_typed(mixed: GrpcServer, mixed_model: TrainedModel) -> None:
    frame = mixed_model.x.iloc[:6]
    request = pb.ModelInferRequest(model_name="mixed")
    for name in ("a", "b"):
        request.inputs.add(name=name, datatype="FP32", shape=[6, 1]).contents.fp32_contents.extend(
            frame[name].tolist()
        )
    request.inputs.add(name="color", datatype="BYTES", shape=[6, 1]).contents.bytes_contents.extend(
        c.encode() for c in frame["color"]
    )
    with grpc.insecure_channel(mixed.address) as chan:
        response = _infer_call(chan)(request)
    assert not response.raw_output_contents
    label = next(o for o in response.outputs if o.name == "label")
    assert (label.datatype, list(label.shape)) == ("INT64", [6])
    assert list(label.contents.int64_contents) == mixed_model.estimator.predict(frame).tolist()


def test_several_inputs_with_bytes_raw(mixed: GrpcServer, mixed_model: TrainedModel) -> None:
    frame = mixed_model.x.iloc[:6]
    inputs = []
    for name in ("a", "b"):
        tensor = triton.InferInput(name, [6, 1], "FP32")
        tensor.set_data_from_numpy(frame[[name]].to_numpy(np.float32))
        inputs.append(tensor)
    color = triton.InferInput("color", [6, 1], "BYTES")
    color.set_data_from_numpy(frame[["color"]].to_numpy(np.object_))
    inputs.append(color)
    result = mixed.client().infer("mixed", inputs)
    assert result.as_numpy("label").tolist() == mixed_model.estimator.predict(frame).tolist()


# ---- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "status", "words"),
    [
        (("X", [1, 4], "FP64"), "INVALID_ARGUMENT",
         "input 'X' has datatype FP64; the model expects FP32"),
        (("X", [1, 5], "FP32"), "INVALID_ARGUMENT", "input 'X'"),
        (("Y", [1, 4], "FP32"), "INVALID_ARGUMENT",
         "unknown input name 'Y'; the model's inputs are X (FP32 [-1, 4])"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong(
    iris: GrpcServer, tensor: tuple[str, list[int], str], status: str, words: str
) -> None:
    name, shape, datatype = tensor
    data = np.zeros(shape, dtype=np.float64 if datatype == "FP64" else np.float32)
    tensor_in = triton.InferInput(name, shape, datatype)
    tensor_in.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as caught:
        iris.client().infer("iris", [tensor_in])
    assert caught.value.status() == f"StatusCode.{status}"
    assert words in caught.value.message()


def test_non_finite_and_element_limits(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    served = _start(fresh_server, iris_model, "iris", "--max-request-elements", "400")
    client = served.client()
    nan = np.array([[np.nan, 1, 2, 3]], np.float32)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [_iris_input(nan)])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "contains NaN or Inf" in caught.value.message()
    big = np.zeros((101, 4), np.float32)
    with pytest.raises(InferenceServerException) as too_many:
        client.infer("iris", [_iris_input(big)])
    assert too_many.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "--max-request-elements" in too_many.value.message()
    assert client.infer("iris", [_iris_input(np.zeros((100, 4), np.float32))])


def test_message_larger_than_the_body_limit_is_refused(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    served = _start(
        fresh_server,
        iris_model,
        "iris",
        "--max-body-bytes",
        "4096",
        "--max-json-body-bytes",
        "4096",
        "--max-inflight-bytes",
        "1048576",
    )
    # Refused by grpc itself, before a byte of it is parsed.
    with pytest.raises(InferenceServerException) as caught:
        served.client().infer("iris", [_iris_input(np.zeros((1000, 4), np.float32))])
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert served.client().infer("iris", [_iris_input(np.zeros((10, 4), np.float32))])


# ---- one data plane -----------------------------------------------------------------


def _requests_total(server: Server) -> dict[str, float]:
    with server.client() as http:
        text = http.get("/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("mlmodel_requests_total{"):
            code = line.split('code="')[1].split('"')[0]
            counts[code] = float(line.rsplit(" ", 1)[1])
    return counts


def test_grpc_calls_are_counted_with_rest_ones(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    served = _start(fresh_server, iris_model, "iris")
    client = served.client()
    rows = np.array(IRIS_ROWS, np.float32)
    for _ in range(5):
        client.infer("iris", [_iris_input(rows)])
    with pytest.raises(InferenceServerException):
        client.infer("iris", [_fp64(rows)])
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [3, 4], "data": IRIS_ROWS}]}
    with served.server.client() as http:
        assert http.post("/v2/models/iris/infer", json=body).status_code == 200
    # Health and metadata calls are not inference: not counted, on either protocol.
    client.is_server_ready()
    client.get_model_metadata("iris")
    assert _requests_total(served.server) == {"200": 6.0, "400": 1.0}


def _fp64(rows: np.ndarray[Any, Any]) -> triton.InferInput:
    tensor = triton.InferInput("X", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.astype(np.float64))
    return tensor


def test_revision_in_trailing_metadata(iris: GrpcServer) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend(
        IRIS_ROWS[0]
    )
    with grpc.insecure_channel(iris.address) as chan:
        _, call = _infer_call(chan).with_call(request)
    assert ("x-mlmodel-revision", "r1") in tuple(call.trailing_metadata())


def test_drain_turns_readiness_off_while_inference_goes_on(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    served = _start(fresh_server, iris_model, "iris", "--shutdown-delay-s", "3")
    client = served.client()
    assert client.is_server_ready()
    served.server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2
    while client.is_server_ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.is_server_ready()
    assert not client.is_model_ready("iris")
    result = client.infer("iris", [_iris_input(np.array(IRIS_ROWS, np.float32))])
    assert result.as_numpy("label").shape == (3,)
    assert served.server.process.wait(30) == 0


def test_port_in_use_fails_start_up(fresh_server: ServerFactory, iris_model: TrainedModel) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = fresh_server(
            iris_model.path, name="iris", wait=False, extra=("--grpc-port", str(port))
        )
        assert server.process.wait(30) != 0
    assert f"cannot serve gRPC on port {port}" in server.log()
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.TransportError):
        http.get(f"{server.url}/v2/health/live", timeout=1)
