"""Load the downloaded file as the format the user declared, refusing what is unsafe.

Called by `pipeline.py` with the local file from `fetch.py`.

- skops: the archive's unpacked size is bounded first (`archive.py`), then the
  file is loaded with skops's safe loader trusting skops's defaults plus the
  helper types of `skops_trust.py` and, explicitly, --trust-type names (never
  file- or code-capable types); the numbers inside trusted helpers that
  compiled code indexes with are checked before anything predicts
  (`structure.py`).
- sklearn (pickle/joblib): unpickling runs arbitrary code, so it happens only
  with --allow-unsafe-pickle; the refusal is decided before anything is read.
- onnx: tensors with external data are refused (`onnx_safety.py`), then the
  model is checked with onnx.checker and opened in onnxruntime.

Library error texts reach messages only through `sanitize.describe`.

Loading under another scikit-learn than the one the model was trained with can
change its predictions, so scikit-learn's InconsistentVersionWarning is an
error unless explicitly allowed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmodel_runtime.convert.errors import (
    IntegrityError,
    UnsafeFormatError,
    UnsupportedModelError,
    UsageError,
    VersionMismatchError,
)
from mlmodel_runtime.convert.fetch import DEFAULT_MAX_BYTES
from mlmodel_runtime.convert.sanitize import describe

FORMATS = ("skops", "sklearn", "onnx")
PICKLE_REFUSAL = (
    "refusing to unpickle: pickle and joblib files run arbitrary code while loading, "
    "so a tampered model file could take over this container. Save the model with "
    "skops (skops.io.dump) and use --format skops, or pass --allow-unsafe-pickle if "
    "you trust the file and whoever can write to its location"
)
_ZIP = b"PK\x03\x04"
# Plain pickles (protocol 2+) and joblib's compressed containers.
_PICKLE_MAGICS = (
    b"\x80",
    b"\x78\x9c",
    b"\x78\x01",
    b"\x78\xda",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"ZF",
)


@dataclass(frozen=True)
class Loaded:
    format: str
    estimator: Any = None  # the scikit-learn object (skops, sklearn)
    onnx_bytes: bytes = b""  # the ONNX model (onnx passthrough)
    version_warning: str = ""  # set when a mismatch was allowed


def sniff(head: bytes) -> str:
    """What the first bytes look like: "zip" (skops), "pickle" or "other"."""
    if head.startswith(_ZIP):
        return "zip"
    if head.startswith(_PICKLE_MAGICS):
        return "pickle"
    return "other"


def refuse_unsafe_early(fmt: str, *, allow_unsafe_pickle: bool) -> None:
    """Refuse pickle before downloading anything: no reason to fetch what we won't open."""
    if fmt == "sklearn" and not allow_unsafe_pickle:
        raise UnsafeFormatError(PICKLE_REFUSAL)


def _check_version(caught: Iterable[warnings.WarningMessage], allow: bool) -> str:
    from sklearn.exceptions import InconsistentVersionWarning

    for item in caught:
        if isinstance(item.message, InconsistentVersionWarning):
            w = item.message
            text = (
                f"model was saved with scikit-learn {w.original_sklearn_version} but this "
                f"runtime has {w.current_sklearn_version}; its predictions may differ from "
                "what you saw in training"
            )
            if not allow:
                raise VersionMismatchError(
                    f"{text}. Rebuild the model with scikit-learn {w.current_sklearn_version}, "
                    "or pass --allow-version-mismatch (best with --reference to prove parity "
                    "against predictions from the training environment)"
                )
            return text
    return ""


def _load_skops(path: Path, trust: tuple[str, ...], max_unpacked: int) -> Any:
    import skops.io

    from mlmodel_runtime.convert import archive, skops_trust, structure

    archive.check_archive(path, max_unpacked=max_unpacked)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # zipfile, json and skops errors alike
        raise IntegrityError(
            f"not a readable skops file (corrupt or truncated?): {describe(exc)}"
        ) from exc
    trusted = skops_trust.check(untrusted, trust)
    try:
        estimator = skops.io.load(path, trusted=trusted)
    except (ImportError, AttributeError) as exc:
        raise UnsupportedModelError(
            f"the model needs code this runtime lacks: {describe(exc)}"
        ) from exc
    except Exception as exc:
        raise IntegrityError(
            f"could not load skops file (corrupt or truncated?): {describe(exc)}"
        ) from exc
    structure.check_estimator(estimator)
    return estimator


def _load_pickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except (ImportError, AttributeError) as exc:
        raise UnsupportedModelError(
            f"the model needs code this runtime lacks: {describe(exc)}"
        ) from exc
    except Exception as exc:  # pickle raises many types on bad data
        raise IntegrityError(
            f"could not unpickle the file (corrupt or truncated?): {describe(exc)}"
        ) from exc


def _load_onnx(path: Path) -> bytes:
    import onnx

    from mlmodel_runtime.convert.onnx_safety import refuse_external_data
    from mlmodel_runtime.convert.ortsession import session

    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise IntegrityError(
            f"not a readable ONNX file (corrupt or truncated?): {describe(exc)}"
        ) from exc
    if not model.graph.node and not model.graph.output:
        # Protobuf accepts almost any bytes as an empty message.
        raise IntegrityError("not an ONNX model: the file parses to an empty graph")
    refuse_external_data(model)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise UnsupportedModelError(f"onnx.checker rejects the model: {describe(exc)}") from exc
    session(data, what="the model")
    return data


def load(
    path: Path,
    *,
    fmt: str,
    trust: tuple[str, ...] = (),
    allow_unsafe_pickle: bool = False,
    allow_version_mismatch: bool = False,
    max_unpacked_bytes: int = DEFAULT_MAX_BYTES,
    log: Callable[[str], None] = lambda _: None,
) -> Loaded:
    """Open the model; raise the ConvertError that explains why not."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    refuse_unsafe_early(fmt, allow_unsafe_pickle=allow_unsafe_pickle)
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise IntegrityError("the model file is empty")
    kind = sniff(head)
    if fmt == "skops" and kind == "pickle":
        raise UsageError("--format skops, but the file is a pickle/joblib file (--format sklearn)")
    if fmt == "sklearn" and kind == "zip":
        raise UsageError("--format sklearn, but the file is a skops file (--format skops)")
    if fmt == "onnx" and kind != "other":
        actual = "skops" if kind == "zip" else "sklearn"
        raise UsageError(f"--format onnx, but the file is a {actual} file (--format {actual})")
    if fmt == "skops" and kind != "zip":
        raise IntegrityError("not a skops file: it is not a zip archive (corrupt or wrong file?)")

    if fmt == "onnx":
        return Loaded(format=fmt, onnx_bytes=_load_onnx(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = (
            _load_skops(path, trust, max_unpacked_bytes) if fmt == "skops" else _load_pickle(path)
        )
    version_warning = _check_version(caught, allow_version_mismatch)
    if version_warning:
        log(f"warning: {version_warning} (allowed by --allow-version-mismatch)")
    if not callable(getattr(estimator, "predict", None)):
        raise UnsupportedModelError(
            f"the file holds a {type(estimator).__module__}.{type(estimator).__qualname__}, "
            "not a fitted estimator with predict()"
        )
    return Loaded(format=fmt, estimator=estimator, version_warning=version_warning)
