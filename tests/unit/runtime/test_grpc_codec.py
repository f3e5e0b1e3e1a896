"""The gRPC codec (pure) and the generated messages it uses."""

from __future__ import annotations

import numpy as np
import pytest

from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.codec import ModelRules, RequestError
from mlmodel_runtime.serve.grpc_codec import decode_model_infer, encode_model_infer, parse_request
from mlmodel_runtime.serve.oip import generate
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb

pytestmark = pytest.mark.unit

RULES = ModelRules(
    inputs=(TensorSpec("X", "FP32", (-1, 2)),),
    outputs=("label", "scores"),
    max_elements=8,
)


def test_the_generated_messages_are_those_of_the_proto() -> None:
    assert generate.stale() == []


def test_the_messages_live_in_a_pool_of_their_own() -> None:
    """Triton's client registers the same names in protobuf's default pool."""
    from google.protobuf import descriptor_pool

    assert pb.DESCRIPTOR.pool is not descriptor_pool.Default()


def _request(**fields: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", **fields)  # type: ignore[arg-type]
    return request


def test_typed_and_raw_contents_decode_alike() -> None:
    typed = _request()
    typed.inputs.add(name="X", datatype="FP32", shape=[2, 2]).contents.fp32_contents.extend(
        [1, 2, 3, 4]
    )
    raw = _request(raw_input_contents=[np.arange(1, 5, dtype="<f4").tobytes()])
    raw.inputs.add(name="X", datatype="FP32", shape=[2, 2])
    a, b = decode_model_infer(typed, RULES), decode_model_infer(raw, RULES)
    np.testing.assert_array_equal(a.arrays[0], b.arrays[0])
    assert a.rows == b.rows == 2
    assert a.outputs == ((0, False), (1, False))  # typed in, typed out
    assert b.outputs == ((0, True), (1, True))  # raw in, raw out


def _two_raw_entries_for_one_input(request: pb.ModelInferRequest) -> None:
    request.inputs.add(name="X", datatype="FP32", shape=[1, 2])
    request.raw_input_contents.extend([b"", b""])


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda r: None, "the request has no inputs"),
        (
            lambda r: r.inputs.add(name="X", datatype="FP32", shape=[3, 2]),
            "needs 6 values, but its contents.fp32_contents has 0",
        ),
        (
            lambda r: r.inputs.add(name="X", datatype="FP32", shape=[5, 2]),
            "10 or more tensor elements",
        ),
        (
            lambda r: _two_raw_entries_for_one_input(r),
            "raw_input_contents has 2 entries for 1 inputs",
        ),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong(build: object, words: str) -> None:
    request = _request()
    build(request)  # type: ignore[operator]
    with pytest.raises(RequestError, match=words):
        decode_model_infer(request, RULES)


def test_a_message_that_does_not_parse() -> None:
    with pytest.raises(RequestError, match="not a valid ModelInferRequest"):
        parse_request(b"\xff\xff\xff")


def test_one_output_without_a_typed_field_makes_every_output_raw() -> None:
    payload = encode_model_infer(
        model_name="m",
        model_version="",
        request_id="7",
        outputs=[
            ("label", np.array([1, 2], np.int64), False),
            ("scores", np.array([0.5, 0.25], np.float16), False),
        ],
    )
    response = pb.ModelInferResponse.FromString(payload)
    assert response.id == "7"
    assert [o.datatype for o in response.outputs] == ["INT64", "FP16"]
    assert response.raw_output_contents[0] == np.array([1, 2], "<i8").tobytes()
    assert response.raw_output_contents[1] == np.array([0.5, 0.25], "<f2").tobytes()
    assert not response.outputs[0].HasField("contents")


def test_typed_outputs() -> None:
    payload = encode_model_infer(
        model_name="m",
        model_version="v1",
        request_id=None,
        outputs=[
            ("label", np.array([["a", "b"]], np.object_), False),
            ("n", np.array([[3, 4]], np.int8), False),
        ],
    )
    response = pb.ModelInferResponse.FromString(payload)
    assert (response.model_version, response.id) == ("v1", "")
    assert list(response.outputs[0].contents.bytes_contents) == [b"a", b"b"]
    assert list(response.outputs[1].contents.int_contents) == [3, 4]
    assert list(response.outputs[1].shape) == [1, 2]
