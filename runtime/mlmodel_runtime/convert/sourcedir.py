"""The source directory that `mlmodel-runtime fetch` writes and `convert --source` reads.

Layout (an emptyDir shared by the two init containers):

    DIR/model        the downloaded file, byte for byte, renamed into place
    DIR/source.json  {"uri": <redacted URI>, "sha256": ..., "bytes": ...},
                     written atomically after DIR/model
    DIR/<extra>.npz, DIR/<extra>.json
                     the same for each extra file `fetch` was given (`EXTRAS`): the
                     parity reference (`--reference-uri`) and the evaluation dataset
                     (`--evaluation-uri`), both made in the training environment

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


@dataclass(frozen=True)
class Extra:
    """A file fetched beside the model for `convert` to use, by name: `fetch
    --<kind>-uri/--<kind>-sha256` writes it, `convert --source` finds it."""

    kind: str
    doc: str

    @property
    def file(self) -> str:
        return f"{self.kind}.npz"

    @property
    def description(self) -> str:
        return f"{self.kind}.json"


REFERENCE = Extra(
    "reference", "a parity reference: inputs with the training environment's predictions"
)
EVALUATION = Extra("evaluation", "a labelled holdout set the converted model is scored on")
EXTRAS = (REFERENCE, EVALUATION)
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
    for extra in EXTRAS:
        (directory / extra.description).unlink(missing_ok=True)


def publish(fetched: Fetched, directory: Path, *, uri: str, extra: Extra | None = None) -> Source:
    """Move the download to DIR/model (or the extra's file), then write DIR/source.json
    (or the extra's description)."""
    name, description = (
        (MODEL_FILE, SOURCE_FILE) if extra is None else (extra.file, extra.description)
    )
    target = directory / name
    # mkstemp makes 0600 files; the convert container may run as another user.
    os.chmod(fetched.path, 0o644)
    os.replace(fetched.path, target)
    source = Source(uri=redact_uri(uri), sha256=fetched.sha256, bytes=fetched.size)
    payload = json.dumps(source.to_json(), sort_keys=True).encode()
    write_atomically(directory / description, payload)
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
    if not where.exists():
        raise IntegrityError(
            f"{where} is missing: run `mlmodel-runtime fetch --out {directory}` first"
        )
    return _checked(directory / MODEL_FILE, where, max_bytes, what="model")


def read_extra(directory: Path, extra: Extra, *, max_bytes: int) -> tuple[Fetched, Source] | None:
    """The extra file and what its description says about it, checked as the model is;
    None when fetch was given none."""
    where = directory / extra.description
    if not where.exists():
        return None
    return _checked(directory / extra.file, where, max_bytes, what=extra.kind)


def _checked(path: Path, where: Path, max_bytes: int, *, what: str) -> tuple[Fetched, Source]:
    try:
        source = _parse(json.loads(where.read_bytes()), where)
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{where} is not readable JSON") from exc
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing ({where.name} describes a {what})") from None
    if size > max_bytes:
        raise IntegrityError(f"{what} is {size} bytes, over the limit of {max_bytes} bytes")
    if size != source.bytes or _digest(path) != source.sha256:
        raise IntegrityError(
            f"{path} is not the file {where} describes (changed or truncated on the volume?)"
        )
    return Fetched(path=path, sha256=source.sha256, size=size), source


def remove_model(directory: Path) -> None:
    (directory / MODEL_FILE).unlink(missing_ok=True)
