"""The conversion as a sequence of phases: fetch, load, schema, export, parity, write.

Called by `command.run`, which owns arguments, logging and the report. The
fetch phase either downloads the model (`--uri`) or reads and verifies the one
`mlmodel-runtime fetch` left in a source directory (`--source`). Each
phase is timed; what has been learned so far is recorded in `facts` as it is
learned, so that a failure report still says what the model was. Nothing is
written to the output directory until parity has passed, and then model.onnx
before metadata.json, each atomically: a reader that sees metadata.json sees
the model it describes.
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from mlmodel_runtime.convert import (
    check,
    export,
    fetch,
    load,
    ortsession,
    sampling,
    schema,
    sourcedir,
)
from mlmodel_runtime.convert.errors import UnsupportedModelError, UsageError
from mlmodel_runtime.convert.parity import Tolerance
from mlmodel_runtime.convert.redact import redact_uri
from mlmodel_runtime.convert.sanitize import describe
from mlmodel_runtime.datatypes import ORT_TO_V2
from mlmodel_runtime.modeldir import (
    MODEL_FILE,
    ModelMetadata,
    TensorSpec,
    write_atomically,
    write_metadata,
)

LIBRARIES = ("scikit-learn", "skl2onnx", "skops", "onnx", "onnxruntime", "numpy", "fsspec")


@dataclass(frozen=True)
class Request:
    """What to convert. Exactly one of `uri` (download it) and `source_dir` (fetched)."""

    fmt: str
    out: Path
    uri: str | None = None
    source_dir: Path | None = None
    sha256: str | None = None
    pinned_sha256: str | None = None
    allow_unsafe_pickle: bool = False
    trust: tuple[str, ...] = ()
    allow_version_mismatch: bool = False
    sample_data: Path | None = None
    reference: Path | None = None
    parity_samples: int = 256
    tolerance: Tolerance = field(default_factory=Tolerance)
    fetch_options: fetch.FetchOptions = field(default_factory=fetch.FetchOptions)
    max_unpacked_bytes: int = fetch.DEFAULT_MAX_BYTES


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _spec(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in (node.shape or ()))
    return TensorSpec(node.name, ORT_TO_V2.get(node.type, node.type), shape)


def _plain_class(value: Any) -> str | int:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def _opset(onnx_bytes: bytes) -> int:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class _Timer:
    def __init__(self, log: Callable[[str], None], clock: Callable[[], float]) -> None:
        self.timings: dict[str, float] = {}
        self._log = log
        self._clock = clock

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self.timings[name] = round(self._clock() - start, 4)


def convert(
    request: Request,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    facts: dict[str, Any],
    clock: Callable[[], float] = time.perf_counter,
) -> ModelMetadata:
    """Run every phase; raise a ConvertError on failure; return what metadata.json says."""
    load.refuse_unsafe_early(request.fmt, allow_unsafe_pickle=request.allow_unsafe_pickle)
    try:
        request.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {request.out}: {exc.strerror}") from exc
    timer = _Timer(log, clock)
    facts["timings"] = timer.timings
    # Download next to the output so a large model does not fill a small /tmp.
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=request.out) as work:
        if request.uri is not None:  # a failed download still says what it tried
            facts["source"] = {"uri": redact_uri(request.uri), "format": request.fmt}
        with timer.phase("fetch"):
            fetched, shown_uri = _obtain(request, Path(work), environ, log)
        facts["source"] = {
            "uri": shown_uri,
            "format": request.fmt,
            "sha256": fetched.sha256,
            "bytes": fetched.size,
        }
        with timer.phase("load"):
            loaded = load.load(
                fetched.path,
                fmt=request.fmt,
                trust=request.trust,
                allow_unsafe_pickle=request.allow_unsafe_pickle,
                allow_version_mismatch=request.allow_version_mismatch,
                max_unpacked_bytes=request.max_unpacked_bytes,
                log=log,
            )
        if loaded.version_warning:
            facts["version_warning"] = loaded.version_warning
        if loaded.format == "onnx":
            onnx_bytes = loaded.onnx_bytes
            metadata = _passthrough(request, onnx_bytes, timer, log, facts)
        else:
            onnx_bytes, metadata = _convert_estimator(request, loaded.estimator, timer, log, facts)
        with timer.phase("write"):
            write_atomically(request.out / MODEL_FILE, onnx_bytes)
            final = _with_timings(metadata, timer.timings)
            write_metadata(request.out, final)
    log(f"wrote {request.out / MODEL_FILE} and metadata.json")
    if request.source_dir is not None:
        sourcedir.remove_model(request.source_dir)
        log(f"removed {request.source_dir / sourcedir.MODEL_FILE}")
    return _with_timings(final, timer.timings)


def _obtain(
    request: Request, work: Path, environ: Mapping[str, str], log: Callable[[str], None]
) -> tuple[fetch.Fetched, str]:
    """The local model file and its URI as it may be shown (redacted)."""
    if request.source_dir is not None:
        fetched, source = sourcedir.read(
            request.source_dir, max_bytes=request.fetch_options.max_bytes
        )
        log(f"reading {fetched.path} ({fetched.size} bytes from {source.uri})")
        fetch.verify_digests(
            fetched,
            shown=source.uri,
            expected_sha256=request.sha256,
            pinned_sha256=request.pinned_sha256,
        )
        return fetched, source.uri
    if request.uri is None:
        raise UsageError("give --uri or --source")
    fetched = fetch.fetch(
        request.uri,
        dest=work,
        options=request.fetch_options,
        expected_sha256=request.sha256,
        pinned_sha256=request.pinned_sha256,
        environ=environ,
        log=log,
    )
    return fetched, redact_uri(request.uri)


def _with_timings(metadata: ModelMetadata, timings: dict[str, float]) -> ModelMetadata:
    return replace(metadata, timings=dict(timings))


def _convert_estimator(
    request: Request,
    estimator: Any,
    timer: _Timer,
    log: Callable[[str], None],
    facts: dict[str, Any],
) -> tuple[bytes, ModelMetadata]:
    name = schema.dotted_name(estimator)
    facts["estimator"] = name
    task = schema.task_of(estimator)
    facts["task"] = task
    log(f"loaded {name} ({task})")
    if task == "other":
        raise UnsupportedModelError(
            f"{name} is neither a classifier nor a regressor; only those are converted "
            f"(supported estimators: {export.SUPPORTED_DOC})"
        )
    with timer.phase("schema"):
        input_schema = schema.infer_schema(estimator)
        inputs = input_schema.tensor_specs()
        facts["inputs"] = inputs
    log(f"converting with skl2onnx: {len(inputs)} input(s)")
    with timer.phase("export"):
        onnx_bytes = export.to_onnx(estimator, input_schema)
        session = ortsession.session(onnx_bytes, what="the converted model")
    outputs = tuple(_spec(o) for o in session.get_outputs())
    facts["outputs"] = outputs

    reference = None
    if request.reference is not None:
        reference = sampling.read_reference(request.reference, input_schema)
        feeds, source = reference.feeds, f"reference {request.reference.name}"
    elif request.sample_data is not None:
        feeds = sampling.read_samples(request.sample_data, input_schema, request.parity_samples)
        source = f"file {request.sample_data.name}"
    else:
        feeds = sampling.generate(input_schema, request.parity_samples)
        source = "generated"
    rows = sampling.row_count(feeds)
    if rows == 0:
        raise UsageError("the sample data has no rows")
    log(f"parity on {rows} rows ({source})")
    classes = np.asarray(getattr(estimator, "classes_", []))
    with timer.phase("parity"):
        original = check.run_original(
            estimator, sampling.to_sklearn_input(feeds, input_schema), task
        )
        converted = check.run_onnx(session, feeds, task)
        parity = check.check_parity(
            task=task,
            classes=classes,
            original=original,
            converted=converted,
            reference=reference,
            tol=request.tolerance,
            source=source,
        )
    facts["parity"] = parity
    classifier = task == "classification"
    return onnx_bytes, ModelMetadata(
        inputs=inputs,
        outputs=outputs,
        task="classification" if classifier else "regression",
        classes=tuple(_plain_class(c) for c in classes.tolist()) if classifier else (),
        label_output=check.LABEL if classifier else outputs[0].name,
        probabilities_output=check.PROBABILITIES if classifier else "",
        opset=_opset(onnx_bytes),
        source=facts["source"],
        model_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        libraries=library_versions(),
        parity=parity,
        estimator=name,
    )


def _passthrough(
    request: Request,
    onnx_bytes: bytes,
    timer: _Timer,
    log: Callable[[str], None],
    facts: dict[str, Any],
) -> ModelMetadata:
    """An ONNX model is served as given; run it once to prove it loads and answers finitely."""
    facts["estimator"] = "onnx"
    session = ortsession.session(onnx_bytes, what="the model")
    inputs = tuple(_spec(i) for i in session.get_inputs())
    outputs = tuple(_spec(o) for o in session.get_outputs())
    facts["inputs"], facts["outputs"] = inputs, outputs
    names = {o.name for o in outputs}
    classifier = {check.LABEL, check.PROBABILITIES} <= names
    facts["task"] = "classification" if classifier else "other"
    rows = min(request.parity_samples, 64)
    with timer.phase("parity"):
        feeds = sampling.generate_for_onnx(
            [(i.name, i.type, list(i.shape or ())) for i in session.get_inputs()], rows
        )
        log(f"onnx passthrough: running the model once on {rows} generated rows")
        try:
            values = session.run(None, feeds)
        except Exception as exc:
            raise UnsupportedModelError(
                f"the ONNX model fails on generated inputs: {describe(exc)}"
            ) from exc
        check.ensure_finite(
            check.Outputs(
                predictions=np.concatenate(
                    [
                        np.asarray(v, dtype=np.float64).reshape(-1)
                        for v in values
                        if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                    ]
                    or [np.zeros(0)]
                )
            ),
            "ONNX",
        )
    parity = {"status": "skipped: onnx passthrough", "passed": True, "rows": rows, "finite": True}
    facts["parity"] = parity
    return ModelMetadata(
        inputs=inputs,
        outputs=outputs,
        task="classification" if classifier else "other",
        label_output=check.LABEL if classifier else "",
        probabilities_output=check.PROBABILITIES if classifier else "",
        opset=_opset(onnx_bytes),
        source=facts["source"],
        model_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        libraries=library_versions(),
        parity=parity,
        estimator="onnx",
    )
