"""The `mlmodel-runtime convert` subcommand: arguments, logging, report, exit code.

Thin shell around `pipeline.convert`. stdout carries exactly one line, the JSON
report (also written to --report-file, by default the kubelet's
/dev/termination-log when it exists); progress goes to stderr. Exit codes are
`errors.ExitCode`, documented in docs/convert.md. Everything printed goes
through one `redact.Redactor`, so a credential in the URI or the Authorization
header reaches no log line, report or traceback.

The conversion runs in a fresh, empty working directory, so that no relative
path inside a model (ONNX external data, say) can resolve to a real file;
every path argument is made absolute before that.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from mlmodel_runtime.convert import report as report_mod
from mlmodel_runtime.convert import workdir
from mlmodel_runtime.convert.errors import ConvertError, ExitCode, UsageError
from mlmodel_runtime.convert.fetch import AUTHORIZATION_ENV, DEFAULT_MAX_BYTES, FetchOptions
from mlmodel_runtime.convert.load import FORMATS
from mlmodel_runtime.convert.parity import Tolerance
from mlmodel_runtime.convert.redact import Redactor
from mlmodel_runtime.convert.sanitize import clean, describe, printable
from mlmodel_runtime.modeldir import ModelMetadata

_PATH_ARGUMENTS = ("out", "sample_data", "reference", "report_file")
_TRACEBACK_FRAMES = 12
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_EPILOG = (
    "exit codes: 0 ok, 1 internal error, 2 usage/bad input, 3 fetch failure (the report "
    "says whether it is retryable), "
    "4 integrity failure, 5 unsafe format refused, 6 unsupported model, "
    "7 parity failure, 8 scikit-learn version mismatch (see docs/convert.md)"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    add = parser.add_argument
    add(
        "--uri",
        required=True,
        help="file path, file://, pvc://claim/path, http(s)://, s3://, gs://",
    )
    add("--format", required=True, choices=FORMATS, dest="fmt", help="how the model was saved")
    add("--out", required=True, type=Path, help="directory for model.onnx and metadata.json")
    add("--sha256", help="expected sha256 of the model file; a mismatch is refused")
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
    add("--parity-samples", type=int, default=256, metavar="N", help="rows (default 256)")
    add("--rtol", type=float, default=Tolerance.rtol, help="relative tolerance (default 1e-4)")
    add("--atol", type=float, default=Tolerance.atol, help="absolute tolerance (default 1e-5)")
    add(
        "--report-file",
        type=Path,
        metavar="PATH",
        help="also write the report here (default: /dev/termination-log if it exists)",
    )
    add("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="size limit (default 2 GiB)")
    add(
        "--max-unpacked-bytes",
        type=int,
        metavar="N",
        help="limit on the unpacked members of a skops archive (default: --max-bytes)",
    )
    add("--timeout", type=float, default=30.0, metavar="SECONDS", help="network timeout")
    add("--retries", type=int, default=3, metavar="N", help="retries of network fetches")
    add(
        "--s3-endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)",
    )
    add(
        "--mount-root",
        type=Path,
        default=Path("/mnt/pvc"),
        metavar="DIR",
        help="where pvc://claim/path volumes are mounted (default /mnt/pvc)",
    )
    add("--log-format", choices=("text", "json"), default="text", help="stderr log format")
    _report_usage_errors(parser)


def _report_usage_errors(parser: argparse.ArgumentParser) -> None:
    """argparse exits 2 on bad flags; write the report first so the operator sees why."""
    original = parser.error

    def error(message: str) -> NoReturn:
        # argv may hold a URI with a token in it: only ever show it redacted.
        shown = Redactor().text(message)
        line = report_mod.render(_failure(UsageError(shown), {}))
        report_mod.emit(line, report_file=report_mod.default_report_file())
        original(shown)

    parser.error = error  # type: ignore[method-assign]


def _absolute_paths(args: argparse.Namespace) -> None:
    """Resolve path flags against the caller's directory before leaving it."""
    for name in _PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, value.absolute())


def make_logger(fmt: str, redactor: Redactor) -> Callable[[str], None]:
    def log(message: str) -> None:
        message = redactor.text(message)
        if fmt == "json":
            line = json.dumps({"ts": round(time.time(), 3), "component": "convert", "msg": message})
        else:
            line = f"mlmodel-runtime convert: {message}"
        print(line, file=sys.stderr, flush=True)

    return log


