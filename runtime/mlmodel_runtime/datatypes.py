"""Open Inference Protocol (v2) tensor datatypes and their NumPy and ONNX equivalents.

Shared by `convert` (which writes the model's schema in v2 terms to metadata.json)
and `serve` (which decodes requests into NumPy arrays and encodes responses).
"""

from __future__ import annotations

from typing import Final

import numpy as np

# v2 datatype name -> NumPy dtype. BYTES tensors are object arrays of str/bytes.
V2_TO_NUMPY: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

NUMPY_TO_V2: Final[dict[np.dtype[np.generic], str]] = {
    dtype: name for name, dtype in V2_TO_NUMPY.items()
}

# ONNX Runtime's type strings ("tensor(float)") -> v2 datatype name.
ORT_TO_V2: Final[dict[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def v2_datatype_of(dtype: np.dtype[np.generic]) -> str:
    """The v2 datatype for a NumPy dtype; str/bytes/object arrays are BYTES."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return NUMPY_TO_V2[dtype]
    except KeyError:
        raise ValueError(f"no Open Inference Protocol datatype for NumPy dtype {dtype}") from None
