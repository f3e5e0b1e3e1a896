"""Bound what a skops archive unpacks to, before skops reads any of it.

Called by `formats/skops.py`. skops reads schema.json and every array member
whole into memory while it builds its node tree (before its type audit), so a
small download could ask for gigabytes: a zip bomb. This module checks, from
the archive's own records and then by streaming each member once with memory
for one chunk:

- the central directory is at most MAX_DIRECTORY_BYTES (Python's zipfile reads
  it whole and keeps an object per entry) and lists at most MAX_MEMBERS members;
- each member's declared size, and their sum, are at most `max_unpacked`
  (--max-unpacked-bytes, by default --max-bytes);
- a member over RATIO_FLOOR bytes unpacks to at most MAX_RATIO times its
  compressed size (skops stores members uncompressed unless asked; deflated
  model arrays stay far below this);
- the bytes each member actually unpacks to stay within what it declares, and
  its CRC is right.

Any violation is an IntegrityError (exit 4).
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

from mlmodel_runtime.convert.errors import IntegrityError
from mlmodel_runtime.convert.sanitize import clean, describe

MAX_MEMBERS = 100_000
MAX_DIRECTORY_BYTES = 8 << 20
MAX_RATIO = 200
RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"


def _central_directory_size(handle: IO[bytes]) -> int | None:
    """The size the end-of-central-directory record declares, found as zipfile finds it."""
    handle.seek(0, 2)
    size = handle.tell()
    tail_len = min(size, _EOCD_SIZE + 0xFFFF)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    # No archive comment: the record is the last 22 bytes; otherwise the last one found.
    if tail[-_EOCD_SIZE : -_EOCD_SIZE + 4] == _EOCD and tail[-2:] == b"\0\0":
        at = len(tail) - _EOCD_SIZE
    else:
        at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return None  # not a zip archive: zipfile says so below
    entries, directory_size = struct.unpack("<HL", tail[at + 10 : at + 16])
    if directory_size != 0xFFFFFFFF and entries != 0xFFFF:
        return int(directory_size)
    locator = tail[at - _ZIP64_LOCATOR_SIZE : at] if at >= _ZIP64_LOCATOR_SIZE else b""
    if not locator.startswith(_ZIP64_LOCATOR):
        return int(directory_size)
    (record_offset,) = struct.unpack("<Q", locator[8:16])
    handle.seek(record_offset)
    record = handle.read(56)
    if not record.startswith(_ZIP64_EOCD) or len(record) < 56:
        return int(directory_size)
    (directory_size64,) = struct.unpack("<Q", record[40:48])
    return int(directory_size64)


def _check_declared(members: list[zipfile.ZipInfo], max_unpacked: int) -> None:
    if len(members) > MAX_MEMBERS:
        raise IntegrityError(
            f"the skops archive has {len(members)} members (at most {MAX_MEMBERS})"
        )
    total = 0
    for info in members:
        name = clean(info.filename, 80)
        if info.file_size > max_unpacked:
            raise IntegrityError(
                f"skops archive member {name!r} unpacks to {info.file_size} bytes, over the "
                f"limit of {max_unpacked} bytes (--max-unpacked-bytes)"
            )
        packed = max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * packed:
            raise IntegrityError(
                f"skops archive member {name!r} unpacks {info.file_size // packed}-fold "
                f"({info.compress_size} to {info.file_size} bytes; at most {MAX_RATIO}-fold): "
                "a zip bomb?"
            )
        total += info.file_size
        if total > max_unpacked:
            raise IntegrityError(
                f"the skops archive unpacks to more than {max_unpacked} bytes "
                "(--max-unpacked-bytes)"
            )


def _check_actual(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> None:
    for info in members:
        seen = 0
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                seen += len(chunk)
                if seen > info.file_size:
                    raise IntegrityError(
                        f"skops archive member {clean(info.filename, 80)!r} unpacks to more "
                        "than the size it declares"
                    )


def check_archive(path: Path, *, max_unpacked: int) -> None:
    """Raise IntegrityError unless the zip at `path` unpacks within the bounds above."""
    try:
        with path.open("rb") as handle:
            directory_size = _central_directory_size(handle)
        if directory_size is not None and directory_size > MAX_DIRECTORY_BYTES:
            raise IntegrityError(
                f"the skops archive's directory is {directory_size} bytes "
                f"(at most {MAX_DIRECTORY_BYTES}): too many members"
            )
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_declared(members, max_unpacked)
            _check_actual(archive, members)
    except IntegrityError:
        raise
    except Exception as exc:  # BadZipFile, CRC errors, encryption, unknown compression...
        raise IntegrityError(
            f"not a readable skops file (corrupt or truncated?): {describe(exc)}"
        ) from exc


def read_schema(path: Path) -> Any:
    """The skops file's schema.json, parsed (after `check_archive` bounded it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("schema.json"))
    except Exception as exc:  # a missing member, bad JSON
        raise IntegrityError(
            f"not a readable skops file (no valid schema.json): {describe(exc)}"
        ) from exc
