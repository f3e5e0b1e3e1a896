"""Bounded HTTP reads for the metrics providers.

The URLs the providers read are chosen, directly or not, by people who write MLModels
(a Prometheus URL, a pod that answers on its metrics port), so an answer is never
trusted with the operator's memory or its status: no redirects (a redirect could lead
anywhere, an allow-list checks only the first URL), a cap on the body size (a huge
answer must not take the operator down, and every rollout with it), and errors that
say what went wrong without quoting what came back.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

CHUNK_BYTES = 64 * 1024


class ProviderError(RuntimeError):
    """A read failed; the message is short and quotes nothing from the answer."""


async def get_bounded(
    session: aiohttp.ClientSession,
    url: str,
    *,
    limit: int,
    params: Mapping[str, str] | None = None,
) -> bytes:
    """The body of a 200 answer to GET `url`, at most `limit` bytes."""
    async with session.get(url, params=params, allow_redirects=False) as response:
        if response.status != 200:
            raise ProviderError(f"answered HTTP {response.status}")
        if response.content_length is not None and response.content_length > limit:
            raise ProviderError(f"answered {response.content_length} bytes, over {limit}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise ProviderError(f"answered more than {limit} bytes")
        return bytes(body)


def describe(error: BaseException) -> str:
    """An exception as a short line (some aiohttp errors have no message of their own)."""
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__
