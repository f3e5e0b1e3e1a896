"""Protocol adapters: Open Inference Protocol v2 (JSON, binary tensor data) and KServe v1.

The seam between HTTP and the data plane. An adapter says which body limit its
requests have, decodes a body into the data plane's `InferRequest` and encodes the
model's outputs as the answer's body and headers; the codec functions (`codec.py`)
do the work. The routing table (`routes.py`) gives each inference path its
`Adapters` once at start-up: v2 for `/v2/models/NAME[/versions/V]/infer`, v1 for
`/v1/models/NAME:predict`. That is the one place that tells v1 from v2; nothing
downstream asks again. Per request, the exchange (`exchange.py`) takes the binary
adapter of the pair when the request has `Inference-Header-Content-Length`.

Adapters are built once from the validated settings and hold no per-request state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mlmodel_runtime.serve.asgi import JSON_CONTENT, Header
from mlmodel_runtime.serve.batching import Arrays
from mlmodel_runtime.serve.codec import (
    InferRequest,
    ModelRules,
    decode_infer_request,
    decode_v1_request,
    encode_infer_response,
    encode_v1_response,
)
from mlmodel_runtime.serve.config import ServeConfig

_CONTENT_LENGTH: Final = b"content-length"
_HEADER_LENGTH: Final = b"inference-header-content-length"
_BINARY_CONTENT: Final[Header] = (b"content-type", b"application/octet-stream")
BODY_FLAG: Final = "--max-body-bytes"

# body, the JSON header's length (binary adapters only, else None), the model's rules ->
# the request as arrays in model input order; `RequestError` says what is wrong.
Decode = Callable[[bytes | bytearray, int | None, ModelRules], InferRequest]
# rules, request, the model's outputs, extra headers (they go last) -> the body and
# headers of the 200 answer.
Answer = tuple[bytes, list[Header]]
Encode = Callable[[ModelRules, InferRequest, Arrays, tuple[Header, ...]], Answer]


@dataclass(frozen=True, slots=True)
class Adapter:
    """How one wire format of inference requests maps onto the data plane.

    A record of two functions rather than a class to subclass: the exchange calls
    them on every request, and the v2 ones are the codec's own functions, with no
    layer between.
    """

    name: str
    decode: Decode
    encode: Encode
    limit: int  # largest body, bytes (413 beyond)
    limit_flag: str  # the flag that sets it, named in the 413
    # The body is a JSON header followed by raw tensors (`Inference-Header-Content-
    # Length` gives the header's length): its JSON part is weighed and limited as
    # JSON, the whole body by --max-body-bytes.
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Adapters:
    """The adapters of one inference path: `json` for a plain body, `binary` for a body
    with `Inference-Header-Content-Length`."""

    json: Adapter
    binary: Adapter


def v2_adapters(config: ServeConfig) -> Adapters:
    """`POST .../infer`, as JSON or with the binary tensor data extension (a JSON header,
    then tensors). JSON bodies are limited as JSON, binary bodies by --max-body-bytes.
    Either may ask for binary outputs (`binary_data_output`), so both encode alike."""
    json_limit, json_flag = config.json_limit
    encode = _v2_encoder(model_name=config.name, model_version=config.version)
    return Adapters(
        json=Adapter("v2 JSON", decode_infer_request, encode, json_limit, json_flag),
        binary=Adapter(
            "v2 binary", decode_infer_request, encode, config.max_body_bytes, BODY_FLAG, True
        ),
    )


def v1_adapters(config: ServeConfig) -> Adapters:
    """`POST /v1/models/NAME:predict`: `{"instances": [...]}` -> `{"predictions": [...]}`.
    KServe v1 has no binary form: `Inference-Header-Content-Length` changes nothing."""
    json_limit, json_flag = config.json_limit
    v1 = Adapter("KServe v1", _decode_v1, _encode_v1, json_limit, json_flag)
    return Adapters(json=v1, binary=v1)


def _v2_encoder(*, model_name: str, model_version: str) -> Encode:
    """The v2 `Encode` of a model: its name and version are in every answer. A closure,
    not a `partial` with keywords, which costs several times more per call."""

    def encode(
        rules: ModelRules, request: InferRequest, outputs: Arrays, extra: tuple[Header, ...]
    ) -> Answer:
        names = rules.outputs
        payload, header_length = encode_infer_response(
            model_name=model_name,
            model_version=model_version,
            request_id=request.id,
            outputs=[(names[i], outputs[i], binary) for i, binary in request.outputs],
        )
        length = (_CONTENT_LENGTH, b"%d" % len(payload))
        if header_length is None:
            return payload, [JSON_CONTENT, length, *extra]
        return payload, [_BINARY_CONTENT, length, (_HEADER_LENGTH, b"%d" % header_length), *extra]

    return encode


def _decode_v1(body: bytes | bytearray, json_length: int | None, rules: ModelRules) -> InferRequest:
    return decode_v1_request(body, rules)


def _encode_v1(
    rules: ModelRules, request: InferRequest, outputs: Arrays, extra: tuple[Header, ...]
) -> Answer:
    payload = encode_v1_response(rules, outputs)
    return payload, [JSON_CONTENT, (_CONTENT_LENGTH, b"%d" % len(payload)), *extra]
