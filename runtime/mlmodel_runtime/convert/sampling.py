"""Sample inputs for the parity check: generated from the schema, or read from a file.

Called by `check.against_original` and the ONNX self-check. Inputs are kept as
ONNX feeds (name -> array); the original model gets the same values through
`to_sklearn_input`. Numbers are drawn as float32 and only then widened for
scikit-learn, so both models see bit-identical inputs and tree thresholds
cannot be crossed by rounding.

Files (never unpickled: object arrays are refused):
- `.npy`: a 2-D numeric array (models fitted on an array).
- `.csv` (with a header row) / `.parquet`: columns named after the model's
  inputs; for a model fitted on an array, all columns in order.
- `--reference` `.npz`: `inputs` (2-D) or one 1-D/2-D array per input name,
  plus `label` and optionally `probabilities` (classifiers) or `predictions`
  (regressors), as computed in the training environment.
- an evaluation `.npz` (`--evaluation`): the same inputs, plus `target`, the true
  answers the converted model is scored against.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlmodel_runtime.convert.errors import UsageError
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.convert.schema import SINGLE_INPUT, InputSchema

Feeds = dict[str, npt.NDArray[Any]]
DEFAULT_SEED = 20240601
_UNKNOWN_STRINGS = ("a", "b", "c")


@dataclass(frozen=True)
class Reference:
    """Inputs and the predictions the user saw in the training environment."""

    feeds: Feeds
    label: npt.NDArray[Any] | None = None
    probabilities: npt.NDArray[Any] | None = None
    predictions: npt.NDArray[Any] | None = None


def generate(schema: InputSchema, rows: int, seed: int = DEFAULT_SEED) -> Feeds:
    """Standard-normal numbers; strings drawn from the categories the model knows."""
    rng = np.random.default_rng(seed)
    if not schema.dataframe:
        return {SINGLE_INPUT: rng.standard_normal((rows, schema.n_features)).astype(np.float32)}
    feeds: Feeds = {}
    for column in schema.columns:
        if column.datatype == "BYTES":
            choices = np.array(column.categories or _UNKNOWN_STRINGS, dtype=object)
            feeds[column.name] = rng.choice(choices, size=(rows, 1))
        else:
            feeds[column.name] = rng.standard_normal((rows, 1)).astype(np.float32)
    return feeds


def generate_for_onnx(
    inputs: list[tuple[str, str, list[Any]]], rows: int, seed: int = DEFAULT_SEED
) -> Feeds:
    """Feeds for an ONNX model from its (name, ORT type, shape) inputs; free dims: rows, then 1."""
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for name, ort_type, shape in inputs:
        dims = [
            d if isinstance(d, int) and d > 0 else (rows if i == 0 else 1)
            for i, d in enumerate(shape)
        ]
        if ort_type == "tensor(string)":
            feeds[name] = rng.choice(np.array(_UNKNOWN_STRINGS, dtype=object), size=dims)
        elif ort_type in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            floats = {"tensor(float)": np.float32, "tensor(double)": np.float64}
            feeds[name] = rng.standard_normal(dims).astype(floats.get(ort_type, np.float16))
        elif ort_type == "tensor(bool)":
            feeds[name] = rng.integers(0, 2, size=dims).astype(np.bool_)
        elif ort_type.startswith("tensor(int") or ort_type.startswith("tensor(uint"):
            integer = np.dtype(ort_type[len("tensor(") : -1])
            feeds[name] = rng.integers(0, 4, size=dims).astype(integer)
        else:
            raise UsageError(f"cannot generate sample data for input {name!r} of type {ort_type}")
    return feeds


def _column(values: npt.NDArray[Any], datatype: str, name: str) -> npt.NDArray[Any]:
    values = np.asarray(values)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2 or values.shape[1] != 1:
        raise UsageError(f"input {name!r}: expected one value per row, got shape {values.shape}")
    if datatype == "BYTES":
        return values.astype(str).astype(object)
    if values.dtype.kind not in "biuf":
        raise UsageError(f"input {name!r} must be numeric, got {values.dtype}")
    return values.astype(np.float32)


def _matrix(values: npt.NDArray[Any], schema: InputSchema, origin: str) -> Feeds:
    values = np.asarray(values)
    if values.ndim == 1 and schema.n_features == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2 or values.shape[1] != schema.n_features:
        raise UsageError(
            f"{origin}: expected a 2-D array with {schema.n_features} columns, got {values.shape}"
        )
    if values.dtype.kind not in "biuf":
        raise UsageError(f"{origin}: expected numbers, got {values.dtype}")
    return {SINGLE_INPUT: values.astype(np.float32)}


def _from_frame(frame: Any, schema: InputSchema, origin: str) -> Feeds:
    if not schema.dataframe:
        names = [str(c) for c in frame.columns]
        return _matrix(frame.to_numpy(), schema, f"{origin} (columns {names[:5]})")
    missing = [c.name for c in schema.columns if c.name not in frame.columns]
    if missing:
        raise UsageError(f"{origin} lacks the model's input columns: {', '.join(missing)}")
    return {c.name: _column(frame[c.name].to_numpy(), c.datatype, c.name) for c in schema.columns}


def read_samples(path: Path, schema: InputSchema, rows: int) -> Feeds:
    """Read .npy/.csv/.parquet sample inputs (at most `rows` rows)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            if schema.dataframe:
                raise UsageError(
                    "this model takes named columns; give --sample-data as .csv or .parquet"
                )
            feeds = _matrix(np.load(path, allow_pickle=False), schema, str(path))
        elif suffix == ".csv":
            feeds = _from_frame(pd.read_csv(path), schema, str(path))
        elif suffix in (".parquet", ".pq"):
            feeds = _from_frame(pd.read_parquet(path), schema, str(path))
        else:
            raise UsageError(f"--sample-data {path}: expected a .npy, .csv or .parquet file")
    except UsageError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read sample data {path}: {describe(exc)}") from exc
    return {name: values[:rows] for name, values in feeds.items()}


