"""Admission as a pure value: weights, and the requests and bytes a worker may hold."""

from __future__ import annotations

import pytest

from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.admission import (
    BYTES_BINARY_WEIGHT,
    JSON_WEIGHT,
    NUMERIC_BINARY_WEIGHT,
    Admission,
    Growth,
    Refusal,
    binary_weight,
    request_weight,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("body", "json_bytes", "per_binary_byte", "weight"),
    [
        (1000, None, 2, 1000 * JSON_WEIGHT),  # a JSON body
        (1000, 100, 2, 100 * JSON_WEIGHT + 900 * 2),  # JSON header + tensors
        (1000, 100, 16, 100 * JSON_WEIGHT + 900 * 16),  # ... of a model with BYTES inputs
        (1000, 5000, 2, 1000 * JSON_WEIGHT),  # a header longer than the body: all JSON
        (0, None, 2, 0),
    ],
)
def test_request_weight(
    body: int, json_bytes: int | None, per_binary_byte: int, weight: int
) -> None:
    assert request_weight(body, json_bytes=json_bytes, binary_weight=per_binary_byte) == weight


def test_binary_data_weighs_more_for_models_with_bytes_inputs() -> None:
    numeric = (TensorSpec("x", "FP32", (-1, 4)), TensorSpec("n", "INT64", (-1,)))
    assert binary_weight(numeric) == NUMERIC_BINARY_WEIGHT
    assert binary_weight((*numeric, TensorSpec("s", "BYTES", (-1, 1)))) == BYTES_BINARY_WEIGHT


def test_requests_are_admitted_until_either_limit_and_leaving_frees_both() -> None:
    admission = Admission(max_requests=3, max_bytes=100)
    assert admission.enter(60) is None
    assert admission.enter(40) is None
    assert admission.enter(1) is Refusal.FULL
    assert admission.enter(0) is None  # weightless requests still fit ...
    assert admission.enter(0) is Refusal.BUSY  # ... up to the number of requests
    admission.leave(60)
    assert (admission.requests, admission.bytes) == (2, 40)
    assert admission.enter(60) is None


def test_a_request_heavier_than_the_whole_budget_can_never_enter() -> None:
    admission = Admission(max_requests=3, max_bytes=100)
    assert admission.enter(101) is Refusal.TOO_HEAVY
    assert (admission.requests, admission.bytes) == (0, 0)


def test_a_chunked_body_grows_its_weight_within_the_budget() -> None:
    admission = Admission(max_requests=3, max_bytes=100 * JSON_WEIGHT)
    assert admission.enter(30 * JSON_WEIGHT) is None
    assert admission.enter(0) is None
    growth = Growth(admission, json_bytes=None, binary_weight=NUMERIC_BINARY_WEIGHT)
    assert growth.admit(50) is None
    assert admission.bytes == 80 * JSON_WEIGHT
    assert growth.admit(80) is Refusal.FULL  # 30 + 80 > 100, though alone it would fit
    assert growth.admit(101) is Refusal.TOO_HEAVY
    assert (growth.weight, admission.bytes) == (50 * JSON_WEIGHT, 80 * JSON_WEIGHT)
    assert growth.admit(70) is None
    admission.leave(growth.weight)
    admission.leave(30 * JSON_WEIGHT)
    assert (admission.requests, admission.bytes) == (0, 0)