def request_from_args(args: argparse.Namespace) -> Any:
    from mlmodel_runtime.convert.pipeline import Request

    if args.sha256 is not None and not _SHA256.match(args.sha256):
        raise UsageError("--sha256 must be 64 hexadecimal digits")
    if args.parity_samples < 1:
        raise UsageError("--parity-samples must be at least 1")
    if args.rtol < 0 or args.atol < 0:
        raise UsageError("--rtol and --atol must not be negative")
    if args.max_bytes < 1 or args.timeout <= 0 or args.retries < 0:
        raise UsageError("--max-bytes and --timeout must be positive, --retries not negative")
    unpacked = args.max_unpacked_bytes if args.max_unpacked_bytes is not None else args.max_bytes
    if unpacked < 1:
        raise UsageError("--max-unpacked-bytes must be positive")
    if args.sample_data is not None and args.reference is not None:
        raise UsageError("give --sample-data or --reference, not both")
    for flag, path in (("--sample-data", args.sample_data), ("--reference", args.reference)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
    return Request(
        uri=args.uri,
        fmt=args.fmt,
        out=args.out,
        sha256=args.sha256.lower() if args.sha256 else None,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        trust=tuple(args.trust_type),
        allow_version_mismatch=args.allow_version_mismatch,
        sample_data=args.sample_data,
        reference=args.reference,
        parity_samples=args.parity_samples,
        tolerance=Tolerance(rtol=args.rtol, atol=args.atol),
        fetch_options=FetchOptions(
            max_bytes=args.max_bytes,
            timeout=args.timeout,
            retries=args.retries,
            s3_endpoint_url=args.s3_endpoint_url,
            mount_root=args.mount_root.absolute(),
            base_dir=Path.cwd(),
        ),
        max_unpacked_bytes=unpacked,
    )


def _summary(facts: dict[str, Any]) -> dict[str, Any]:
    """The parts of what was learned that belong in a report, successful or not."""
    out: dict[str, Any] = {}
    for key in ("estimator", "task"):
        if key in facts:
            out[key] = facts[key]
    if "inputs" in facts or "outputs" in facts:
        out["schema"] = {
            "inputs": report_mod.schema_summary(facts.get("inputs", ())),
            "outputs": report_mod.schema_summary(facts.get("outputs", ())),
        }
    for key in ("parity", "source", "version_warning", "timings"):
        if key in facts:
            out[key] = facts[key]
    return out


def _failure(exc: ConvertError, facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": exc.error_class,
        "exit_code": int(exc.exit_code),
        "message": exc.message,
        "retryable": exc.retryable,
        **_summary(facts),
        **exc.details,
    }


def _success(metadata: ModelMetadata, facts: dict[str, Any]) -> dict[str, Any]:
    summary = _summary(facts)
    summary["timings"] = metadata.timings
    return {
        "status": "ok",
        "error": None,
        "exit_code": 0,
        "message": f"converted {metadata.estimator}; parity passed",
        "model_sha256": metadata.model_sha256,
        "opset": metadata.opset,
        **summary,
        "libraries": metadata.libraries,
    }


def run(args: argparse.Namespace) -> int:
    redactor = Redactor.for_run(uri=args.uri, authorization=os.environ.get(AUTHORIZATION_ENV))
    log = make_logger(args.log_format, redactor)
    with warnings.catch_warnings():
        # Library warnings go through our logger, so JSON logs stay JSON lines.
        warnings.showwarning = lambda message, category, *_, **__: log(
            f"{category.__name__}: {clean(str(message), 500)}"
        )
        return _run(args, log, redactor)


def _internal(exc: Exception, log: Callable[[str], None]) -> ConvertError:
    """A bug: say what it was, with the last frames of its traceback on stderr.

    Frames name our code and the libraries' files; exception texts may quote
    data, so they are shown only through `describe`.
    """
    text = describe(exc, limit=500)
    log(f"error (internal): {text}")
    for frame in traceback.format_tb(exc.__traceback__)[-_TRACEBACK_FRAMES:]:
        for line in frame.splitlines():
            log(f"  {printable(line, 300)}")
    if exc.__cause__ is not None:
        log(f"  caused by {describe(exc.__cause__, limit=300)}")
    return ConvertError(f"internal error: {text}")


def _run(args: argparse.Namespace, log: Callable[[str], None], redactor: Redactor) -> int:
    facts: dict[str, Any] = {}
    _absolute_paths(args)
    try:
        from mlmodel_runtime.convert.pipeline import convert

        request = request_from_args(args)
        with workdir.empty_working_directory():
            metadata = convert(request, environ=os.environ, log=log, facts=facts)
        body, code = _success(metadata, facts), int(ExitCode.OK)
    except ConvertError as exc:
        retry = " (retryable)" if exc.retryable else ""
        log(f"error ({exc.error_class}){retry}: {report_mod.one_line(exc.message, 2000)}")
        body, code = _failure(exc, facts), int(exc.exit_code)
    except Exception as exc:  # the report must be written whatever happened
        body, code = _failure(_internal(exc, log), facts), int(ExitCode.INTERNAL)
    report_file = args.report_file if args.report_file else report_mod.default_report_file()
    report_mod.emit(report_mod.render(redactor.value(body)), report_file=report_file)
    return code
