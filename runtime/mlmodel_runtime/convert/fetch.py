"""Download the model from where the user keeps it into a local temporary file.

Called by `mlmodel-runtime fetch` (the first init container) and by
`mlmodel-runtime convert --uri` (both steps in one process). Local files, s3
and gs go through fsspec and its maintained backends (s3fs, gcsfs); http(s)
goes through `http_source.py`, which owns the redirect policy of the
Authorization header. This module resolves our own `pvc://claim/path` scheme
to the mounted volume, retries transient failures with backoff, enforces the
size limit while streaming (a lying or absent Content-Length cannot get past
it), hashes what it wrote and checks the digests the caller expects.

Credentials: for s3 and gs the backends' standard chains (AWS_* variables or
files from a mounted Secret, GOOGLE_APPLICATION_CREDENTIALS); for http(s) the
value of MLMODEL_HTTP_AUTHORIZATION, sent as the Authorization header. The URI
is only ever shown through `redact.redact_uri`, and library error texts only
through `sanitize.describe` and a `Redactor`.

A failure says whether it is worth retrying (`FetchError.retryable`): network
errors, timeouts and HTTP 5xx/429/408 are; not found, access denied and other
HTTP 4xx are not.

`http_source` (and asyncio with it) is imported where an http(s) download or its
failure needs it: `convert --source`, which downloads nothing, imports neither.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from mlmodel_runtime.convert.errors import FetchError, IntegrityError, UsageError
from mlmodel_runtime.convert.redact import Redactor, redact_uri
from mlmodel_runtime.convert.sanitize import describe

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_BYTES = 2 << 30
AUTHORIZATION_ENV = "MLMODEL_HTTP_AUTHORIZATION"
HTTP_PROTOCOLS = ("http", "https")
NETWORK_PROTOCOLS = (*HTTP_PROTOCOLS, "s3", "s3a", "gs", "gcs")
SUPPORTED_SCHEMES = ("file", "pvc", *NETWORK_PROTOCOLS)
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# Errors that another attempt cannot fix.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    IntegrityError,
    UsageError,
)


@dataclass(frozen=True)
class FetchOptions:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = 30.0
    retries: int = 3
    s3_endpoint_url: str | None = None
    mount_root: Path = Path("/mnt/pvc")
    # Relative local paths are taken relative to this directory (the caller's
    # working directory: `convert` itself runs in an empty one).
    base_dir: Path | None = None


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int


def resolve_uri(uri: str, mount_root: Path, *, base_dir: Path | None = None) -> tuple[str, str]:
    """(protocol, location) for fsspec; `pvc://claim/a/b` is `mount_root/claim/a/b`."""
    shown = redact_uri(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        path = parts.path if scheme == "file" else uri
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise UsageError(f"file URI {shown!r} names a host; use file:///absolute/path")
        if base_dir is not None and not Path(path).is_absolute():
            path = str(base_dir / path)
        return "file", path
    if scheme == "pvc":
        claim, rest = parts.netloc, parts.path.lstrip("/")
        if not claim or not rest:
            raise UsageError(f"{shown!r}: expected pvc://claim/path/to/model")
        resolved = (mount_root / claim / rest).resolve()
        if not resolved.is_relative_to(mount_root.resolve()):
            raise UsageError(f"{shown!r} points outside the volume mount {mount_root}")
        return "file", str(resolved)
    if scheme not in NETWORK_PROTOCOLS:
        raise UsageError(
            f"unsupported URI scheme {scheme!r} in {shown!r}; "
            f"supported: {', '.join(SUPPORTED_SCHEMES)}"
        )
    return scheme, uri


def storage_options(
    protocol: str, options: FetchOptions, environ: Mapping[str, str]
) -> dict[str, Any]:
    """fsspec backend settings: timeouts and, for S3, a custom endpoint (flag, then env)."""
    if protocol in ("s3", "s3a"):
        endpoint = (
            options.s3_endpoint_url
            or environ.get("AWS_ENDPOINT_URL_S3")
            or environ.get("AWS_ENDPOINT_URL")
        )
        s3: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": options.timeout,
                "read_timeout": options.timeout,
                # Our loop retries; botocore's own retries would multiply with it.
                "retries": {"max_attempts": 1},
            },
        }
        if endpoint:
            s3["endpoint_url"] = endpoint
        return s3
    if protocol in ("gs", "gcs"):
        return {"timeout": options.timeout, "requests_timeout": options.timeout}
    return {}


def http_authorization(environ: Mapping[str, str]) -> str | None:
    """The Authorization header value from the credentials Secret, if there is one.

    Secrets made with `kubectl create secret --from-file` usually end in a
    newline; surrounding whitespace is dropped. A line break inside the value
    would split the header, so it is refused.
    """
    value = environ.get(AUTHORIZATION_ENV, "").strip()
    if not value:
        return None
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"{AUTHORIZATION_ENV} contains a line break or NUL character")
    return value


def read_pinned_sha256(path: Path | None) -> str | None:
    """The digest in `--sha256-file`: None when the file is missing or empty."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"--sha256-file {path}: cannot read it ({describe(exc)})") from exc
    if not text:
        return None
    if not SHA256.match(text):
        raise UsageError(f"--sha256-file {path} does not hold a sha256 (64 hexadecimal digits)")
    return text.lower()


