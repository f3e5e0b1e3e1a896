"""Keep credentials out of everything the init containers print or report.

Users put tokens in model URIs (`https://host/m.skops?token=...`, presigned
URLs, `https://user:password@host/...`), and the report's `source.uri` is
copied into the MLModel status, where anyone who can read the object sees it.
`redact_uri` is the one function that decides what of a URI may be shown:
scheme, host, port and path; never the userinfo, query or fragment.

Libraries echo URLs in their exception texts (aiohttp's `ClientResponseError`,
botocore's endpoint errors, fsspec's messages), sometimes re-encoded, so a
`Redactor` also scrubs free text: every URL in it is passed through
`redact_uri`, and the known secret pieces (the userinfo, the query and its
values, the Authorization header value) are replaced wherever they appear.
Used by the logger and the report of both commands; pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

HIDDEN = "***"
HIDDEN_QUERY = "<redacted>"
# Anything that looks like scheme://... up to whitespace or a quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# Pieces shorter than this are too likely to match ordinary words.
_MIN_SECRET = 4


def redact_uri(uri: str) -> str:
    """`https://u:p@host/a?token=x#f` -> `https://***@host/a?<redacted>#<redacted>`.

    Local paths and URIs without credentials come back unchanged, so the
    function is idempotent and safe to apply to an already redacted URI.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: hide everything after the host part
        return _redact_unparsable(uri)
    if not parts.scheme or "://" not in uri:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    text = f"{parts.scheme}://{netloc}{parts.path}"
    if "?" in uri:
        text += f"?{HIDDEN_QUERY}" if parts.query else "?"
    if parts.fragment:
        text += f"#{HIDDEN_QUERY}"
    return text


def _redact_unparsable(uri: str) -> str:
    head = re.split(r"[?#]", uri, maxsplit=1)[0]
    scheme, sep, rest = head.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = f"{HIDDEN}@{rest.split('@', 1)[1]}"
    suffix = f"?{HIDDEN_QUERY}" if len(head) < len(uri) else ""
    return f"{scheme}{sep}{rest}{suffix}"


def secret_parts(uri: str) -> list[str]:
    """The pieces of `uri` that must never be shown, raw and percent-decoded."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return []
    pieces: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        pieces.append(userinfo)
        pieces.extend(userinfo.split(":", 1))
    if parts.query:
        pieces.append(parts.query)
        pieces.extend(value for _, value in parse_qsl(parts.query, keep_blank_values=True))
    if parts.fragment:
        pieces.append(parts.fragment)
    return pieces


@dataclass(frozen=True)
class Redactor:
    """Scrubs known secrets and credentials in URLs out of text and report values."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def for_run(cls, *, uri: str | None, authorization: str | None) -> Redactor:
        pieces = secret_parts(uri) if uri else []
        if authorization:
            pieces.append(authorization)
            pieces.extend(authorization.split()[1:])  # the token of "Bearer <token>"
        variants: set[str] = set()
        for piece in pieces:
            variants.update({piece, unquote(piece), quote(piece, safe=""), quote(piece)})
        # Longest first, so a whole query is replaced before its values.
        kept = sorted((v for v in variants if len(v) >= _MIN_SECRET), key=len, reverse=True)
        return cls(secrets=tuple(kept))

    def text(self, text: str) -> str:
        scrubbed = _URL.sub(lambda match: redact_uri(match.group(0)), text)
        for secret in self.secrets:
            scrubbed = scrubbed.replace(secret, HIDDEN)
        return scrubbed

    def value(self, value: Any) -> Any:
        """Every string inside a JSON-like value scrubbed (keys kept as they are)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
