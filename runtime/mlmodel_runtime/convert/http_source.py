"""Download an http(s) model with aiohttp, following redirects one hop at a time.

Called by `fetch.py` for http and https URIs (other schemes go through fsspec).
The Authorization header taken from the credentials Secret must reach the
origin the user named and nothing else: a redirect to another host, port or
scheme (a CDN, a presigned object-store URL, a downgrade to http) must not
carry it. Which requests carry a header is the HTTP client's decision when it
follows redirects itself, so redirects are followed here and the header is
attached only to requests for the original origin.

Statuses are classified for the retry loop in `fetch.py`: 404/410 not found
and 401/403 denied (both permanent), 408/425/429 and 5xx transient, any other
non-2xx status permanent. The body is streamed to `write`; nothing is kept in
memory, and a Content-Length over the limit is refused before reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mlmodel_runtime.convert.errors import IntegrityError, UsageError

CHUNK_BYTES = 1 << 20
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TRANSIENT_STATUSES = frozenset({408, 425, 429})
NOT_FOUND_STATUSES = frozenset({404, 410})
DENIED_STATUSES = frozenset({401, 403})


class HttpError(Exception):
    """A response that is not the model: its status (if any) and whether to try again."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def status_error(status: int) -> HttpError:
    """The HttpError for a final (non-redirect) status other than 2xx."""
    retryable = status >= 500 or status in TRANSIENT_STATUSES
    return HttpError(f"HTTP {status}", status=status, retryable=retryable)


def _origin(url: Any) -> tuple[str, str, int | None]:
    # yarl gives the default port when none is written, so https://h and https://h:443 match.
    return (url.scheme, url.host or "", url.port)


def _next_hop(current: Any, location: str | None) -> Any:
    from yarl import URL

    if not location:
        raise HttpError("a redirect without a Location header", retryable=False)
    target = current.join(URL(location))
    if target.scheme not in ("http", "https"):
        # The target is not named: a redirect URL may itself carry credentials.
        raise HttpError(f"redirected to an unsupported {target.scheme!r} URL", retryable=False)
    return target


async def _get(
    url: str,
    *,
    authorization: str | None,
    idle_timeout: float,
    max_bytes: int,
    write: Callable[[bytes], None],
) -> None:
    import aiohttp
    from yarl import URL

    try:
        current = URL(url)
        origin = _origin(current)
    except ValueError as exc:
        raise UsageError("the http(s) URI is not a valid absolute URL") from exc
    # Idle timeouts rather than a total one, so a large model on a slow link
    # still downloads while a dead peer is noticed quickly.
    client_timeout = aiohttp.ClientTimeout(
        total=None, connect=idle_timeout, sock_connect=idle_timeout, sock_read=idle_timeout
    )
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for _ in range(MAX_REDIRECTS + 1):
            same_origin = _origin(current) == origin
            headers = {"Authorization": authorization} if authorization and same_origin else {}
            async with session.get(current, headers=headers, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUSES:
                    current = _next_hop(current, response.headers.get("Location"))
                    continue
                if not 200 <= response.status < 300:
                    raise status_error(response.status)
                length = response.content_length
                if length is not None and length > max_bytes:
                    raise IntegrityError(
                        f"model is {length} bytes, over the limit of {max_bytes} bytes"
                    )
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    write(chunk)
                return
    raise HttpError(f"more than {MAX_REDIRECTS} redirects", retryable=False)


def download(
    url: str,
    *,
    authorization: str | None,
    timeout: float,
    max_bytes: int,
    write: Callable[[bytes], None],
) -> None:
    """GET `url` and pass its body to `write` chunk by chunk; raise HttpError on a bad status."""
    asyncio.run(
        _get(
            url,
            authorization=authorization,
            idle_timeout=timeout,
            max_bytes=max_bytes,
            write=write,
        )
    )
