"""The v2 / v1 codec as pure functions: bytes in, arrays or a RequestError out."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import pytest

from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.codec import (
    ModelRules,
    RequestError,
    decode_infer_request,
    decode_json_data,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
)

pytestmark = pytest.mark.unit

IRIS = ModelRules(
    inputs=(TensorSpec("X", "FP32", (-1, 4)),),
    outputs=("label", "probabilities"),
    label_output="label",
)
MIXED = ModelRules(
    inputs=(TensorSpec("num", "FP64", (-1, 2)), TensorSpec("word", "BYTES", (-1, 1))),
    outputs=("score",),
)


def _body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _x(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": "X",
        "datatype": "FP32",
        "shape": [2, 4],
        "data": list(range(8)),
    }
    item.update(changes)
    return item


def test_decodes_flat_and_nested_data_alike() -> None:
    flat = decode_infer_request(_body(_x()), None, IRIS)
    nested = decode_infer_request(_body(_x(data=[[0, 1, 2, 3], [4, 5, 6, 7]])), None, IRIS)
    for request in (flat, nested):
        (arr,) = request.arrays
        assert arr.dtype == np.float32
        assert arr.shape == (2, 4)
        assert arr.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
        assert request.rows == 2
        assert request.outputs == ((0, False), (1, False))


def test_inputs_are_returned_in_model_order() -> None:
    body = _body(
        {"name": "word", "datatype": "BYTES", "shape": [1, 1], "data": ["hi"]},
        {"name": "num", "datatype": "FP64", "shape": [1, 2], "data": [0.5, 1.5]},
        id="abc",
    )
    request = decode_infer_request(body, None, MIXED)
    assert request.arrays[0].dtype == np.float64
    assert request.arrays[1].dtype == np.object_
    assert request.arrays[1].tolist() == [["hi"]]
    assert request.id == "abc"


def test_requested_outputs_and_binary_flags() -> None:
    body = _body(
        _x(),
        outputs=[{"name": "probabilities"}, {"name": "label", "parameters": {"binary_data": True}}],
    )
    assert decode_infer_request(body, None, IRIS).outputs == ((1, False), (0, True))
    body = _body(_x(), parameters={"binary_data_output": True})
    assert decode_infer_request(body, None, IRIS).outputs == ((0, True), (1, True))


def test_binary_input() -> None:
    values = np.arange(8, dtype="<f4")
    header = _body(_x(data=None, parameters={"binary_data_size": values.nbytes}))
    request = decode_infer_request(header + values.tobytes(), len(header), IRIS)
    assert request.arrays[0].tolist() == values.reshape(2, 4).tolist()


def test_binary_bytes_input() -> None:
    blob = b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in ["x", "héllo"])
    header = _body(
        {"name": "num", "datatype": "FP64", "shape": [2, 2], "data": [1, 2, 3, 4]},
        {
            "name": "word",
            "datatype": "BYTES",
            "shape": [2, 1],
            "parameters": {"binary_data_size": len(blob)},
        },
    )
    request = decode_infer_request(header + blob, len(header), MIXED)
    assert request.arrays[1].tolist() == [["x"], ["héllo"]]


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("BOOL", [True, False], np.bool_),
        ("INT8", [-128, 127], np.int8),
        ("UINT8", [0, 255], np.uint8),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("FP16", [0.5, 1], np.float16),
        ("FP64", [1, 2.5], np.float64),
    ],
)
def test_datatypes(datatype: str, data: list[Any], expected: type) -> None:
    rules = ModelRules(inputs=(TensorSpec("t", datatype, (-1,)),), outputs=("o",))
    body = _body({"name": "t", "datatype": datatype, "shape": [2], "data": data})
    (arr,) = decode_infer_request(body, None, rules).arrays
    assert arr.dtype == expected
    assert arr.tolist() == data


@pytest.mark.parametrize(
    ("body", "header_length", "words"),
    [
        (b"{", None, ["not valid JSON"]),
        (_body(_x(name="nope")), None, ["'nope'", "X (FP32 [-1, 4])"]),
        (_body(_x(shape=[3, 4])), None, ["needs 12 values", "has 8"]),
        (_body(_x(shape=[2, 3])), None, ["[2, 3]", "[-1, 4]"]),
        (_body(_x(datatype="FP64")), None, ["FP64", "expects FP32"]),
        (_body(_x(data=["a"] * 8)), None, ["strings"]),
        (_body(_x(data=[True] * 8)), None, ["true/false"]),
        (_body(_x(shape="2,4")), None, ["non-negative integers"]),
        (_body(_x(), _x()), None, ["more than once"]),
        (_body(_x(), outputs=[{"name": "p"}]), None, ["'p'"]),
        (_body(_x()) + b"\0\0\0\0", len(_body(_x())), ["4 bytes", "no input claims"]),
        (_body(_x()), 0, ["Inference-Header-Content-Length is 0"]),
    ],
)
def test_bad_requests(body: bytes, header_length: int | None, words: list[str]) -> None:
    with pytest.raises(RequestError) as caught:
        decode_infer_request(body, header_length, IRIS)
    assert caught.value.status == 400
    for word in words:
        assert word in caught.value.message


def test_integer_rules() -> None:
    rules = ModelRules(inputs=(TensorSpec("t", "INT16", (-1,)),), outputs=("o",))
    for data, word in (([1.5, 2], "non-integer"), ([1, 40000], "[-32768, 32767]")):
        with pytest.raises(RequestError, match=word.replace("[", r"\[").replace("]", r"\]")):
            decode_infer_request(
                _body({"name": "t", "datatype": "INT16", "shape": [2], "data": data}), None, rules
            )
    body = _body({"name": "t", "datatype": "INT16", "shape": [2], "data": [1.0, 2.0]})
    assert decode_infer_request(body, None, rules).arrays[0].tolist() == [1, 2]


def test_non_finite_values_follow_the_rules() -> None:
    blob = np.array([np.nan] + [0.0] * 7, dtype="<f4").tobytes()
    header = _body(_x(data=None, parameters={"binary_data_size": len(blob)}))
    with pytest.raises(RequestError, match="NaN or Inf"):
        decode_infer_request(header + blob, len(header), IRIS)
    lenient = ModelRules(inputs=IRIS.inputs, outputs=IRIS.outputs, allow_non_finite=True)
    (arr,) = decode_infer_request(header + blob, len(header), lenient).arrays
    assert np.isnan(arr[0, 0])


def test_rows_are_minus_one_when_inputs_disagree() -> None:
    body = _body(
        {"name": "num", "datatype": "FP64", "shape": [2, 2], "data": [1, 2, 3, 4]},
        {"name": "word", "datatype": "BYTES", "shape": [1, 1], "data": ["a"]},
    )
    assert decode_infer_request(body, None, MIXED).rows == -1


def test_encode_json_response() -> None:
    label = np.array([0, 2], dtype=np.int64)
    proba = np.array([[0.5, 0.25, 0.25], [0, 0, 1]], dtype=np.float32)
    payload, header_length = encode_infer_response(
        model_name="iris",
        model_version="v1",
        request_id="7",
        outputs=[("label", label, False), ("probabilities", proba, False)],
    )
    assert header_length is None
    assert orjson.loads(payload) == {
        "model_name": "iris",
        "model_version": "v1",
        "id": "7",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 2]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [2, 3],
                "data": [0.5, 0.25, 0.25, 0.0, 0.0, 1.0],
            },
        ],
    }


def test_encode_binary_response() -> None:
    words = np.array(["ab", "c"], dtype=np.object_)
    values = np.array([1.5, 2.5], dtype=np.float64)
    payload, header_length = encode_infer_response(
        model_name="m",
        model_version="",
        request_id=None,
        outputs=[("w", words, True), ("v", values, True)],
    )
    assert header_length is not None
    header = orjson.loads(payload[:header_length])
    assert "model_version" not in header
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [4 + 2 + 4 + 1, 16]
    blob = payload[header_length:]
    assert blob[:11] == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert np.frombuffer(blob[11:], dtype="<f8").tolist() == [1.5, 2.5]


def test_v1_single_input() -> None:
    request = decode_v1_request(b'{"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}', IRIS)
    assert request.arrays[0].shape == (2, 4)
    assert request.rows == 2
    with pytest.raises(RequestError, match="instances"):
        decode_v1_request(b'{"inputs": []}', IRIS)


def test_v1_several_inputs_by_name() -> None:
    body = orjson.dumps({"instances": [{"num": [1, 2], "word": "a"}, {"num": [3, 4], "word": "b"}]})
    request = decode_v1_request(body, MIXED)
    assert request.arrays[0].shape == (2, 2)
    assert request.arrays[1].tolist() == [["a"], ["b"]]
    with pytest.raises(RequestError, match="keys"):
        decode_v1_request(b'{"instances": [[1, 2]]}', MIXED)


def test_v1_response_uses_label_output() -> None:
    outputs = [np.array([1, 0]), np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)]
    assert orjson.loads(encode_v1_response(IRIS, outputs)) == {"predictions": [1, 0]}


@contextmanager
def _peak_allocation() -> Iterator[list[int]]:
    """Bytes allocated at the peak of the block (NumPy's too), in the list it yields."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_a_bytes_shape_larger_than_its_binary_data_is_refused_before_allocating() -> None:
    blob = struct.pack("<I", 3) + b"red"
    header = _body(
        {"name": "word", "datatype": "BYTES", "shape": [2_000_000, 1],
         "parameters": {"binary_data_size": len(blob)}},
        {"name": "num", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]},
    )  # fmt: skip
    with _peak_allocation() as peak, pytest.raises(RequestError) as caught:
        decode_infer_request(header + blob, len(header), MIXED)
    assert caught.value.status == 400
    assert "at least 4 bytes" in caught.value.message
    assert peak[0] < 100_000


