"""Whether `convert` may reuse an earlier conversion instead of converting again.

Pure: values in, a decision out; `cache.py` reads and writes the cache directory, and
`cachestep.py` puts a conversion's values in and acts on the decision. Converting an
iris-size scikit-learn model costs seconds, nearly all of it importing scikit-learn and
skl2onnx; copying the ONNX model a pod on the same node made from the same file costs
milliseconds.

An earlier conversion is only as good as what made it, so its `Key` holds everything
that decides what `convert` writes or accepts: the sha256 of the model file, the
format, the versions of the libraries and of the runtime doing the work (its code
included), and every option that changes what is accepted or proven (trusted types,
the unpacked-size bound, the version-mismatch permission, the parity rows and
tolerance, the sample data, the reference, the evaluation set and metric). An entry
stores the key's material in full beside its digest, and is reused only when:

- the material it records is the one asked for (not merely the digest);
- its model file still has the digest its metadata records (a torn or edited entry
  is converted again, never served);
- its recorded parity passed (entries are stored only then; this says so again).

Worked examples (`tests/unit/runtime/test_convert_reuse.py` has the table):

- same file, same versions, same options: `Reuse`;
- same file, `--rtol` 1e-4 then 1e-3: another key, `Convert(Miss.NO_ENTRY)`;
- same file, scikit-learn upgraded with the image: another key, `Convert(Miss.NO_ENTRY)`;
- an unpickling format (`--allow-unsafe-pickle`): `Convert(Miss.UNPICKLES)` whatever is
  stored, because unpickling runs the file's code in a process that could write the
  cache (and nothing is stored for it either).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlmodel_runtime.modeldir import ModelMetadata

KEY_VERSION = "1"  # bumped when what a key holds changes


@dataclass(frozen=True)
class Key:
    """What made a conversion. `digest` names its cache entry."""

    source_sha256: str
    fmt: str
    versions: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]

    def material(self) -> dict[str, Any]:
        """The key as the entry records it (JSON)."""
        return {
            "key_version": KEY_VERSION,
            "source_sha256": self.source_sha256,
            "format": self.fmt,
            "versions": dict(self.versions),
            "options": dict(self.options),
        }

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.material(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def key_for(
    *,
    source_sha256: str,
    fmt: str,
    versions: Mapping[str, str],
    options: Mapping[str, object],
) -> Key:
    """The key of a conversion; the order of `versions` and `options` does not matter.
    An option that is None (not given) and one that is absent are the same."""
    return Key(
        source_sha256=source_sha256.lower(),
        fmt=fmt,
        versions=tuple(sorted((str(k), str(v)) for k, v in versions.items())),
        options=tuple(sorted((str(k), _text(v)) for k, v in options.items() if v is not None)),
    )


def _text(value: object) -> str:
    """An option as text: floats by repr (1e-4 and 0.0001 are the same), sequences
    sorted (repeated --trust-type flags in any order are the same)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


@dataclass(frozen=True)
class Entry:
    """A cache entry as read: what it records and what its model file really is."""

    material: Mapping[str, Any]  # entry.json's "key"
    recorded_model_sha256: str  # metadata.json's model_sha256
    model_sha256: str  # the digest of its model.onnx, computed on reading
    report: Mapping[str, Any] = field(default_factory=dict)  # the stored run's report fields
    metadata: ModelMetadata | None = None  # its metadata.json
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def parity_passed(self) -> bool:
        parity = self.report.get("parity")
        return isinstance(parity, Mapping) and parity.get("passed") is True


@dataclass(frozen=True)
class Unreadable:
    """An entry directory whose files are missing or not what they should be."""

    why: str


class Miss(enum.Enum):
    """Why a conversion was not reused (the report's `cache.reason`)."""

    UNPICKLES = "the format unpickles (runs the file's code): never cached"
    NO_ENTRY = "no earlier conversion with this model digest, converter versions and options"
    UNREADABLE = "the cached entry is unreadable"
    OTHER_KEY = "the cached entry records another model, versions or options"
    DAMAGED = "the cached model does not match the digest its metadata records"
    PARITY = "the cached entry records no passed parity check"


@dataclass(frozen=True)
class Reuse:
    entry: Entry


@dataclass(frozen=True)
class Convert:
    """Convert (and prove parity) again; `detail` adds what was found, if anything."""

    miss: Miss
    detail: str = ""

    @property
    def reason(self) -> str:
        return f"{self.miss.value}: {self.detail}" if self.detail else self.miss.value

    @property
    def may_store(self) -> bool:
        """Whether the new conversion, once it has passed, may be stored for the next pod:
        not for a format that runs code. An entry that could not be reused (damaged,
        unreadable, another key) is replaced, or every later pod would convert again."""
        return self.miss is not Miss.UNPICKLES


Decision = Reuse | Convert


def decide(key: Key, found: Entry | Unreadable | None, *, unpickles: bool) -> Decision:
    """Reuse `found` for `key`, or convert again and say why."""
    if unpickles:
        return Convert(Miss.UNPICKLES)
    if found is None:
        return Convert(Miss.NO_ENTRY)
    if isinstance(found, Unreadable):
        return Convert(Miss.UNREADABLE, found.why)
    if dict(found.material) != key.material():
        return Convert(Miss.OTHER_KEY)
    if not found.recorded_model_sha256 or found.model_sha256 != found.recorded_model_sha256:
        return Convert(Miss.DAMAGED)
    if not found.parity_passed:
        return Convert(Miss.PARITY)
    return Reuse(found)


@dataclass(frozen=True)
class Stored:
    """An entry in the cache directory, for eviction: its name, size and last use."""

    name: str
    bytes: int
    used: float  # seconds since the epoch: stored, or last reused


def evict(entries: Sequence[Stored], *, max_bytes: int, keep: str) -> list[str]:
    """The entries to delete so that the rest fit in `max_bytes`: least recently used
    first, never `keep` (the one just stored or reused), even when it alone is larger.

    >>> evict([Stored("a", 5, 1.0), Stored("b", 5, 2.0), Stored("c", 5, 3.0)],
    ...       max_bytes=10, keep="c")
    ['a']
    """
    total = sum(e.bytes for e in entries)
    doomed = []
    for entry in sorted(entries, key=lambda e: (e.used, e.name)):
        if total <= max_bytes:
            break
        if entry.name == keep:
            continue
        doomed.append(entry.name)
        total -= entry.bytes
    return doomed
