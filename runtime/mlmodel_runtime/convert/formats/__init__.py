"""Model formats: the one registry of the ways a model file can be saved.

A format is one module with one object implementing `Format`: its name (the
`--format` value and the CRD's `spec.model.format` enum entry), a line of
documentation, how its files are recognised by their first bytes, whether
loading runs code (then it needs --allow-unsafe-pickle), and how to load a file
safely. Loading gives a `Model`, which says what it is (estimator, task,
classes) and carries the phases after loading: its input schema, its ONNX
model, and parity (the original and the ONNX model on the same rows, or a
self-check where the file is the ONNX model already).

`REGISTRY` at the bottom is the only list of formats: the `--format` choices,
the refusal of a file that is another format's, docs/models.md and the test
that checks the CRD's enum all read it. `pipeline.py` calls the phases in
order and builds metadata.json from what they return. Adding a format is one
module and one line in `REGISTRY` (docs/convert.md, "How to add a model
format").

Conventions every format keeps, because `serve` and the metrics rely on them:
a classifier's ONNX model answers `label` and `probabilities` (columns in the
order of `classes`); a regressor's first output is its value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlmodel_runtime.convert.errors import IntegrityError, UnsafeFormatError, UsageError
from mlmodel_runtime.convert.fetch import DEFAULT_MAX_BYTES
from mlmodel_runtime.convert.plan import ParityPlan
from mlmodel_runtime.modeldir import Task, TensorSpec

Log = Callable[[str], None]
HEAD_BYTES = 8
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
class LoadOptions:
    """What the user allows loading to do (--trust-type, --allow-unsafe-pickle, ...)."""

    trust: tuple[str, ...] = ()
    allow_unsafe_pickle: bool = False
    allow_version_mismatch: bool = False
    max_unpacked_bytes: int = DEFAULT_MAX_BYTES


class Inputs(Protocol):
    """A model's input schema, in whatever form its format exports and samples from."""

    def tensor_specs(self) -> tuple[TensorSpec, ...]:
        """The inputs in v2 terms, as metadata.json and the report give them."""
        ...


SchemaT = TypeVar("SchemaT", bound=Inputs)


class Model(Protocol[SchemaT]):
    """A model file its format has loaded. The pipeline records what it is, then
    calls `schema`, `to_onnx` and `parity` in that order, timing each."""

    @property
    def estimator(self) -> str:
        """What the model is, for people: a dotted class name ("onnx" for a passthrough)."""
        ...

    @property
    def task(self) -> Task:
        """ "classification", "regression" or "other"."""
        ...

    @property
    def classes(self) -> tuple[str | int, ...]:
        """A classifier's labels in the column order of its probabilities; () otherwise."""
        ...

    @property
    def version_warning(self) -> str:
        """Set when a library version mismatch was allowed; "" otherwise."""
        ...

    def schema(self) -> SchemaT:
        """Its inputs; UnsupportedModelError for a model this format does not convert."""
        ...

    def to_onnx(self, schema: SchemaT, log: Log) -> bytes:
        """The serialized ONNX model to serve (the file itself for a passthrough)."""
        ...

    def parity(self, schema: SchemaT, session: Any, plan: ParityPlan, log: Log) -> dict[str, Any]:
        """The parity figures of the ONNX model (`session`) against the original
        (`check.against_original`), or of a self-check where there is no original;
        ParityError carrying the figures when they fail."""
        ...


class Format(Protocol):
    """One way a model file can be saved, and how to load such a file safely. A format
    may subclass this explicitly to take the defaults of `unpickles` and `recognises`."""

    name: str  # the --format value and the CRD's spec.model.format enum entry
    doc: str  # one line for --help and docs/models.md
    file_kind: str  # what its files are called in a refusal: "a <file_kind> file"
    # Loading runs code: refused before download without --allow-unsafe-pickle.
    unpickles: bool = False

    def recognises(self, head: bytes) -> bool:
        """Whether a file starting with `head` is unmistakably this format's. By default
        it never is (files without magic): such a format is never named in a refusal."""
        return False

    def load(self, path: Path, options: LoadOptions, log: Log) -> Model[Any]:
        """Open the file with every check this format needs; a ConvertError says why not."""
        ...


def sniff(head: bytes) -> str:
    """What the first bytes look like: "zip" (skops), "pickle" or "other"."""
    if head.startswith(_ZIP):
        return "zip"
    if head.startswith(_PICKLE_MAGICS):
        return "pickle"
    return "other"


def get(name: str) -> Format:
    """The registered format `name`; UsageError naming the ones that exist."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown format {name!r}; expected one of {', '.join(REGISTRY)}"
        ) from None


def refuse_before_fetch(fmt: Format, options: LoadOptions) -> None:
    """Refuse pickle before downloading anything: no reason to fetch what we won't open."""
    if fmt.unpickles and not options.allow_unsafe_pickle:
        raise UnsafeFormatError(PICKLE_REFUSAL)


def refuse_other_formats(fmt: Format, head: bytes) -> None:
    """A file that another format recognises, given as `fmt`, is a usage error naming
    the right --format: the user picked the wrong flag, the file is not corrupt."""
    if fmt.recognises(head):
        return
    for other in REGISTRY.values():
        if other.name != fmt.name and other.recognises(head):
            raise UsageError(
                f"--format {fmt.name}, but the file is a {other.file_kind} file "
                f"(--format {other.name})"
            )


def load(fmt: Format, path: Path, options: LoadOptions, log: Log) -> Model[Any]:
    """Load `path` as `fmt`, after the checks every format shares: the pickle refusal
    (again, so that no caller can skip it), an empty file, another format's file."""
    refuse_before_fetch(fmt, options)
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head:
        raise IntegrityError("the model file is empty")
    refuse_other_formats(fmt, head)
    return fmt.load(path, options, log)


# The registry: at the end, because each format module imports what is above. The format
# modules import their libraries (and NumPy) where they load or prove a model, not at
# the top: `--help` and a conversion reused from the cache read this registry and
# nothing more.
from mlmodel_runtime.convert.formats import boosters, onnx, sklearn, skops  # noqa: E402

_FORMATS: tuple[Format, ...] = (
    skops.SkopsFormat(),
    sklearn.SklearnFormat(),
    onnx.OnnxFormat(),
    boosters.XGBoostFormat(),
    boosters.LightGBMFormat(),
)
REGISTRY: dict[str, Format] = {fmt.name: fmt for fmt in _FORMATS}
