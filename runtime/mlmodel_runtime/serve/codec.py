"""Open Inference Protocol (v2) and KServe v1 codec: request bytes <-> NumPy arrays.

Pure functions, no I/O: the protocol adapters (`adapters.py`) hand them a body and
the model's input rules and gets arrays in model input order, or a `RequestError`
whose message says what was wrong and what was expected. Responses are encoded
with orjson straight from NumPy arrays. Covers JSON `data` (flat or nested) for
every v2 datatype and the binary tensor data extension
(`Inference-Header-Content-Length`, `binary_data_size`, `binary_data_output`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from mlmodel_runtime.datatypes import V2_TO_NUMPY, v2_datatype_of
from mlmodel_runtime.modeldir import TensorSpec

_INT_TYPES: Final = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
_FLOAT_TYPES: Final = frozenset({"FP16", "FP32", "FP64"})
_NARROW_FLOATS: Final = frozenset({"FP16", "FP32"})
# What NumPy infers from JSON values that each v2 datatype may take.
_ACCEPTED_KINDS: Final[dict[str, str]] = {
    "BOOL": "b",
    **dict.fromkeys(_INT_TYPES, "iu"),
    **dict.fromkeys(_FLOAT_TYPES, "iuf"),
}
_WHAT: Final[dict[str, str]] = {
    "BOOL": "true/false values",
    **dict.fromkeys(_INT_TYPES, "integers"),
    **dict.fromkeys(_FLOAT_TYPES, "numbers"),
}
_LE_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    name: dtype.newbyteorder("<") for name, dtype in V2_TO_NUMPY.items() if name != "BYTES"
}
_NUMPY_OPTS: Final = orjson.OPT_SERIALIZE_NUMPY
_LENGTH = struct.Struct("<I")


class RequestError(Exception):
    """A request the server cannot answer; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ModelRules:
    """What a request must match: the model's inputs and outputs, computed once at start-up."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    allow_non_finite: bool = False
    label_output: str = ""
    # Most tensor elements in one request, all inputs together (--max-request-elements).
    max_elements: int = 4_194_304
    input_index: dict[str, int] = field(init=False, repr=False)
    output_index: dict[str, int] = field(init=False, repr=False)
    all_outputs_json: tuple[tuple[int, bool], ...] = field(init=False, repr=False)
    all_outputs_binary: tuple[tuple[int, bool], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "input_index", {spec.name: i for i, spec in enumerate(self.inputs)})
        set_(self, "output_index", {name: i for i, name in enumerate(self.outputs)})
        set_(self, "all_outputs_json", tuple((i, False) for i in range(len(self.outputs))))
        set_(self, "all_outputs_binary", tuple((i, True) for i in range(len(self.outputs))))


@dataclass(slots=True)
class InferRequest:
    """A decoded request: arrays in model input order and the outputs to return."""

    arrays: list[np.ndarray[Any, Any]]
    # Rows along the first dimension shared by every input, or -1 when they disagree.
    rows: int
    # (output index, as binary) pairs, in the order the response lists them.
    outputs: tuple[tuple[int, bool], ...]
    id: Any = None


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_shape(spec: TensorSpec, shape: Sequence[int]) -> None:
    expected = spec.shape
    if len(shape) == len(expected):
        for got, want in zip(shape, expected, strict=True):
            if want != -1 and got != want:
                break
        else:
            return
    raise RequestError(
        f"input '{spec.name}' has shape {_shape_text(shape)}; the model expects "
        f"{_shape_text(expected)} (-1 is any size)"
    )


def _parse_shape(spec: TensorSpec, raw: Any) -> tuple[int, ...]:
    if type(raw) is list:
        for d in raw:
            if type(d) is not int or d < 0:
                break
        else:
            _check_shape(spec, raw)
            return tuple(raw)
    raise RequestError(
        f"input '{spec.name}' needs 'shape' as a list of non-negative integers, got {raw!r}"
    )


def _check_datatype(spec: TensorSpec, datatype: Any) -> None:
    if datatype != spec.datatype:
        if datatype not in V2_TO_NUMPY:
            raise RequestError(
                f"input '{spec.name}' has unknown datatype {datatype!r}; the model expects "
                f"{spec.datatype} (v2 datatypes: {', '.join(V2_TO_NUMPY)})"
            )
        raise RequestError(
            f"input '{spec.name}' has datatype {datatype}; the model expects {spec.datatype}"
        )


_count: Final = math.prod


def _nesting(spec: TensorSpec, data: Any, max_depth: int) -> tuple[int, ...]:
    """The shape nested lists would have if regular, read along their first elements.

    Cheap (one step per dimension), so counts are checked before anything is built;
    regularity is checked while building. Deeper nesting than the tensor has
    dimensions is refused here, which also keeps every later walk shallow.
    """
    shape: list[int] = []
    probe = data
    while type(probe) is list:
        if len(shape) == max_depth:
            raise RequestError(
                f"input '{spec.name}' data is nested deeper than the {max_depth} dimension(s) "
                f"of {_shape_text(spec.shape)}"
            )
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    return tuple(shape)


def _count_error(spec: TensorSpec, shape: Sequence[int], nested: Sequence[int]) -> RequestError:
    got = math.prod(nested)
    held = f"has {got}" if len(nested) <= 1 else f"is nested as {_shape_text(nested)}"
    return RequestError(
        f"input '{spec.name}' has shape {_shape_text(shape)}, which needs {math.prod(shape)} "
        f"values, but its data {held}"
    )


def _strings(spec: TensorSpec, data: Any, nested: Sequence[int]) -> list[Any]:
    """The strings of regular nested lists of shape `nested`, in row-major order.

    Level by level rather than recursively: no recursion limit to hit, and each
    level is one `extend` per list.
    """
    level: list[Any] = [data]
    for size in nested:
        items: list[Any] = []
        for value in level:
            if type(value) is not list or len(value) != size:
                raise RequestError(
                    f"input '{spec.name}' data is not a regular nested list of strings "
                    f"(rows of different lengths, or lists mixed with strings)"
                )
            items.extend(value)
        level = items
    kinds = set(map(type, level))
    if kinds - {str}:
        other = next(iter(kinds - {str}))
        raise RequestError(
            f"input '{spec.name}' is BYTES: data must be strings, got {other.__name__}"
        )
    return level


def decode_json_data(
    spec: TensorSpec, data: Any, shape: Sequence[int] | None, *, allow_non_finite: bool
) -> np.ndarray[Any, Any]:
    """JSON `data` (flat or nested, row-major) as an array of the spec's datatype.

    With `shape` None the array keeps the nesting of `data` (KServe v1 instances,
    whose outer list is the tensor's first dimension). The number of values is
    checked against the shape before any array is built.
    """
    datatype = spec.datatype
    rank = len(spec.shape) if shape is None else len(shape)
    if not isinstance(data, list) and datatype != "BYTES":
        data = [data]
    nested = _nesting(spec, data, max(rank, 1))
    if shape is not None and math.prod(nested) != math.prod(shape):
        raise _count_error(spec, shape, nested)
    if datatype == "BYTES":
        flat = _strings(spec, data, nested)
        out = np.empty(len(flat), dtype=np.object_)
        out[:] = flat
        return out.reshape(nested if shape is None else shape)
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(
            f"input '{spec.name}' data is not a regular nested list of {_WHAT[datatype]}"
        ) from None
    if arr.dtype.kind == "f" and datatype in _INT_TYPES:
        arr = _integral(spec, data, arr)
    if arr.dtype.kind not in _ACCEPTED_KINDS[datatype]:
        if arr.size == 0:
            arr = arr.astype(V2_TO_NUMPY[datatype])
        else:
            raise RequestError(
                f"input '{spec.name}' is {datatype}: data must be {_WHAT[datatype]}, "
                f"got {_describe_kind(arr)}"
            )
    target = V2_TO_NUMPY[datatype]
    if datatype in _INT_TYPES and arr.size and arr.dtype != target:
        info = np.iinfo(target)  # type: ignore[type-var]
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            raise RequestError(
                f"input '{spec.name}' is {datatype}: values must lie in "
                f"[{info.min}, {info.max}], got {low}..{high}"
            )
    arr = arr.astype(target, copy=False)
    # JSON cannot carry NaN or Inf (orjson refuses them), but a narrower float can
    # overflow to Inf on the cast.
    if datatype in _NARROW_FLOATS and not allow_non_finite:
        _check_finite(spec, arr)
    if shape is None:
        return arr
    return _reshaped(spec, arr, shape)


def _integral(spec: TensorSpec, data: Any, inferred: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Integers that NumPy inferred as floats: a mix beyond int64 (UINT64), or 1.0 for 1."""
    target = V2_TO_NUMPY[spec.datatype]
    try:
        exact = np.array(data, dtype=target)
    except (OverflowError, ValueError, TypeError):
        return inferred
    if not np.array_equal(exact.astype(np.float64), inferred):
        return inferred
    return exact


def _describe_kind(arr: np.ndarray[Any, Any]) -> str:
    kind = arr.dtype.kind
    if kind in "US":
        return "strings"
    if kind == "b":
        return "true/false values"
    if kind == "f":
        return "non-integer numbers"
    if kind in "iu":
        return "integers"
    return "values that are not numbers (or integers out of range)"


def _all_finite(arr: np.ndarray[Any, Any]) -> bool:
    if arr.size <= 256:  # a ufunc costs more than a Python loop over a few values
        return all(map(math.isfinite, arr.ravel().tolist()))
    return bool(np.isfinite(arr).all())


def _check_finite(spec: TensorSpec, arr: np.ndarray[Any, Any]) -> None:
    if not _all_finite(arr):
        raise RequestError(
            f"input '{spec.name}' contains NaN or Inf (or values beyond the range of "
            f"{spec.datatype}); this model takes finite numbers only (start the server with "
            "--allow-non-finite to pass them through)"
        )


def _reshaped(
    spec: TensorSpec, arr: np.ndarray[Any, Any], shape: Sequence[int]
) -> np.ndarray[Any, Any]:
    expected = _count(shape)
    if arr.size != expected:
        raise RequestError(
            f"input '{spec.name}' has shape {_shape_text(shape)}, which needs {expected} "
            f"values, but its data has {arr.size}"
        )
    return arr.reshape(shape)


def decode_binary_data(
    spec: TensorSpec, raw: memoryview, shape: Sequence[int], *, allow_non_finite: bool
) -> np.ndarray[Any, Any]:
    """Binary tensor data: little-endian row-major values; BYTES as 4-byte length + bytes."""
    datatype = spec.datatype
    count = _count(shape)
    if datatype == "BYTES":
        return _binary_strings(spec, raw, shape, count)
    dtype = _LE_DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input '{spec.name}' has shape {_shape_text(shape)} and datatype {datatype}, "
            f"which needs {count * dtype.itemsize} bytes, but binary_data_size is {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if datatype in _FLOAT_TYPES and not allow_non_finite:
        _check_finite(spec, arr)
    return arr


def _binary_strings(
    spec: TensorSpec, raw: memoryview, shape: Sequence[int], count: int
) -> np.ndarray[Any, Any]:
    """BYTES elements, each a 4-byte little-endian length and that many UTF-8 bytes.

    The count comes from the request's shape: it is checked against the bytes that
    are really there before anything is allocated for it.
    """
    end = len(raw)
    if count > end // _LENGTH.size:
        raise RequestError(
            f"input '{spec.name}' has shape {_shape_text(shape)}, {count} BYTES elements, but "
            f"binary_data_size is {end}: each element takes at least {_LENGTH.size} bytes"
        )
    strings: list[str] = []
    append = strings.append
    pos = 0
    for i in range(count):
        if pos + 4 > end:
            raise RequestError(
                f"input '{spec.name}' binary data ends after {i} of {count} BYTES elements"
            )
        (length,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if pos + length > end:
            raise RequestError(f"input '{spec.name}' binary data ends inside BYTES element {i}")
        try:
            append(bytes(raw[pos : pos + length]).decode())
        except UnicodeDecodeError:
            message = f"input '{spec.name}' BYTES element {i} is not valid UTF-8"
            raise RequestError(message) from None
        pos += length
    if pos != end:
        raise RequestError(
            f"input '{spec.name}' binary data has {end - pos} bytes beyond its "
            f"{count} BYTES elements"
        )
    out = np.empty(count, dtype=np.object_)
    out[:] = strings
    return out.reshape(shape)


def _parse_json(body: bytes | bytearray | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None


def _too_many(elements: int, limit: int) -> RequestError:
    return RequestError(
        f"the request has {elements} or more tensor elements; this server takes at most "
        f"{limit} per request (--max-request-elements); send fewer rows per request",
        413,
    )


def _first_rows(arrays: Sequence[np.ndarray[Any, Any]]) -> int:
    first = arrays[0]
    if not first.ndim:
        return -1
    rows = first.shape[0]
    for arr in arrays:
        if not arr.ndim or arr.shape[0] != rows:
            return -1
    return int(rows)


def decode_infer_request(
    body: bytes | bytearray, header_length: int | None, rules: ModelRules
) -> InferRequest:
    """A v2 `POST .../infer` body (JSON, or JSON header + binary tensors) as arrays."""
    binary: memoryview | None = None
    if header_length is None:
        doc = _parse_json(body)
    else:
        if not 0 < header_length <= len(body):
            raise RequestError(
                f"Inference-Header-Content-Length is {header_length}, but the body has "
                f"{len(body)} bytes"
            )
        view = memoryview(body)
        doc = _parse_json(view[:header_length])
        binary = view[header_length:]
    if not isinstance(doc, dict):
        raise RequestError('request body must be a JSON object with "inputs"')
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(
            '"inputs" must be a non-empty list of {"name", "datatype", "shape", "data"}; '
            f"the model's inputs are {_names(rules.inputs)}"
        )
    request_id = doc.get("id")
    if isinstance(request_id, (list, dict)):
        raise RequestError('"id" must be a string')
    specs = rules.inputs
    arrays: list[np.ndarray[Any, Any] | None] = [None] * len(specs)
    offset = 0
    elements = 0
    for item in inputs:
        if not isinstance(item, dict):
            raise RequestError('each element of "inputs" must be a JSON object')
        name = item.get("name")
        pos, spec = input_slot(rules, arrays, name)
        shape, elements = input_shape(
            rules, spec, item.get("datatype"), item.get("shape"), elements
        )
        params = item.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if binary is None:
                raise RequestError(
                    f"input '{name}' has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise RequestError(
                    f"input '{name}' binary_data_size {size!r} does not fit the "
                    f"{len(binary) - offset} bytes left in the body"
                )
            arrays[pos] = decode_binary_data(
                spec,
                binary[offset : offset + size],
                shape,
                allow_non_finite=rules.allow_non_finite,
            )
            offset += size
        else:
            if "data" not in item:
                raise RequestError(f"input '{name}' has neither 'data' nor binary_data_size")
            arrays[pos] = decode_json_data(
                spec, item["data"], shape, allow_non_finite=rules.allow_non_finite
            )
    if binary is not None and offset != len(binary):
        raise RequestError(
            f"the body has {len(binary) - offset} bytes of binary data that no input claims"
        )
    return assembled(rules, arrays, _requested_outputs(doc, rules), request_id)


def input_slot(
    rules: ModelRules, arrays: Sequence[np.ndarray[Any, Any] | None], name: Any
) -> tuple[int, TensorSpec]:
    """Where input `name` goes among the model's inputs (`arrays` holds those decoded so
    far); a RequestError for an unknown or repeated name. Shared by the REST and gRPC
    decoders (`grpc_codec.py`), as the two functions below are."""
    pos = rules.input_index.get(name) if isinstance(name, str) else None
    if pos is None:
        raise RequestError(
            f"unknown input name {name!r}; the model's inputs are {_names(rules.inputs)}"
        )
    if arrays[pos] is not None:
        raise RequestError(f"input '{name}' appears more than once")
    return pos, rules.inputs[pos]


def input_shape(
    rules: ModelRules, spec: TensorSpec, datatype: Any, shape: Any, elements: int
) -> tuple[tuple[int, ...], int]:
    """An input's shape, checked with its datatype against the model, and the elements of
    the request so far with it, checked against --max-request-elements."""
    _check_datatype(spec, datatype)
    parsed = _parse_shape(spec, shape)
    elements += math.prod(parsed)
    if elements > rules.max_elements:
        raise _too_many(elements, rules.max_elements)
    return parsed, elements


def assembled(
    rules: ModelRules,
    arrays: list[np.ndarray[Any, Any] | None],
    outputs: tuple[tuple[int, bool], ...],
    request_id: Any,
) -> InferRequest:
    """The decoded request, once every input of the model is there."""
    specs = rules.inputs
    missing = [spec.name for spec, arr in zip(specs, arrays, strict=True) if arr is None]
    if missing:
        raise RequestError(f"missing input(s) {missing}; the model's inputs are {_names(specs)}")
    complete: list[np.ndarray[Any, Any]] = arrays  # type: ignore[assignment]
    return InferRequest(arrays=complete, rows=_first_rows(complete), outputs=outputs, id=request_id)


def _requested_outputs(doc: dict[str, Any], rules: ModelRules) -> tuple[tuple[int, bool], ...]:
    params = doc.get("parameters")
    binary_default = False
    if isinstance(params, dict):
        binary_default = bool(params.get("binary_data_output", False))
    requested = doc.get("outputs")
    if requested is None:
        return rules.all_outputs_binary if binary_default else rules.all_outputs_json
    if not isinstance(requested, list):
        raise RequestError('"outputs" must be a list of {"name": ...} objects')
    chosen: list[tuple[int, bool]] = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        index = rules.output_index.get(name) if isinstance(name, str) else None
        if index is None:
            raise RequestError(
                f"unknown output name {name!r}; the model's outputs are {list(rules.outputs)}"
            )
        out_params = item.get("parameters")
        binary = binary_default
        if isinstance(out_params, dict) and "binary_data" in out_params:
            binary = bool(out_params["binary_data"])
        chosen.append((index, binary))
    return tuple(chosen)


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(f"{s.name} ({s.datatype} {_shape_text(s.shape)})" for s in specs)


def _json_data(arr: np.ndarray[Any, Any]) -> Any:
    if arr.dtype.kind == "O":
        return [v.decode() if isinstance(v, bytes) else v for v in arr.reshape(-1).tolist()]
    if arr.dtype.kind in "US":
        return arr.reshape(-1).tolist()
    return np.ascontiguousarray(arr).reshape(-1)


def _binary_blob(arr: np.ndarray[Any, Any]) -> bytes:
    if arr.dtype.kind in "OUS":
        parts = []
        for value in arr.reshape(-1).tolist():
            raw = value if isinstance(value, bytes) else str(value).encode()
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_infer_response(
    *,
    model_name: str,
    model_version: str,
    request_id: Any,
    outputs: Sequence[tuple[str, np.ndarray[Any, Any], bool]],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when any output is binary."""
    docs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr, binary in outputs:
        out: dict[str, Any] = {
            "name": name,
            "datatype": v2_datatype_of(arr.dtype),
            "shape": list(arr.shape),
        }
        if binary:
            blob = _binary_blob(arr)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = _json_data(arr)
        docs.append(out)
    response: dict[str, Any] = {"model_name": model_name}
    if model_version:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = docs
    header = orjson.dumps(response, option=_NUMPY_OPTS)
    if blobs:
        return header + b"".join(blobs), len(header)
    return header, None


def decode_v1_request(body: bytes | bytearray, rules: ModelRules) -> InferRequest:
    """A KServe v1 `:predict` body `{"instances": [...]}` as arrays, one row per instance.

    A single-input model takes each instance as one row of that input; a model with
    several inputs takes each instance as an object keyed by input name.
    """
    doc = _parse_json(body)
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError(
            'request body must be {"instances": [...]} with one element per row; the '
            f"model's inputs are {_names(rules.inputs)}"
        )
    specs = rules.inputs
    if len(specs) == 1:
        columns = [instances]
    else:
        columns = []
        for spec in specs:
            column = []
            for instance in instances:
                if not isinstance(instance, dict) or spec.name not in instance:
                    raise RequestError(
                        "this model has several inputs: each instance must be an object "
                        f"with keys {[s.name for s in specs]}"
                    )
                column.append(instance[spec.name])
            columns.append(column)
    elements = 0
    for spec, column in zip(specs, columns, strict=True):
        elements += math.prod(_nesting(spec, column, max(len(spec.shape), 1)))
        if elements > rules.max_elements:
            raise _too_many(elements, rules.max_elements)
    arrays = []
    for spec, column in zip(specs, columns, strict=True):
        arr = decode_json_data(spec, column, None, allow_non_finite=rules.allow_non_finite)
        if arr.ndim == len(spec.shape) - 1 and spec.shape[-1] in (1, -1):
            arr = arr.reshape(*arr.shape, 1)
        _check_shape(spec, arr.shape)
        arrays.append(arr)
    return InferRequest(arrays=arrays, rows=len(instances), outputs=rules.all_outputs_json)


def encode_v1_response(rules: ModelRules, outputs: Sequence[np.ndarray[Any, Any]]) -> bytes:
    """`{"predictions": [...]}`: the label output of a classifier or regressor, else rows."""
    index = rules.output_index.get(rules.label_output)
    if index is None and len(outputs) == 1:
        index = 0
    if index is not None:
        return orjson.dumps({"predictions": _json_rows(outputs[index])}, option=_NUMPY_OPTS)
    names = rules.outputs
    rows = len(outputs[0]) if outputs and outputs[0].ndim else 0
    columns = [_json_rows(arr) for arr in outputs]
    predictions = [
        {name: column[i] for name, column in zip(names, columns, strict=True)} for i in range(rows)
    ]
    return orjson.dumps({"predictions": predictions}, option=_NUMPY_OPTS)


def _json_rows(arr: np.ndarray[Any, Any]) -> Any:
    if arr.dtype.kind in "OUS":
        return [_plain(v) for v in arr.tolist()]
    return arr.tolist()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
