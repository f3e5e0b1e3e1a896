"""The source directory that `mlmodel-runtime fetch` writes and `convert --source` reads.

Layout (an emptyDir shared by the two init containers):

    DIR/model        the downloaded file, byte for byte, renamed into place
    DIR/source.json  {"uri": <redacted URI>, "sha256": ..., "bytes": ...},
                     written atomically after DIR/model

Fetching and converting are two containers so that the one that parses an
untrusted model never holds the credentials of its store. `convert --source`
checks DIR/model against source.json (size and digest) before reading it, so a
model changed or truncated on the shared volume is refused rather than
converted under another model's provenance; after a successful conversion it
deletes DIR/model, so the volume does not hold the model twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmodel_runtime.convert.errors import IntegrityError, UsageError
from mlmodel_runtime.convert.fetch import SHA256, Fetched
from mlmodel_runtime.convert.redact import redact_uri
from mlmodel_runtime.modeldir import write_atomically

MODEL_FILE = "model"
SOURCE_FILE = "source.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """What source.json says: where the model came from (redacted) and what it was."""

    uri: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "bytes": self.bytes}


def prepare(directory: Path) -> None:
    """Create DIR and drop a previous run's source.json, so a failed fetch leaves none."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create directory {directory}: {exc.strerror}") from exc
    (directory / SOURCE_FILE).unlink(missing_ok=True)


def publish(fetched: Fetched, directory: Path, *, uri: str) -> Source:
    """Move the download to DIR/model, then write DIR/source.json."""
    model = directory / MODEL_FILE
    # mkstemp makes 0600 files; the convert container may run as another user.
    os.chmod(fetched.path, 0o644)
    os.replace(fetched.path, model)
    source = Source(uri=redact_uri(uri), sha256=fetched.sha256, bytes=fetched.size)
    payload = json.dumps(source.to_json(), sort_keys=True).encode()
    write_atomically(directory / SOURCE_FILE, payload)
    return source


def _parse(data: Any, where: Path) -> Source:
    if not isinstance(data, dict):
        raise IntegrityError(f"{where} is not a JSON object")
    uri, sha256, size = data.get("uri"), data.get("sha256"), data.get("bytes")
    if not isinstance(uri, str) or not isinstance(sha256, str) or not SHA256.match(sha256):
        raise IntegrityError(f"{where} must hold a string uri and a 64-digit hexadecimal sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(f"{where} must hold bytes, a non-negative integer")
    # Written redacted by fetch; redacted again in case someone else wrote it.
    return Source(uri=redact_uri(uri), sha256=sha256.lower(), bytes=size)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read(directory: Path, *, max_bytes: int) -> tuple[Fetched, Source]:
    """DIR/model and what source.json says about it, after checking they agree."""
    if not directory.is_dir():
        raise UsageError(f"--source {directory} is not a directory")
    where = directory / SOURCE_FILE
    try:
        source = _parse(json.loads(where.read_bytes()), where)
    except FileNotFoundError:
        raise IntegrityError(
            f"{where} is missing: run `mlmodel-runtime fetch --out {directory}` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{where} is not readable JSON") from exc
    model = directory / MODEL_FILE
    try:
        size = model.stat().st_size
    except FileNotFoundError:
        raise IntegrityError(f"{model} is missing (source.json describes a model)") from None
    if size > max_bytes:
        raise IntegrityError(f"model is {size} bytes, over the limit of {max_bytes} bytes")
    if size != source.bytes or _digest(model) != source.sha256:
        raise IntegrityError(
            f"{model} is not the file {where} describes (changed or truncated on the volume?)"
        )
    return Fetched(path=model, sha256=source.sha256, size=size), source


def remove_model(directory: Path) -> None:
    (directory / MODEL_FILE).unlink(missing_ok=True)
