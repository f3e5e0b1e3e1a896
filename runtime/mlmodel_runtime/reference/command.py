"""The `mlmodel-runtime reference` subcommand: a parity reference from a saved model.

For a training environment where mlmodel-runtime is installed: the model file is
loaded as `convert` loads it (the same formats and safety flags), here, with this
environment's libraries, and `make_reference` writes its predictions on the data
file. stdout is one JSON line with the file's sha256, for spec.conversion.reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlmodel_runtime.reference import DEFAULT_ROWS, make_reference


def configure(parser: argparse.ArgumentParser) -> None:
    from mlmodel_runtime.convert import formats

    add = parser.add_argument
    add("--model", required=True, type=Path, metavar="FILE", help="the saved model")
    add("--format", required=True, choices=list(formats.REGISTRY), dest="fmt")
    add("--data", required=True, type=Path, metavar="FILE", help=".npy, .csv or .parquet rows")
    add("--out", required=True, type=Path, metavar="FILE", help="the reference .npz to write")
    add(
        "--rows", type=int, default=DEFAULT_ROWS, help=f"at most this many (default {DEFAULT_ROWS})"
    )
    add("--allow-unsafe-pickle", action="store_true", help="allow --format sklearn (runs code)")
    add("--trust-type", action="append", default=[], metavar="NAME", help="trust in a skops file")


def _read_data(path: Path) -> Any:
    import numpy as np
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ValueError(f"--data {path}: expected a .npy, .csv or .parquet file")


def run(args: argparse.Namespace) -> int:
    from mlmodel_runtime.convert import formats
    from mlmodel_runtime.convert.errors import ConvertError

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        options = formats.LoadOptions(
            trust=tuple(args.trust_type), allow_unsafe_pickle=args.allow_unsafe_pickle
        )
        model = formats.load(formats.get(args.fmt), args.model, options, log)
        fitted = getattr(model, "fitted", None)
        if fitted is None:
            raise ValueError(f"format {args.fmt} has no original model to predict with")
        made = make_reference(fitted, _read_data(args.data), args.out, rows=args.rows)
    except (ConvertError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {"path": str(made.path), "sha256": made.sha256, "rows": made.rows, "task": made.task}
    print(json.dumps(summary))
    return 0
