"""The `mlmodel-runtime convert` subcommand: arguments, logging, report, exit code.

Thin shell around `pipeline.convert`. The model comes either from `--source DIR`
(written by `mlmodel-runtime fetch` in an earlier init container: no network,
no credentials here) or from `--uri` (fetch and convert in one process, for
people running it by hand). stdout carries exactly one line, the JSON report
(also written to --report-file, by default the kubelet's /dev/termination-log
when it exists); progress goes to stderr. Exit codes are `errors.ExitCode`,
documented in docs/convert.md. `--format` offers the formats registered in
`formats.REGISTRY`.

The conversion runs in a fresh, empty working directory, so that no relative
path inside a model (ONNX external data, say) can resolve to a real file;
every path argument is made absolute before that.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmodel_runtime.convert import cache, cli_shared, formats, workdir
from mlmodel_runtime.convert.errors import ConvertError, UsageError
from mlmodel_runtime.convert.evaluation import METRICS
from mlmodel_runtime.convert.fetch import read_pinned_sha256
from mlmodel_runtime.convert.learned import ConversionFailed, Learned
from mlmodel_runtime.convert.plan import Tolerance

if TYPE_CHECKING:
    from mlmodel_runtime.convert.pipeline import Converted

_PATH_ARGUMENTS = (
    "out", "source", "sample_data", "reference", "evaluation", "report_file", "sha256_file",
    "cache_dir",
)  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = cli_shared.EPILOG
    add = parser.add_argument
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="a directory written by `mlmodel-runtime fetch` (DIR/model, DIR/source.json)",
    )
    origin.add_argument(
        "--uri",
        help="fetch first: file path, file://, pvc://claim/path, http(s)://, s3://, gs://",
    )
    # The registry is read when the parser is built, so every registered format is offered.
    add(
        "--format",
        required=True,
        choices=list(formats.REGISTRY),
        dest="fmt",
        help="how the model was saved: "
        + "; ".join(f"{fmt.name}: {fmt.doc}" for fmt in formats.REGISTRY.values()),
    )
    add("--out", required=True, type=Path, help="directory for model.onnx and metadata.json")
    add("--allow-unsafe-pickle", action="store_true", help="allow --format sklearn (runs code)")
    add(
        "--trust-type",
        action="append",
        default=[],
        metavar="NAME",
        help="trust this type in a skops file (repeatable)",
    )
    add(
        "--allow-version-mismatch",
        action="store_true",
        help="accept a model saved with another scikit-learn version",
    )
    add("--sample-data", type=Path, metavar="FILE", help="parity inputs: .npy, .csv or .parquet")
    add(
        "--reference",
        type=Path,
        metavar="FILE",
        help=".npz with inputs and the predictions from the training environment",
    )
    add(
        "--evaluation",
        type=Path,
        metavar="FILE",
        help=".npz with inputs and their true answers (target) to score the model on "
        "(with --source, the one fetch put beside the model is used)",
    )
    add(
        "--evaluation-metric",
        choices=list(METRICS),
        help="; ".join(f"{m.name}: {m.doc}" for m in METRICS.values()),
    )
    add("--parity-samples", type=int, default=256, metavar="N", help="rows (default 256)")
    add("--rtol", type=float, default=Tolerance.rtol, help="relative tolerance (default 1e-4)")
    add("--atol", type=float, default=Tolerance.atol, help="absolute tolerance (default 1e-5)")
    add(
        "--max-unpacked-bytes",
        type=int,
        metavar="N",
        help="limit on the unpacked members of a skops archive (default: --max-bytes)",
    )
    add(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="reuse a passed conversion of the same model file by the same versions with "
        "the same options from DIR, and store new ones there (default: off)",
    )
    add(
        "--cache-max-bytes",
        type=int,
        default=cache.DEFAULT_MAX_BYTES,
        metavar="N",
        help="least recently used cache entries go beyond this (default 1 GiB)",
    )
    cli_shared.add_source_arguments(parser)
    cli_shared.add_report_arguments(parser)
    cli_shared.report_usage_errors(parser)


def _absolute_paths(args: argparse.Namespace) -> None:
    """Resolve path flags against the caller's directory before leaving it."""
    for name in _PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, value.absolute())


