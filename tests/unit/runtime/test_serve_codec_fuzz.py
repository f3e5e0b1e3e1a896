"""Malformed requests generated at random from fixed seeds.

The codec must answer every one with a `RequestError` (a 4xx naming the problem):
any other exception is a 500, which the canary analysis counts against the model.
What it does accept must come out as arrays the model takes, and its answer must
encode. A seeded generator rather than hypothesis (not installed): failures name
the seed and case, so they replay exactly.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import numpy as np
import orjson
import pytest

from mlmodel_runtime.datatypes import V2_TO_NUMPY
from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.codec import (
    InferRequest,
    ModelRules,
    RequestError,
    decode_infer_request,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
)

pytestmark = pytest.mark.unit

MODELS = (
    ModelRules(
        inputs=(TensorSpec("X", "FP32", (-1, 4)),),
        outputs=("label", "probabilities"),
        label_output="label",
        max_elements=10_000,
    ),
    ModelRules(
        inputs=(
            TensorSpec("a", "FP32", (-1, 1)),
            TensorSpec("n", "INT64", (-1, 1)),
            TensorSpec("color", "BYTES", (-1, 1)),
        ),
        outputs=("label",),
        max_elements=10_000,
    ),
    ModelRules(inputs=(TensorSpec("s", "BYTES", (-1, 2)),), outputs=("o",), max_elements=10_000),
    ModelRules(inputs=(TensorSpec("u", "UINT64", (-1,)),), outputs=("o",), max_elements=10_000),
    ModelRules(inputs=(TensorSpec("h", "FP16", (2, -1)),), outputs=("o",), max_elements=10_000),
    ModelRules(inputs=(TensorSpec("t", "BOOL", (-1,)),), outputs=("o",), max_elements=10_000),
)
SCALARS: tuple[Any, ...] = (
    0, 1, -1, 3, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, 1e308, 65504.0, 1e39,
    True, False, None, "", "x", "é", "\udcff"[:0], {}, [],
)  # fmt: skip
SHAPES: tuple[Any, ...] = (
    [1, 4], [2, 1], [1, 2], [2, 2], [3], [0, 4], [], [2, 2, 2], [-1, 4], "2", [1.0, 4],
    [True, 4], ["@huge@", 4], [20000, 10000], [5000, 1], None,
)  # fmt: skip
# Integers beyond 64 bits, which orjson does not write: spliced in as text.
HUGE = b"1" + b"0" * 30
DATATYPES = ("FP32", "INT64", "BYTES", "UINT64", "FP16", "BOOL", "INT8", "XX", None, 3)
CASES_PER_SEED = 1500


class Requests:
    """Random request bodies; deep nesting is spliced into the JSON text afterwards,
    because no JSON encoder at hand nests 1000 levels."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._deep: dict[bytes, bytes] = {}

    def scalar(self) -> Any:
        return self.rng.choice(SCALARS)

    def value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth > 3 or roll < 0.45:
            return self.scalar()
        if roll < 0.75:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        if roll < 0.85:
            return self.deep()
        keys = ("name", "datatype", "shape", "data", "x", "color")
        return {self.rng.choice(keys): self.value(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def deep(self) -> str:
        levels = self.rng.choice((2, 40, 998, 1000, 1015))
        leaf = orjson.dumps(self.rng.choice(("red", 1, 1.5, None, [])))
        token = f"@deep{len(self._deep)}@"
        self._deep[orjson.dumps(token)] = b"[" * levels + leaf + b"]" * levels
        return token

    def regular(self, datatype: Any) -> Any:
        """Nested lists of one kind of value, sometimes ragged."""
        leaves: tuple[Any, ...] = (0, 1, -2, 0.5, 2**63 - 1)
        if datatype == "BYTES":
            leaves = ("red", "blue", "", "é")
        elif datatype == "BOOL":
            leaves = (True, False)
        rng = self.rng
        rows = [
            [rng.choice(leaves) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(1, 3))
        ]
        return rows if self.rng.random() < 0.5 else [v for row in rows for v in row]

    def item(self, rules: ModelRules) -> Any:
        spec = self.rng.choice(rules.inputs)
        item: dict[str, Any] = {"name": self.rng.choice((spec.name, spec.name, "zz", 3))}
        if self.rng.random() < 0.9:
            item["datatype"] = self.rng.choice((spec.datatype,) * 5 + DATATYPES)
        if self.rng.random() < 0.9:
            item["shape"] = self.rng.choice(SHAPES)
        roll = self.rng.random()
        if roll < 0.35:
            item["data"] = self.regular(spec.datatype)
        elif roll < 0.6:
            item["data"] = self.value()
        elif roll < 0.7:
            item["data"] = self.deep()
        elif roll < 0.9:
            size = self.rng.choice((0, 4, 7, 8, 16, 32, -1, "8", "@huge@", True))
            item["parameters"] = self.rng.choice(({"binary_data_size": size}, [], {"x": 1}))
        if self.rng.random() < 0.05:
            return self.scalar()
        return item

    def v2(self, rules: ModelRules) -> tuple[bytes, int | None]:
        doc: Any = {"inputs": [self.item(rules) for _ in range(self.rng.randint(0, 4))]}
        if self.rng.random() < 0.2:
            doc["outputs"] = self.rng.choice(
                ([{"name": rules.outputs[0]}], "x", [1], [{"name": "zz"}],
                 [{"name": rules.outputs[0], "parameters": {"binary_data": True}}])
            )  # fmt: skip
        if self.rng.random() < 0.2:
            doc["parameters"] = self.rng.choice(([], {"binary_data_output": True}, None))
        if self.rng.random() < 0.2:
            doc["id"] = self.value()
        if self.rng.random() < 0.05:
            doc = self.value()
        body = self.encode(doc)
        if self.rng.random() < 0.6:
            return body, None
        words = [self.rng.choice((b"", b"red", b"\xff\xfe", b"abc")) for _ in range(4)]
        blob = b"".join(struct.pack("<I", len(w)) + w for w in words)
        blob += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 24)))
        length = self.rng.choice((len(body), len(body), len(body), 0, len(body) + 9, -1))
        return body + blob, length

    def v1(self, rules: ModelRules) -> bytes:
        names = [spec.name for spec in rules.inputs]
        rows = self.rng.randint(1, 3)
        instances = self.rng.choice(
            (
                [self.value() for _ in range(rows)],
                [{name: self.value() for name in names} for _ in range(rows)],
                [{name: self.regular(spec.datatype) for name, spec in
                  zip(names, rules.inputs, strict=True)} for _ in range(rows)],
                self.regular(rules.inputs[0].datatype),
                [self.deep()],
                self.value(),
            )
        )  # fmt: skip
        return self.encode(self.rng.choice(({"instances": instances}, instances, {"x": 1})))

    def encode(self, doc: Any) -> bytes:
        text = orjson.dumps(doc).replace(b'"@huge@"', HUGE)
        for token, nested in self._deep.items():
            text = text.replace(token, nested)
        self._deep.clear()
        return text