NPZ_MAX_UNPACKED = 1 << 30  # bytes an .npz may unpack to: its arrays are read into memory


def _load_npz(path: Path, what: str) -> dict[str, npt.NDArray[Any]]:
    """The arrays of an .npz, without pickle, refusing one that would unpack to more
    than NPZ_MAX_UNPACKED (a small compressed file can hold huge zero arrays)."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot read {what} {path} (an .npz): {describe(exc)}") from exc
    if unpacked > NPZ_MAX_UNPACKED:
        raise UsageError(
            f"{what} {path} unpacks to {unpacked} bytes, over the limit of {NPZ_MAX_UNPACKED}"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read {what} {path} (an .npz without objects): {describe(exc)}"
        ) from exc


def _input_feeds(
    arrays: dict[str, npt.NDArray[Any]], schema: InputSchema, path: Path, what: str
) -> Feeds:
    """The model's inputs in an .npz: `inputs` (2-D) or one array per input name."""
    if "inputs" in arrays:
        if schema.dataframe:
            raise UsageError("this model takes named columns: store one array per input name")
        feeds = _matrix(arrays["inputs"], schema, f"{path}: inputs")
    elif schema.dataframe:
        missing = [c.name for c in schema.columns if c.name not in arrays]
        if missing:
            raise UsageError(f"{what} {path} lacks input arrays: {', '.join(missing)}")
        feeds = {c.name: _column(arrays[c.name], c.datatype, c.name) for c in schema.columns}
    else:
        raise UsageError(f"{what} {path} has no 'inputs' array")
    rows = {v.shape[0] for v in feeds.values()}
    if len(rows) != 1:
        raise UsageError(f"{what} {path}: inputs have different row counts {sorted(rows)}")
    return feeds


def read_reference(path: Path, schema: InputSchema) -> Reference:
    """Read the --reference .npz (see the module docstring and docs/convert.md)."""
    arrays = _load_npz(path, "reference")
    feeds = _input_feeds(arrays, schema, path, "reference")
    n = row_count(feeds)
    outputs = {k: arrays.get(k) for k in ("label", "probabilities", "predictions")}
    for key, value in outputs.items():
        if value is not None and value.shape[0] != n:
            raise UsageError(f"reference {path}: {key} has {value.shape[0]} rows, inputs {n}")
    if outputs["label"] is None and outputs["predictions"] is None:
        raise UsageError(
            f"reference {path} needs 'label' (classifier) or 'predictions' (regressor)"
        )
    return Reference(feeds=feeds, **outputs)


def read_labelled(path: Path, schema: InputSchema) -> tuple[Feeds, npt.NDArray[Any]]:
    """Read an evaluation .npz: the inputs as in a reference, and `target`, the true
    class or value of each row."""
    arrays = _load_npz(path, "evaluation set")
    feeds = _input_feeds(arrays, schema, path, "evaluation set")
    target = arrays.get("target")
    if target is None:
        raise UsageError(f"evaluation set {path} has no 'target' array (the true answers)")
    if target.shape[0] != row_count(feeds):
        raise UsageError(
            f"evaluation set {path}: target has {target.shape[0]} rows, inputs {row_count(feeds)}"
        )
    if target.shape[0] == 0:
        raise UsageError(f"evaluation set {path} has no rows")
    return feeds, target


def to_sklearn_input(feeds: Feeds, schema: InputSchema) -> Any:
    """The same rows as scikit-learn expects them: float64 matrix or a DataFrame."""
    if not schema.dataframe:
        return feeds[SINGLE_INPUT].astype(np.float64)
    import pandas as pd

    return pd.DataFrame(
        {
            c.name: feeds[c.name][:, 0]
            if c.datatype == "BYTES"
            else feeds[c.name][:, 0].astype(np.float64)
            for c in schema.columns
        }
    )


def row_count(feeds: Feeds) -> int:
    return int(next(iter(feeds.values())).shape[0]) if feeds else 0