def _transient(exc: BaseException) -> bool:
    from mlmodel_runtime.convert import http_source

    if isinstance(exc, http_source.HttpError):
        return exc.retryable
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, OSError | TimeoutError | ConnectionError):  # asyncio's is TimeoutError
        return True
    # aiohttp, botocore and google-auth errors do not share a base class with
    # OSError; anything raised by a backend while reading is worth one more try.
    return type(exc).__module__.split(".")[0] in ("aiohttp", "botocore", "aiobotocore", "google")


class _Sink:
    """Counts, limits, hashes and writes what the source sends."""

    def __init__(self, out: IO[bytes], max_bytes: int) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise IntegrityError(f"model exceeds the size limit of {self.max_bytes} bytes")
        self.digest.update(chunk)
        self.out.write(chunk)


def _copy_with_fsspec(
    protocol: str, location: str, so: dict[str, Any], sink: _Sink, max_bytes: int
) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, skip_instance_cache=True, **so)
    if protocol in ("s3", "s3a"):
        fs.retries = 1  # s3fs retries some errors itself; ours is the loop in fetch()
    try:
        announced = fs.size(path)
    except Exception:  # size is a hint; opening the stream below decides
        announced = None
    if isinstance(announced, int) and announced > max_bytes:
        raise IntegrityError(f"model is {announced} bytes, over the limit of {max_bytes} bytes")
    with fs.open(path, "rb") as src:
        while chunk := src.read(CHUNK_BYTES):
            sink.write(chunk)


def _download(
    protocol: str,
    location: str,
    *,
    so: dict[str, Any],
    dest: Path,
    options: FetchOptions,
    authorization: str | None,
) -> Fetched:
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".model.", suffix=".download")
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(out, options.max_bytes)
            if protocol in HTTP_PROTOCOLS:
                from mlmodel_runtime.convert import http_source

                http_source.download(
                    location,
                    authorization=authorization,
                    timeout=options.timeout,
                    max_bytes=options.max_bytes,
                    write=sink.write,
                )
            else:
                _copy_with_fsspec(protocol, location, so, sink, options.max_bytes)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Fetched(path=Path(tmp), sha256=sink.digest.hexdigest(), size=sink.size)


def _failure(exc: Exception, shown: str, attempts: int, redactor: Redactor) -> FetchError:
    """The FetchError for the last attempt's exception, with what it means for a retry."""
    from mlmodel_runtime.convert import http_source

    reason = redactor.text(describe(exc))
    status = exc.status if isinstance(exc, http_source.HttpError) else None
    if isinstance(exc, FileNotFoundError) or status in http_source.NOT_FOUND_STATUSES:
        return FetchError(f"not found: {shown} ({reason})", retryable=False)
    if isinstance(exc, PermissionError) or status in http_source.DENIED_STATUSES:
        return FetchError(f"access denied: {shown} ({reason})", retryable=False)
    if isinstance(exc, IsADirectoryError):
        return FetchError(f"{shown} is a directory, not a model file", retryable=False)
    return FetchError(
        f"could not fetch {shown} after {attempts} attempt(s): {reason}",
        retryable=_transient(exc),
    )


def verify_digests(
    fetched: Fetched, *, shown: str, expected_sha256: str | None, pinned_sha256: str | None
) -> None:
    """Raise IntegrityError when the file is not the one --sha256 or --sha256-file names."""
    if expected_sha256 is not None and fetched.sha256 != expected_sha256.lower():
        raise IntegrityError(
            f"sha256 mismatch for {shown}: expected {expected_sha256.lower()}, got {fetched.sha256}"
        )
    if pinned_sha256 is not None and fetched.sha256 != pinned_sha256:
        raise IntegrityError(
            f"the object at {shown} changed since the revision was pinned: pinned sha256 "
            f"{pinned_sha256}, now {fetched.sha256}. Create a new revision to deploy it"
        )


def fetch(
    uri: str,
    *,
    dest: Path,
    options: FetchOptions,
    expected_sha256: str | None,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    pinned_sha256: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Download `uri` into a new file under `dest`, verify size and digests, return it."""
    shown = redact_uri(uri)
    protocol, location = resolve_uri(uri, options.mount_root, base_dir=options.base_dir)
    authorization = http_authorization(environ) if protocol in HTTP_PROTOCOLS else None
    if authorization and "@" in urlsplit(uri).netloc:
        raise UsageError(
            f"{shown} has credentials in the URI and {AUTHORIZATION_ENV} is set; give one"
        )
    redactor = Redactor.for_run(uri=uri, authorization=authorization)
    so = storage_options(protocol, options, environ)
    attempts = options.retries + 1 if protocol != "file" else 1
    log(f"fetching {shown}")
    for attempt in range(1, attempts + 1):
        try:
            fetched = _download(
                protocol, location, so=so, dest=dest, options=options, authorization=authorization
            )
            break
        except (IntegrityError, UsageError):
            raise
        except Exception as exc:  # every backend raises its own types
            if attempt < attempts and _transient(exc):
                delay = min(0.5 * 2 ** (attempt - 1), 5.0)
                reason = redactor.text(describe(exc))
                log(f"attempt {attempt}/{attempts} failed ({reason}); retrying in {delay:.1f}s")
                sleep(delay)
                continue
            raise _failure(exc, shown, attempt, redactor) from exc
    log(f"fetched {fetched.size} bytes, sha256 {fetched.sha256}")
    try:
        verify_digests(
            fetched, shown=shown, expected_sha256=expected_sha256, pinned_sha256=pinned_sha256
        )
    except IntegrityError:
        fetched.path.unlink(missing_ok=True)
        raise
    return fetched
