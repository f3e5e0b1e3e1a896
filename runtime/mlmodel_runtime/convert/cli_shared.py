"""What the `fetch` and `convert` commands share: fetch flags, logging, the report.

Both init containers print one JSON report line on stdout (also written to
--report-file, by default the kubelet's /dev/termination-log) and progress on
stderr, and both map failures to `errors.ExitCode`. Everything they print goes
through one `Redactor`, so a credential in the URI or the Authorization header
cannot reach a log line, the report or a traceback. Imports nothing heavy:
`fetch` must start without scikit-learn, skops or onnx.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from mlmodel_runtime.convert import report as report_mod
from mlmodel_runtime.convert.errors import ConvertError, UsageError
from mlmodel_runtime.convert.fetch import (
    AUTHORIZATION_ENV,
    DEFAULT_MAX_BYTES,
    SHA256,
    FetchOptions,
)
from mlmodel_runtime.convert.redact import Redactor
from mlmodel_runtime.convert.sanitize import clean, describe, printable

EPILOG = (
    "exit codes: 0 ok, 1 internal error, 2 usage/bad input, 3 fetch failure (the report "
    "says whether it is retryable), 4 integrity failure, 5 unsafe format refused, "
    "6 unsupported model, 7 parity failure, 8 scikit-learn version mismatch "
    "(see docs/convert.md)"
)
Log = Callable[[str], None]
_TRACEBACK_FRAMES = 12


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the download itself (--uri is added by each command)."""
    add = parser.add_argument
    add("--sha256", help="expected sha256 of the model file; a mismatch is refused")
    add(
        "--sha256-file",
        type=Path,
        metavar="PATH",
        help="a digest pinned earlier: when PATH holds one, the file must match it too",
    )
    add("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="size limit (default 2 GiB)")
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


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--report-file",
        type=Path,
        metavar="PATH",
        help="also write the report here (default: /dev/termination-log if it exists)",
    )
    add("--log-format", choices=("text", "json"), default="text", help="stderr log format")


def report_usage_errors(parser: argparse.ArgumentParser) -> None:
    """argparse exits 2 on bad flags; write the report first so the operator sees why."""
    original = parser.error

    def error(message: str) -> NoReturn:
        # argv may hold a URI with a token in it: only ever show it redacted.
        shown = Redactor().text(message)
        line = report_mod.render(failure(UsageError(shown)))
        report_mod.emit(line, report_file=report_mod.default_report_file())
        original(shown)

    parser.error = error  # type: ignore[method-assign]


def redactor_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Redactor:
    return Redactor.for_run(
        uri=getattr(args, "uri", None), authorization=environ.get(AUTHORIZATION_ENV)
    )


def make_logger(fmt: str, component: str, redactor: Redactor) -> Log:
    def log(message: str) -> None:
        message = redactor.text(message)
        if fmt == "json":
            line = json.dumps({"ts": round(time.time(), 3), "component": component, "msg": message})
        else:
            line = f"mlmodel-runtime {component}: {message}"
        print(line, file=sys.stderr, flush=True)

    return log


@contextmanager
def warnings_to(log: Log) -> Iterator[None]:
    """Library warnings go through our logger, so JSON logs stay JSON lines (and redacted)."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *_, **__: log(
            f"{category.__name__}: {clean(str(message), 500)}"
        )
        yield


def checked_sha256(value: str | None, flag: str = "--sha256") -> str | None:
    if value is None:
        return None
    if not SHA256.match(value):
        raise UsageError(f"{flag} must be 64 hexadecimal digits")
    return value.lower()


def fetch_options(args: argparse.Namespace) -> FetchOptions:
    if args.max_bytes < 1 or args.timeout <= 0 or args.retries < 0:
        raise UsageError("--max-bytes and --timeout must be positive, --retries not negative")
    return FetchOptions(
        max_bytes=args.max_bytes,
        timeout=args.timeout,
        retries=args.retries,
        s3_endpoint_url=args.s3_endpoint_url,
        mount_root=args.mount_root.absolute(),
        base_dir=Path.cwd(),
    )


def failure(exc: ConvertError, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": exc.error_class,
        "exit_code": int(exc.exit_code),
        "message": exc.message,
        "retryable": exc.retryable,
        **(extra or {}),
        **exc.details,
    }


def internal_failure(exc: Exception, log: Log) -> ConvertError:
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


def log_failure(exc: ConvertError, log: Log) -> None:
    retry = " (retryable)" if exc.retryable else ""
    log(f"error ({exc.error_class}){retry}: {report_mod.one_line(exc.message, 2000)}")


def finish(body: dict[str, Any], report_file: Path | None, redactor: Redactor) -> int:
    """Write the report (redacted) to stdout and the report file; return the exit code."""
    report_mod.emit(
        report_mod.render(redactor.value(body)),
        report_file=report_file or report_mod.default_report_file(),
    )
    return int(body["exit_code"])
