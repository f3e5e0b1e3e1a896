"""Exit codes of `mlmodel-runtime fetch` and `convert` and the errors that carry them.

Every failure an init container can meet is one `ConvertError` subclass with a
stable `error_class` (written to the report, read by the operator) and a
distinct exit code (seen by the kubelet). The commands turn them into the
report and the process exit status; nothing below them calls `sys.exit`.

`retryable` tells the operator whether running the same pod again can help:
only a fetch that failed for a transient reason (a network error, a timeout,
HTTP 5xx/429/408) is; a missing object, denied access or anything wrong with
the model itself is not.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    """Documented in docs/convert.md; the operator maps them to status reasons."""

    OK = 0
    INTERNAL = 1  # a bug: an exception nobody anticipated
    USAGE = 2  # bad flags or bad input files (argparse uses 2 as well)
    FETCH = 3  # the model could not be downloaded or read (the report says if retryable)
    INTEGRITY = 4  # sha256 mismatch, size limit exceeded, corrupt or truncated file
    UNSAFE = 5  # pickle without --allow-unsafe-pickle, untrusted skops type
    UNSUPPORTED = 6  # skl2onnx cannot convert it, or its outputs are not finite
    PARITY = 7  # the ONNX model predicts differently from the original
    VERSION_MISMATCH = 8  # trained with another scikit-learn, not explicitly allowed


class ConvertError(Exception):
    """A failure with a one-line explanation meant for the person who wrote the MLModel."""

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL
    error_class: ClassVar[str] = "internal"

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        # Structured facts for the report (e.g. parity figures and worst rows).
        self.details: dict[str, Any] = dict(details or {})
        self.retryable = retryable


class UsageError(ConvertError):
    exit_code = ExitCode.USAGE
    error_class = "usage"


class FetchError(ConvertError):
    exit_code = ExitCode.FETCH
    error_class = "fetch"


class IntegrityError(ConvertError):
    exit_code = ExitCode.INTEGRITY
    error_class = "integrity"


class UnsafeFormatError(ConvertError):
    exit_code = ExitCode.UNSAFE
    error_class = "unsafe"


class UnsupportedModelError(ConvertError):
    exit_code = ExitCode.UNSUPPORTED
    error_class = "unsupported"


class ParityError(ConvertError):
    exit_code = ExitCode.PARITY
    error_class = "parity"


class VersionMismatchError(ConvertError):
    exit_code = ExitCode.VERSION_MISMATCH
    error_class = "version-mismatch"


ALL_ERRORS: tuple[type[ConvertError], ...] = (
    UsageError,
    FetchError,
    IntegrityError,
    UnsafeFormatError,
    UnsupportedModelError,
    ParityError,
    VersionMismatchError,
)
