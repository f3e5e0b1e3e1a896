"""The conversion cache directory (`convert --cache-dir`): look up, restore, store, evict.

Called by `cachestep.py` and `pipeline.convert`; what to do is decided by `reuse.py`,
this module only reads and writes. One directory per key digest:

    CACHE/<digest>/model.onnx      the converted model
    CACHE/<digest>/baseline.json   when the conversion wrote one
    CACHE/<digest>/metadata.json   as the conversion wrote it
    CACHE/<digest>/entry.json      {"key": <the key's material>, "files": [...],
                                    "report": <the conversion's report fields>}

An entry is written whole into a temporary directory inside CACHE and renamed into
place, so a reader finds a complete entry or none. Entries are never changed after
that (one that could not be reused is replaced whole); reusing one touches its
modification time, and when the directory holds more
than `--cache-max-bytes` the least recently used entries are deleted. Two pods that
convert the same model at the same time both convert; the second rename fails and
its copy is dropped.

Whoever can write CACHE decides what later pods serve: see docs/convert.md for where
it may live. The runtime's part is to never reuse an entry that does not prove
itself (`reuse.decide`) and to never read or write one for a format that unpickles.

Imports nothing heavy: a reused conversion pays for no NumPy, ONNX or scikit-learn.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlmodel_runtime
from mlmodel_runtime.convert.reuse import Entry, Key, Stored, Unreadable, evict
from mlmodel_runtime.modeldir import (
    BASELINE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ModelMetadata,
    metadata_bytes,
    write_atomically,
)

ENTRY_FILE = "entry.json"
# What an entry may hold, in the order it is restored: metadata.json last, so that a
# reader of the model directory that sees it sees the model it describes.
FILES = (MODEL_FILE, BASELINE_FILE, METADATA_FILE)
DEFAULT_MAX_BYTES = 1 << 30
# Distributions whose versions can change what `convert` writes or accepts. Read from
# their metadata, not by importing them: the reuse path must stay light. Absent ones
# (xgboost-cpu where xgboost is installed, say) are left out.
LIBRARIES = (
    "scikit-learn", "skl2onnx", "skops", "onnx", "onnxruntime", "onnxmltools", "numpy",
    "scipy", "pandas", "protobuf", "xgboost", "xgboost-cpu", "lightgbm",
)  # fmt: skip
_STALE_TEMPORARY_S = 3600.0  # a store interrupted this long ago is garbage


def versions() -> dict[str, str]:
    """The converting side of the key: Python, the libraries, the runtime's version and
    a digest of its own conversion code (a change of the code without a new version,
    as in development, is a new key too)."""
    from importlib import metadata as importlib_metadata

    found = {"python": ".".join(str(p) for p in sys.version_info[:3])}
    for name in LIBRARIES:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    found["mlmodel-runtime"] = mlmodel_runtime.__version__
    found["mlmodel-runtime-code"] = _code_digest()
    return found


def _code_digest() -> str:
    package = Path(mlmodel_runtime.__file__).parent
    digest = hashlib.sha256()
    sources = [
        *sorted((package / "convert").rglob("*.py")),
        package / "modeldir.py",
        package / "datatypes.py",
    ]
    for path in sources:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file (a sample data file, a reference given by path)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def lookup(root: Path, key: Key) -> Entry | Unreadable | None:
    """The entry stored for `key`, with its files read and its model hashed; None when
    there is none."""
    directory = root / key.digest
    if not directory.is_dir():
        return None
    try:
        recorded = json.loads(_read(directory / ENTRY_FILE))
        names = recorded["files"]
        if not isinstance(names, list) or not set(names) <= set(FILES):
            return Unreadable(f"{ENTRY_FILE} lists files an entry may not hold")
        if MODEL_FILE not in names or METADATA_FILE not in names:
            return Unreadable(f"{ENTRY_FILE} lists no model or no metadata")
        files = {name: _read(directory / name) for name in names}
        metadata = ModelMetadata.from_json(json.loads(files[METADATA_FILE]))
        report = recorded["report"]
        material = recorded["key"]
        if not isinstance(report, dict) or not isinstance(material, dict):
            return Unreadable(f"{ENTRY_FILE} is not what an entry records")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Unreadable(f"{type(exc).__name__} reading {directory.name}")
    return Entry(
        material=material,
        recorded_model_sha256=metadata.model_sha256,
        model_sha256=hashlib.sha256(files[MODEL_FILE]).hexdigest(),
        report=report,
        metadata=metadata,
        files=files,
    )


def _read(path: Path) -> bytes:
    """A file of an entry, never through a symbolic link (stores write none: one would
    point at a file of the container that is not the model)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def restore(
    entry: Entry, out: Path, *, source: Mapping[str, Any], timings: Mapping[str, float]
) -> ModelMetadata:
    """Write the entry's files into the model directory (each atomically, metadata.json
    last), with this run's `source` (the URI may differ, the bytes do not) and timings.
    Returns the metadata written."""
    assert entry.metadata is not None  # lookup always reads it
    metadata = replace(entry.metadata, source=dict(source), timings=dict(timings))
    for name in FILES:
        if name == METADATA_FILE:
            write_atomically(out / name, metadata_bytes(metadata))
        elif name in entry.files:
            write_atomically(out / name, entry.files[name])
    return metadata


def touch(root: Path, key: Key) -> None:
    """Mark the entry used now (eviction takes the least recently used first). A
    read-only cache is still a cache: no error."""
    with contextlib.suppress(OSError):
        os.utime(root / key.digest)


@dataclass(frozen=True)
class StoreOutcome:
    stored: bool
    detail: str = ""
    evicted: int = 0


def store(
    root: Path,
    key: Key,
    *,
    files: Mapping[str, bytes],
    report: Mapping[str, Any],
    max_bytes: int,
    replace: bool = False,
) -> StoreOutcome:
    """Put a passed conversion into the cache for the next pod, in place of the entry
    there if `replace` (one that could not be reused); never raises (a cache that
    cannot be written must not fail a conversion that succeeded)."""
    target = root / key.digest
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".store-", dir=root))
    except OSError as exc:
        return StoreOutcome(False, f"cannot write {root}: {exc.strerror}")
    try:
        os.chmod(staging, 0o755)
        for name, payload in files.items():
            write_atomically(staging / name, payload)
        entry = {"key": key.material(), "files": list(files), "report": dict(report)}
        write_atomically(staging / ENTRY_FILE, json.dumps(entry, sort_keys=True).encode())
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if target.is_dir():
            return StoreOutcome(False, "another conversion stored it first")
        return StoreOutcome(False, f"cannot write {root}: {exc.strerror}")
    return StoreOutcome(True, evicted=prune(root, max_bytes=max_bytes, keep=key.digest))


def prune(root: Path, *, max_bytes: int, keep: str) -> int:
    """Delete least recently used entries over `max_bytes`, and temporary directories
    of stores interrupted long ago; how many entries went."""
    entries = []
    now = time.time()
    for child in root.iterdir():
        try:
            if child.name.startswith(".store-"):
                if now - child.stat().st_mtime > _STALE_TEMPORARY_S:
                    shutil.rmtree(child, ignore_errors=True)
                continue
            if child.is_dir():
                size = sum(f.stat().st_size for f in child.iterdir())
                entries.append(Stored(child.name, size, child.stat().st_mtime))
        except OSError:
            continue  # gone meanwhile: another pod pruned it
    doomed = evict(entries, max_bytes=max_bytes, keep=keep)
    for name in doomed:
        shutil.rmtree(root / name, ignore_errors=True)
    return len(doomed)
