"""Open Inference Protocol gRPC codec: `ModelInferRequest` <-> NumPy arrays.

Pure functions, as `codec.py` is for REST, and with its rules: the same datatype,
shape, element-count, range and finiteness checks (its helpers are called, not
copied), the same `InferRequest` for the data plane, and `RequestError`s whose
messages say what was wrong. A request's tensors come either as typed `contents`
(one repeated field per datatype; FP16 has none) or, for all inputs at once, as
`raw_input_contents` (little-endian row-major bytes, decoded by the binary tensor
data extension's decoder). The answer mirrors the request: raw outputs for a raw
request, or when an output has no typed field (FP16); typed contents otherwise,
which tools that print messages (grpcurl) show as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from mlmodel_runtime.datatypes import V2_TO_NUMPY, v2_datatype_of
from mlmodel_runtime.modeldir import TensorSpec
from mlmodel_runtime.serve.codec import (
    InferRequest,
    ModelRules,
    RequestError,
    _binary_blob,
    _check_finite,
    _names,
    assembled,
    decode_binary_data,
    input_shape,
    input_slot,
)
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb

# The typed field of InferTensorContents that carries each datatype.
CONTENTS_FIELD: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# The NumPy type of each typed field's values, before the cast to the datatype.
_FIELD_DTYPE: Final[dict[str, np.dtype[Any]]] = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}
_FLOATS: Final = frozenset({"FP16", "FP32", "FP64"})


def parse_request(message: bytes) -> pb.ModelInferRequest:
    try:
        return pb.ModelInferRequest.FromString(message)
    except Exception:  # protobuf's DecodeError, whichever backend raised it
        raise RequestError("the request is not a valid ModelInferRequest message") from None


def decode_model_infer(request: pb.ModelInferRequest, rules: ModelRules) -> InferRequest:
    """A ModelInferRequest as arrays in model input order and the outputs to return."""
    inputs = request.inputs
    if not inputs:
        raise RequestError(
            f"the request has no inputs; the model's inputs are {_names(rules.inputs)}"
        )
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise RequestError(
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs: it carries "
            "every input, in the order of `inputs`, or none"
        )
    arrays: list[np.ndarray[Any, Any] | None] = [None] * len(rules.inputs)
    elements = 0
    for i, tensor in enumerate(inputs):
        name = tensor.name
        pos, spec = input_slot(rules, arrays, name)
        shape, elements = input_shape(rules, spec, tensor.datatype, list(tensor.shape), elements)
        if raw:
            if tensor.HasField("contents"):
                raise RequestError(
                    f"input '{name}' has contents, and the request has raw_input_contents: "
                    "use one or the other for all inputs"
                )
            arrays[pos] = decode_binary_data(
                spec, memoryview(raw[i]), shape, allow_non_finite=rules.allow_non_finite
            )
        else:
            arrays[pos] = _typed(spec, tensor.contents, shape, rules.allow_non_finite)
    return assembled(rules, arrays, _requested_outputs(request, rules), request.id or None)


def _typed(
    spec: TensorSpec, contents: pb.InferTensorContents, shape: Sequence[int], allow_non_finite: bool
) -> np.ndarray[Any, Any]:
    datatype = spec.datatype
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise RequestError(
            f"input '{spec.name}' is {datatype}, which has no typed contents field: send it "
            "in raw_input_contents"
        )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise RequestError(
            f"input '{spec.name}' has shape [{', '.join(map(str, shape))}], which needs {count} "
            f"values, but its contents.{field} has {len(values)}"
        )
    if datatype == "BYTES":
        strings = np.empty(count, dtype=np.object_)
        try:
            strings[:] = [value.decode() for value in values]
        except UnicodeDecodeError:
            raise RequestError(
                f"input '{spec.name}' has a BYTES element that is not valid UTF-8"
            ) from None
        return strings.reshape(shape)
    arr = np.array(values, dtype=_FIELD_DTYPE[field])
    target = V2_TO_NUMPY[datatype]
    if arr.dtype != target:  # INT8/16, UINT8/16 travel in 32-bit fields
        info = np.iinfo(target)  # type: ignore[type-var]
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise RequestError(
                f"input '{spec.name}' is {datatype}: values must lie in "
                f"[{info.min}, {info.max}], got {arr.min()}..{arr.max()}"
            )
        arr = arr.astype(target)
    if datatype in _FLOATS and not allow_non_finite:
        _check_finite(spec, arr)
    return arr.reshape(shape)


def _requested_outputs(
    request: pb.ModelInferRequest, rules: ModelRules
) -> tuple[tuple[int, bool], ...]:
    """(output index, raw) pairs: raw for a raw request; FP16 outputs are raw anyway."""
    raw = bool(request.raw_input_contents)
    if not request.outputs:
        return rules.all_outputs_binary if raw else rules.all_outputs_json
    chosen: list[tuple[int, bool]] = []
    for item in request.outputs:
        index = rules.output_index.get(item.name)
        if index is None:
            raise RequestError(
                f"unknown output name {item.name!r}; the model's outputs are {list(rules.outputs)}"
            )
        chosen.append((index, raw))
    return tuple(chosen)


def encode_model_infer(
    *,
    model_name: str,
    model_version: str,
    request_id: Any,
    outputs: Sequence[tuple[str, np.ndarray[Any, Any], bool]],
) -> bytes:
    """The serialized ModelInferResponse. `raw_output_contents` carries every output or
    none, so one output that must be raw (FP16) makes them all raw."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version)
    if request_id is not None:
        response.id = request_id
    datatypes = [v2_datatype_of(arr.dtype) for _, arr, _ in outputs]
    raw = any(
        binary or datatype not in CONTENTS_FIELD
        for (_, _, binary), datatype in zip(outputs, datatypes, strict=True)
    )
    for (name, arr, _), datatype in zip(outputs, datatypes, strict=True):
        tensor = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        if raw:
            response.raw_output_contents.append(_binary_blob(arr))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(
                v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1).tolist()
            )
        else:
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(arr.reshape(-1).tolist())
    return response.SerializeToString()


def tensor_metadata(specs: Sequence[TensorSpec]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=s.name, datatype=s.datatype, shape=s.shape)
        for s in specs
    ]
