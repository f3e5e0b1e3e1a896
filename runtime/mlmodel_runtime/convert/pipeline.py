"""The conversion as a sequence of phases: fetch, load, schema, export, parity, write.

Called by `command.run`, which owns arguments, logging and the report. The
fetch phase either downloads the model (`--uri`) or reads and verifies the one
`mlmodel-runtime fetch` left in a source directory (`--source`). Loading, the
schema, the export and parity belong to the model's format (`formats/`); this
module calls them in order, times each, and keeps what has been learned as a
`Learned` value, returned with the result or carried by `ConversionFailed`, so
that a failure report still says what the model was. metadata.json is built
once, from what the phases returned. Nothing is written to the output directory
until parity has passed, and then model.onnx before metadata.json, each
atomically: a reader that sees metadata.json sees the model it describes.

With a cache (`--cache-dir`), the `cache` phase comes right after fetch: the key of
this conversion (`reuse.py`: the model's digest, the versions that convert, the
options) is looked up (`cache.py`), and a passed conversion with the same key is
restored instead of converting again; its recorded parity figures are the ones the
report and metadata.json give. Otherwise the model is converted and proven as
always, and stored for the next pod once it has passed.

Importing this module imports nothing heavy: NumPy, ONNX and the model libraries come
with the phases that use them, so a reused conversion pays for none of them.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmodel_runtime.convert import cache, cachestep, families, fetch, formats, reuse, sourcedir
from mlmodel_runtime.convert.errors import UsageError
from mlmodel_runtime.convert.learned import ConversionFailed, Learned
from mlmodel_runtime.convert.plan import ParityPlan
from mlmodel_runtime.convert.redact import redact_uri
from mlmodel_runtime.modeldir import (
    BASELINE_FILE,
    MODEL_FILE,
    ModelMetadata,
    Task,
    TensorSpec,
    write_atomically,
    write_metadata,
)

if TYPE_CHECKING:
    from mlmodel_runtime.convert import baseline
    from mlmodel_runtime.convert.schema import InputSchema

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
    load: formats.LoadOptions = field(default_factory=formats.LoadOptions)
    parity: ParityPlan = field(default_factory=ParityPlan)
    # The quality gate's score: a labelled .npz (or the one fetched beside the model)
    # and the metric to compute on it.
    evaluation: Path | None = None
    evaluation_metric: str | None = None
    fetch_options: fetch.FetchOptions = field(default_factory=fetch.FetchOptions)
    cache: cachestep.CacheOptions | None = None  # off unless --cache-dir


@dataclass(frozen=True)
class Converted:
    """A conversion that passed: what metadata.json says, and what the report says."""

    metadata: ModelMetadata
    learned: Learned


def library_versions() -> dict[str, str]:
    """The versions that made this conversion: the core libraries, and a model
    family's library and onnxmltools once loaded in this process (in the init
    container, one conversion per process: when this conversion used them). Read
    from the module: XGBoost installs as `xgboost` or `xgboost-cpu`."""
    from importlib import metadata as importlib_metadata

    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    for module in (*(f.name for f in families.FAMILIES), "onnxmltools"):
        version = getattr(sys.modules.get(module), "__version__", None)
        if version:
            versions[module] = str(version)
    return versions


class _Stopwatch:
    """Seconds per phase, for metadata.json and the report."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._timings: dict[str, float] = {}
        self._clock = clock

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self._timings[name] = round(self._clock() - start, 4)

    def timings(self) -> dict[str, float]:
        return dict(self._timings)