def test_a_request_beyond_the_element_cap_is_a_413_before_anything_is_built() -> None:
    capped = ModelRules(inputs=MIXED.inputs, outputs=MIXED.outputs, max_elements=10)
    json_body = _body(
        {"name": "num", "datatype": "FP64", "shape": [4, 2], "data": list(range(8))},
        {"name": "word", "datatype": "BYTES", "shape": [3, 1], "data": ["a", "b", "c"]},
    )
    blob = struct.pack("<I", 0) * 20
    binary = _body(
        {"name": "word", "datatype": "BYTES", "shape": [20, 1],
         "parameters": {"binary_data_size": len(blob)}},
    ) + blob  # fmt: skip
    v1 = orjson.dumps({"instances": [{"num": [1, 2], "word": "a"}] * 4})
    refusals = []
    with pytest.raises(RequestError) as caught:
        decode_infer_request(json_body, None, capped)
    refusals.append(caught.value)
    with pytest.raises(RequestError) as caught:
        decode_infer_request(binary, len(binary) - len(blob), capped)
    refusals.append(caught.value)
    with pytest.raises(RequestError) as caught:
        decode_v1_request(v1, capped)
    refusals.append(caught.value)
    for refusal in refusals:
        assert refusal.status == 413
        assert "--max-request-elements" in refusal.message
    assert decode_infer_request(json_body, None, MIXED).rows == -1