def _check_accepted(rules: ModelRules, request: InferRequest, v1: bool) -> None:
    """What the codec lets through has the model's datatypes and shapes, and encodes."""
    for spec, arr in zip(rules.inputs, request.arrays, strict=True):
        assert arr.dtype == V2_TO_NUMPY[spec.datatype]
        assert arr.ndim == len(spec.shape)
        assert all(d in (-1, n) for d, n in zip(spec.shape, arr.shape, strict=True))
    outputs = [np.zeros((max(request.rows, 1), 2), np.float32) for _ in rules.outputs]
    if v1:
        encode_v1_response(rules, outputs)
    else:
        encode_infer_response(
            model_name="m",
            model_version="1",
            request_id=request.id,
            outputs=[(rules.outputs[i], outputs[i], binary) for i, binary in request.outputs],
        )


@pytest.mark.parametrize("seed", range(4))
def test_random_malformed_requests_only_ever_raise_request_errors(seed: int) -> None:
    requests = Requests(seed)
    failures = []
    for case in range(CASES_PER_SEED):
        rules = requests.rng.choice(MODELS)
        v1 = requests.rng.random() < 0.4
        if v1:
            body, header_length = requests.v1(rules), None
        else:
            body, header_length = requests.v2(rules)
        try:
            if v1:
                request = decode_v1_request(body, rules)
            else:
                request = decode_infer_request(body, header_length, rules)
            _check_accepted(rules, request, v1)
        except RequestError as exc:
            if exc.status not in (400, 413) or not exc.message:
                failures.append(f"seed {seed} case {case}: {exc.status} {exc.message!r}")
        except Exception as exc:
            failures.append(f"seed {seed} case {case}: {exc!r} for {body[:160]!r}")
    assert not failures, f"{len(failures)} failures, e.g.\n" + "\n".join(failures[:5])
