"""Admission of inference requests: what a request weighs, and whether one more fits.

The data plane (`dataplane.py`) holds one `Admission` per worker; the exchange of
each inference request (`exchange.py`) calls `enter` before it reads the body and
`leave` once the request is answered. Everything runs on the event loop, so plain
integers need no lock. Two things are bounded per worker: requests in flight
(`--max-concurrent-requests`) and the memory they may take (`--max-inflight-bytes`).

Memory is bounded by weight, not by raw body size, because decoding multiplies it.
The weights are upper bounds measured with tracemalloc on adversarial bodies
(`bench/abuse_bench.py` measures them again as process RSS):

- JSON: `orjson.loads` alone takes up to 36 times the body (4 MiB of `[{},{},...]`;
  plain numbers take 15-20 times), then the arrays are built next to it.
- Binary numeric tensors are used in place (`np.frombuffer`); batching copies them
  once more when it merges requests.
- Binary BYTES elements become Python strings (up to 10 times their 4-byte length
  prefix plus content, for 2-byte strings) and ONNX Runtime copies them again into
  32-byte `std::string`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from mlmodel_runtime.modeldir import TensorSpec

JSON_WEIGHT: Final = 40
NUMERIC_BINARY_WEIGHT: Final = 2
BYTES_BINARY_WEIGHT: Final = 16


def binary_weight(inputs: Iterable[TensorSpec]) -> int:
    """Weight of a byte of binary tensor data for a model with these inputs."""
    if any(spec.datatype == "BYTES" for spec in inputs):
        return BYTES_BINARY_WEIGHT
    return NUMERIC_BINARY_WEIGHT


def request_weight(body_bytes: int, *, json_bytes: int | None, binary_weight: int) -> int:
    """The memory a request may take: its JSON part weighed as JSON, the rest as binary.

    `json_bytes` is the length of the JSON header of a binary body, None for a JSON body.

    >>> request_weight(1000, json_bytes=None, binary_weight=2)  # plain JSON
    40000
    >>> request_weight(1000, json_bytes=100, binary_weight=2)  # JSON header + tensors
    5800
    """
    if json_bytes is None or json_bytes >= body_bytes:
        return body_bytes * JSON_WEIGHT
    return json_bytes * JSON_WEIGHT + (body_bytes - json_bytes) * binary_weight


def grpc_weight(message_bytes: int, *, binary_weight: int) -> int:
    """The memory a gRPC ModelInfer request may take: protobuf parses the whole message
    into memory of its own (about its size), then the tensors are made from it as
    binary tensor data is (`binary_weight`).

    >>> grpc_weight(1000, binary_weight=2)
    3000
    """
    return message_bytes * (binary_weight + 1)


class Refusal(Enum):
    """Why a request was not admitted."""

    TOO_HEAVY = "weighs more than the whole in-flight budget"  # can never run: 413
    BUSY = "too many requests in flight"  # 503
    FULL = "in-flight budget exhausted"  # 503
    QUEUED = "the model's queue is full"  # 503, --max-queued-requests (batching.py)


@dataclass(slots=True)
class Admission:
    """Requests and weighted bytes in flight in one worker, against their limits."""

    max_requests: int
    max_bytes: int
    requests: int = 0
    bytes: int = 0

    def enter(self, weight: int) -> Refusal | None:
        """Admit a request of this weight (held until `leave`), or say why not."""
        if weight > self.max_bytes:
            return Refusal.TOO_HEAVY
        if self.requests >= self.max_requests:
            return Refusal.BUSY
        if self.bytes + weight > self.max_bytes:
            return Refusal.FULL
        self.requests += 1
        self.bytes += weight
        return None

    def leave(self, weight: int) -> None:
        self.requests -= 1
        self.bytes -= weight


@dataclass(slots=True)
class Growth:
    """The weight held by an admitted request whose body length was not declared
    (chunked), growing as its chunks arrive."""

    admission: Admission
    json_bytes: int | None
    binary_weight: int
    weight: int = 0

    def admit(self, size: int) -> Refusal | None:
        """Hold the weight of `size` body bytes, or say why not (the old weight stays held)."""
        weight = request_weight(size, json_bytes=self.json_bytes, binary_weight=self.binary_weight)
        extra = weight - self.weight
        budget = self.admission
        if weight > budget.max_bytes:
            return Refusal.TOO_HEAVY
        if budget.bytes + extra > budget.max_bytes:
            return Refusal.FULL
        budget.bytes += extra
        self.weight = weight
        return None