def request_from_args(args: argparse.Namespace) -> Any:
    from mlmodel_runtime.convert.cachestep import CacheOptions
    from mlmodel_runtime.convert.pipeline import Request
    from mlmodel_runtime.convert.plan import ParityPlan

    sha256 = cli_shared.checked_sha256(args.sha256)
    if args.parity_samples < 1:
        raise UsageError("--parity-samples must be at least 1")
    if args.rtol < 0 or args.atol < 0:
        raise UsageError("--rtol and --atol must not be negative")
    options = cli_shared.fetch_options(args)
    unpacked = args.max_unpacked_bytes if args.max_unpacked_bytes is not None else args.max_bytes
    if unpacked < 1:
        raise UsageError("--max-unpacked-bytes must be positive")
    if args.sample_data is not None and args.reference is not None:
        raise UsageError("give --sample-data or --reference, not both")
    if args.cache_max_bytes < 1:
        raise UsageError("--cache-max-bytes must be positive")
    for flag, path in (
        ("--sample-data", args.sample_data),
        ("--reference", args.reference),
        ("--evaluation", args.evaluation),
    ):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
    return Request(
        uri=args.uri,
        source_dir=args.source,
        fmt=args.fmt,
        out=args.out,
        sha256=sha256,
        pinned_sha256=read_pinned_sha256(args.sha256_file),
        load=formats.LoadOptions(
            trust=tuple(args.trust_type),
            allow_unsafe_pickle=args.allow_unsafe_pickle,
            allow_version_mismatch=args.allow_version_mismatch,
            max_unpacked_bytes=unpacked,
        ),
        parity=ParityPlan(
            samples=args.parity_samples,
            tolerance=Tolerance(rtol=args.rtol, atol=args.atol),
            sample_data=args.sample_data,
            reference=args.reference,
        ),
        evaluation=args.evaluation,
        evaluation_metric=args.evaluation_metric,
        fetch_options=options,
        cache=(
            None
            if args.cache_dir is None
            else CacheOptions(root=args.cache_dir, max_bytes=args.cache_max_bytes)
        ),
    )


def _success(converted: Converted) -> dict[str, Any]:
    metadata = converted.metadata
    done = f"converted {metadata.estimator}; parity passed"
    if (converted.learned.cache or {}).get("reused"):
        done = (
            f"reused the conversion of {metadata.estimator} cached for this model digest, "
            "these converter versions and options; its parity check passed"
        )
    return {
        "status": "ok",
        "error": None,
        "exit_code": 0,
        "message": done + _scored(converted),
        "model_sha256": metadata.model_sha256,
        "opset": metadata.opset,
        **converted.learned.report_fields(),
        "libraries": metadata.libraries,
    }


def _scored(converted: Converted) -> str:
    scored = converted.learned.evaluation
    if not scored:
        return ""
    return f"; {scored['metric']} {scored['score']:.4g} on {scored['rows']} labelled rows"


def _failure(error: Exception, learned: Learned, log: cli_shared.Log) -> dict[str, Any]:
    """The report of a failed run, with what was learned before it failed."""
    if isinstance(error, ConvertError):
        cli_shared.log_failure(error, log)
        return cli_shared.failure(error, learned.report_fields())
    # A bug: the report must be written whatever happened.
    return cli_shared.failure(cli_shared.internal_failure(error, log), learned.report_fields())


def _convert(
    args: argparse.Namespace, environ: Mapping[str, str], log: cli_shared.Log
) -> dict[str, Any]:
    from mlmodel_runtime.convert.pipeline import convert

    request = request_from_args(args)
    with workdir.empty_working_directory():
        converted = convert(request, environ=environ, log=log)
    return _success(converted)


def run(args: argparse.Namespace) -> int:
    environ = os.environ
    redactor = cli_shared.redactor_for(args, environ)
    log = cli_shared.make_logger(args.log_format, "convert", redactor)
    _absolute_paths(args)
    with cli_shared.warnings_to(log):
        try:
            body = _convert(args, environ, log)
        except ConversionFailed as failed:
            body = _failure(failed.error, failed.learned, log)
        except Exception as exc:  # refused before anything was learned, or a bug
            body = _failure(exc, Learned(), log)
    return cli_shared.finish(body, args.report_file, redactor)
