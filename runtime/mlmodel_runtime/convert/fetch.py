"""Download the model from where the user keeps it into a local temporary file.

Called by `pipeline.py`. Every source goes through fsspec and its maintained
backends (local files, http(s) via aiohttp, s3 via s3fs, gs via gcsfs); this
module only resolves our own `pvc://claim/path` scheme to the mounted volume,
sets timeouts, retries transient failures with backoff, enforces the size limit
while streaming (a lying or absent Content-Length cannot get past it), and
hashes what it wrote. Credentials come from the backends' standard chains
(AWS_* variables or files from a mounted Secret, GOOGLE_APPLICATION_CREDENTIALS).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec

from mlmodel_runtime.convert.errors import FetchError, IntegrityError, UsageError

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_BYTES = 2 << 30
NETWORK_PROTOCOLS = ("http", "https", "s3", "s3a", "gs", "gcs")
SUPPORTED_SCHEMES = ("file", "pvc", *NETWORK_PROTOCOLS)
# Errors that another attempt cannot fix.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    IntegrityError,
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
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        path = parts.path if scheme == "file" else uri
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise UsageError(f"file URI {uri!r} names a host; use file:///absolute/path")
        if base_dir is not None and not Path(path).is_absolute():
            path = str(base_dir / path)
        return "file", path
    if scheme == "pvc":
        claim, rest = parts.netloc, parts.path.lstrip("/")
        if not claim or not rest:
            raise UsageError(f"{uri!r}: expected pvc://claim/path/to/model")
        resolved = (mount_root / claim / rest).resolve()
        if not resolved.is_relative_to(mount_root.resolve()):
            raise UsageError(f"{uri!r} points outside the volume mount {mount_root}")
        return "file", str(resolved)
    if scheme not in NETWORK_PROTOCOLS:
        raise UsageError(
            f"unsupported URI scheme {scheme!r} in {uri!r}; "
            f"supported: {', '.join(SUPPORTED_SCHEMES)}"
        )
    return scheme, uri


def storage_options(
    protocol: str, options: FetchOptions, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Backend settings: timeouts and, for S3, a custom endpoint (flag, then AWS env vars)."""
    if protocol in ("http", "https"):
        import aiohttp

        # Idle timeouts rather than a total one, so a large model on a slow
        # link still downloads while a dead peer is noticed quickly.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=options.timeout,
            sock_connect=options.timeout,
            sock_read=options.timeout,
        )
        return {"client_kwargs": {"timeout": timeout}}
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


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    # aiohttp, botocore and google-auth errors do not share a base class with
    # OSError; anything raised by a backend while reading is worth one more try.
    return type(exc).__module__.split(".")[0] in ("aiohttp", "botocore", "aiobotocore", "google")


def _download(
    protocol: str, location: str, so: dict[str, Any], dest: Path, max_bytes: int
) -> Fetched:
    fs, path = fsspec.core.url_to_fs(location, skip_instance_cache=True, **so)
    if protocol in ("s3", "s3a"):
        fs.retries = 1  # s3fs retries some errors itself; ours is the loop in fetch()
    try:
        announced = fs.size(path)
    except Exception:  # size is a hint (fsspec's http reports any
        # failure as not found); opening the stream below decides
        announced = None
    if isinstance(announced, int) and announced > max_bytes:
        raise IntegrityError(f"model is {announced} bytes, over the limit of {max_bytes} bytes")
    # HTTP servers need not support range requests: stream instead of seeking.
    # A size also stops fsspec's http from calling info() again, which reports
    # every HTTP error (a retryable 500 too) as FileNotFoundError; the GET of
    # the stream reports 404 as not found and other statuses as they are.
    open_kwargs: dict[str, Any] = (
        {"block_size": 0, "size": announced or 1} if protocol in ("http", "https") else {}
    )
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".model.", suffix=".download")
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb", **open_kwargs) as src:
            while chunk := src.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise IntegrityError(f"model exceeds the size limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Fetched(path=Path(tmp), sha256=digest.hexdigest(), size=size)


def fetch(
    uri: str,
    *,
    dest: Path,
    options: FetchOptions,
    expected_sha256: str | None,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Download `uri` into a new file under `dest`, verify size and digest, return it."""
    protocol, location = resolve_uri(uri, options.mount_root, base_dir=options.base_dir)
    so = storage_options(protocol, options, environ)
    network = protocol != "file"
    attempts = options.retries + 1 if network else 1
    log(f"fetching {uri}")
    for attempt in range(1, attempts + 1):
        try:
            fetched = _download(protocol, location, so, dest, options.max_bytes)
            break
        except IntegrityError:
            raise
        except FileNotFoundError as exc:
            raise FetchError(f"not found: {uri} ({exc})") from exc
        except PermissionError as exc:
            raise FetchError(f"access denied: {uri} ({exc})") from exc
        except IsADirectoryError as exc:
            raise FetchError(f"{uri} is a directory, not a model file") from exc
        except Exception as exc:  # every backend raises its own types
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < attempts and _transient(exc):
                delay = min(0.5 * 2 ** (attempt - 1), 5.0)
                log(f"attempt {attempt}/{attempts} failed ({reason}); retrying in {delay:.1f}s")
                sleep(delay)
                continue
            raise FetchError(f"could not fetch {uri} after {attempt} attempt(s): {reason}") from exc
    log(f"fetched {fetched.size} bytes, sha256 {fetched.sha256}")
    if expected_sha256 is not None and fetched.sha256 != expected_sha256.lower():
        fetched.path.unlink(missing_ok=True)
        raise IntegrityError(
            f"sha256 mismatch for {uri}: expected {expected_sha256.lower()}, got {fetched.sha256}"
        )
    return fetched