def test_json_data_is_counted_before_any_array_is_built() -> None:
    spec = IRIS.inputs[0]
    data = [0.5] * 200_000
    with _peak_allocation() as peak, pytest.raises(RequestError, match="needs 4 values"):
        decode_json_data(spec, data, [1, 4], allow_non_finite=False)
    assert peak[0] < 100_000


def test_nested_and_ragged_bytes_data_are_refused_with_reasons() -> None:
    word = MIXED.inputs[1]
    deep: Any = "a"
    for _ in range(5000):  # beyond the recursion limit
        deep = [deep]
    with pytest.raises(RequestError, match="nested deeper than the 2 dimension"):
        decode_json_data(word, deep, [1, 1], allow_non_finite=False)
    with pytest.raises(RequestError, match="not a regular nested list of strings"):
        decode_json_data(word, [["a"], ["b", "c"], []], [3, 1], allow_non_finite=False)
    with pytest.raises(RequestError, match="not a regular nested list of strings"):
        decode_json_data(word, [["a", "b"], "c"], None, allow_non_finite=False)
    nested = decode_json_data(word, [["a"], ["b"]], None, allow_non_finite=False)
    assert nested.tolist() == [["a"], ["b"]]


def test_an_id_that_is_not_a_string_or_number_is_refused() -> None:
    with pytest.raises(RequestError, match='"id" must be a string'):
        decode_infer_request(_body(_x(), id=[[["x"]]]), None, IRIS)
    assert decode_infer_request(_body(_x(), id="r-1"), None, IRIS).id == "r-1"