def convert(
    request: Request,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    clock: Callable[[], float] = time.perf_counter,
) -> Converted:
    """Run every phase and return the result; a ConvertError when nothing was learned
    yet, otherwise ConversionFailed carrying the error and what was learned."""
    fmt = formats.get(request.fmt)
    formats.refuse_before_fetch(fmt, request.load)
    try:
        request.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {request.out}: {exc.strerror}") from exc
    stopwatch = _Stopwatch(clock)
    # A failed download still says what it tried.
    learned = Learned(
        source=None if request.uri is None else _source(request, redact_uri(request.uri))
    )
    try:
        # Download next to the output so a large model does not fill a small /tmp.
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=request.out) as work:
            with stopwatch.phase("fetch"):
                fetched, shown_uri = _obtain(request, Path(work), environ, log)
            source = _source(request, shown_uri, fetched)
            learned = replace(learned, source=source)
            plan = _parity_plan(request, log)
            dataset = _evaluation_dataset(request)
            looked_up: cachestep.LookedUp | None = None
            if request.cache is not None:
                with stopwatch.phase("cache"):
                    looked_up = cachestep.look_up(
                        request.cache,
                        _key_parts(request, fetched, plan, dataset),
                        unpickles=fmt.unpickles,
                    )
                learned = replace(learned, cache=looked_up.report())
                log(looked_up.says())
            decision = looked_up.decision if looked_up is not None else None
            if looked_up is not None and isinstance(decision, reuse.Reuse):
                with stopwatch.phase("write"):
                    metadata = cache.restore(
                        decision.entry, request.out, source=source, timings=stopwatch.timings()
                    )
                    cache.touch(looked_up.options.root, looked_up.key)
                learned = cachestep.recorded(decision.entry, metadata, learned)
            else:
                with stopwatch.phase("load"):
                    model = formats.load(fmt, fetched.path, request.load, log)
                learned = replace(
                    learned,
                    estimator=model.estimator,
                    task=model.task,
                    version_warning=model.version_warning,
                )
                log(f"loaded {model.estimator} ({model.task})")
                with stopwatch.phase("schema"):
                    schema = model.schema()
                inputs = schema.tensor_specs()
                learned = replace(learned, inputs=inputs)
                with stopwatch.phase("export"):
                    onnx_bytes = model.to_onnx(schema, log)
                    session = _served_session(model, onnx_bytes)
                outputs = _output_specs(session)
                learned = replace(learned, outputs=outputs)
                with stopwatch.phase("parity"):
                    parity = model.parity(schema, session, plan, log)
                learned = replace(learned, parity=parity)
                trained = _baseline(plan, schema, model, session, log)
                learned = replace(learned, baseline=trained.summary() if trained else None)
                if labelled := _evaluation_set(request, dataset, schema):
                    with stopwatch.phase("evaluation"):
                        scored = _evaluate(request, labelled, model, schema, session, log)
                    learned = replace(learned, evaluation=scored)
                metadata = _metadata(
                    model,
                    inputs=inputs,
                    outputs=outputs,
                    onnx_bytes=onnx_bytes,
                    parity=parity,
                    source=source,
                    timings=stopwatch.timings(),
                )
                written = {MODEL_FILE: onnx_bytes}
                if trained is not None:
                    written[BASELINE_FILE] = trained.to_json().encode()
                with stopwatch.phase("write"):
                    for name, payload in written.items():
                        write_atomically(request.out / name, payload)
                    write_metadata(request.out, metadata)
                may_store = isinstance(decision, reuse.Convert) and decision.may_store
                if looked_up is not None and may_store:
                    with stopwatch.phase("store"):
                        stored = cachestep.store(looked_up, written, metadata, learned)
                    learned = replace(learned, cache={**looked_up.report(), **stored})
                    log(f"cache: {'stored' if stored['stored'] else 'not stored'} {stored}")
        log(f"wrote {request.out / MODEL_FILE} and metadata.json")
        if request.source_dir is not None:
            sourcedir.remove_model(request.source_dir)
            log(f"removed {request.source_dir / sourcedir.MODEL_FILE}")
    except Exception as exc:
        raise ConversionFailed(exc, replace(learned, timings=stopwatch.timings())) from exc
    return Converted(metadata, replace(learned, timings=stopwatch.timings()))


def _served_session(model: formats.Model[Any], onnx_bytes: bytes) -> Any:
    """The ONNX Runtime session parity runs: for a passthrough the one loading opened on
    these very bytes, otherwise a new one on the converted model."""
    from mlmodel_runtime.convert import ortsession
    from mlmodel_runtime.convert.formats.onnx import OnnxModel

    if isinstance(model, OnnxModel) and model.session is not None:
        return model.session
    return ortsession.session(onnx_bytes, what="the converted model")


def _key_parts(
    request: Request,
    fetched: fetch.Fetched,
    plan: ParityPlan,
    dataset: tuple[Path, dict[str, Any]] | None,
) -> cachestep.KeyParts:
    load = request.load
    return cachestep.KeyParts(
        source_sha256=fetched.sha256,
        fmt=request.fmt,
        trust=load.trust,
        allow_unsafe_pickle=load.allow_unsafe_pickle,
        allow_version_mismatch=load.allow_version_mismatch,
        max_unpacked_bytes=load.max_unpacked_bytes,
        plan=plan,
        evaluation_sha256=dataset[1].get("sha256") if dataset is not None else None,
        evaluation_metric=request.evaluation_metric,
    )


def _output_specs(session: Any) -> tuple[TensorSpec, ...]:
    from mlmodel_runtime.convert import ortsession

    return ortsession.tensor_specs(session.get_outputs())


def _baseline(
    plan: ParityPlan,
    schema: Any,
    model: formats.Model[Any],
    session: Any,
    log: Callable[[str], None],
) -> baseline.Baseline | None:
    """The training baseline from the sample parity used, when it was one from
    training (the reference or --sample-data; generated rows are not), for a model
    whose inputs the converter knows (not an ONNX passthrough)."""
    from mlmodel_runtime.convert import baseline, check, sampling
    from mlmodel_runtime.convert.schema import InputSchema

    if not isinstance(schema, InputSchema):
        return None
    if plan.reference is not None:
        feeds = sampling.read_reference(plan.reference, schema).feeds
        source = f"reference {plan.reference.name}"
    elif plan.sample_data is not None:
        feeds = sampling.read_samples(plan.sample_data, schema, plan.samples)
        source = f"file {plan.sample_data.name}"
    else:
        return None
    served = check.run_onnx(session, feeds, model.task)
    predicted = served.label if model.task == "classification" else served.predictions
    trained = baseline.build(
        feeds, schema, task=model.task, predicted=predicted, classes=model.classes, source=source
    )
    log(
        f"training baseline of {len(trained.features)} feature(s) from {trained.rows} rows "
        f"({source})"
    )
    return trained


def _parity_plan(request: Request, log: Callable[[str], None]) -> ParityPlan:
    """The request's plan, with the reference `fetch --reference-uri` put beside the
    model (checked against its description like the model), or the --reference file,
    named with its digest so the report says which reference proved parity."""
    plan = request.parity
    if plan.reference is None and request.source_dir is not None:
        fetched = sourcedir.read_extra(
            request.source_dir, sourcedir.REFERENCE, max_bytes=request.fetch_options.max_bytes
        )
        if fetched is not None:
            reference, source = fetched
            log(f"parity against the reference {source.uri} ({source.bytes} bytes)")
            return replace(plan, reference=reference.path, reference_source=source.to_json())
    if plan.reference is not None and plan.reference_source is None:
        digest = hashlib.sha256(plan.reference.read_bytes()).hexdigest()
        described = {"uri": str(plan.reference), "sha256": digest}
        return replace(plan, reference_source=described)
    return plan


def _evaluation_dataset(request: Request) -> tuple[Path, dict[str, Any]] | None:
    """The labelled set given (--evaluation) or fetched beside the model, and which one
    it is (its digest is part of the cache key); None when there is none."""
    if request.evaluation is not None:
        digest = hashlib.sha256(request.evaluation.read_bytes()).hexdigest()
        return request.evaluation, {"uri": str(request.evaluation), "sha256": digest}
    if request.source_dir is None:
        return None
    fetched = sourcedir.read_extra(
        request.source_dir, sourcedir.EVALUATION, max_bytes=request.fetch_options.max_bytes
    )
    return None if fetched is None else (fetched[0].path, fetched[1].to_json())


def _evaluation_set(
    request: Request, dataset: tuple[Path, dict[str, Any]] | None, schema: Any
) -> tuple[Path, dict[str, Any]] | None:
    """The labelled set to score on and which one it is, or None when none was asked
    (then no evaluation phase is timed either)."""
    from mlmodel_runtime.convert.schema import InputSchema

    if dataset is None and request.evaluation_metric is None:
        return None
    if dataset is None or request.evaluation_metric is None:
        raise UsageError("an evaluation needs both a labelled dataset and --evaluation-metric")
    if not isinstance(schema, InputSchema):
        raise UsageError(
            "an evaluation needs a model format with an original (skops, sklearn); an ONNX "
            "model is served as is"
        )
    return dataset


def _evaluate(
    request: Request,
    labelled: tuple[Path, dict[str, Any]],
    model: formats.Model[Any],
    schema: InputSchema,
    session: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The converted model's score on the labelled set."""
    from mlmodel_runtime.convert import evaluation

    dataset, described = labelled
    assert request.evaluation_metric is not None  # checked by _evaluation_set
    return evaluation.evaluate(
        session,
        schema,
        dataset,
        request.evaluation_metric,
        task=model.task,
        described=described,
        log=log,
    )


def _source(
    request: Request, shown_uri: str, fetched: fetch.Fetched | None = None
) -> dict[str, Any]:
    """metadata.json's and the report's `source`: the URI as it may be shown, the
    format, and once the file is here its digest and size."""
    if fetched is None:
        return {"uri": shown_uri, "format": request.fmt}
    return {
        "uri": shown_uri,
        "format": request.fmt,
        "sha256": fetched.sha256,
        "bytes": fetched.size,
    }


def _metadata(
    model: formats.Model[Any],
    *,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    onnx_bytes: bytes,
    parity: dict[str, Any],
    source: dict[str, Any],
    timings: dict[str, float],
) -> ModelMetadata:
    """metadata.json, from what the phases returned: the one place it is built."""
    label_output, probabilities_output = _output_roles(model.task, outputs)
    return ModelMetadata(
        inputs=inputs,
        outputs=outputs,
        task=model.task,
        classes=model.classes,
        label_output=label_output,
        probabilities_output=probabilities_output,
        opset=_opset(onnx_bytes),
        source=source,
        model_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        libraries=library_versions(),
        timings=timings,
        parity=parity,
        estimator=model.estimator,
    )


def _output_roles(task: Task, outputs: tuple[TensorSpec, ...]) -> tuple[str, str]:
    """(label, probabilities) output names, by the convention every format converts to:
    a classifier answers `label` and `probabilities`, a regressor's first output is its
    value, and nothing is known of a model that is neither."""
    from mlmodel_runtime.convert import check

    if task == "classification":
        return check.LABEL, check.PROBABILITIES
    if task == "regression":
        return outputs[0].name, ""
    return "", ""


def _opset(onnx_bytes: bytes) -> int:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


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
