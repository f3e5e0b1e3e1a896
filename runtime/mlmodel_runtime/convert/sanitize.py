"""Bound the text of a library's exception before it reaches a log line or the report.

onnx, onnxruntime, skl2onnx, skops and the storage backends put whatever they
were looking at into their messages: tensor values, node attribute dumps,
shapes read from a file, member names of an archive, whole URLs. A crafted
model can therefore turn an error message into a way of reading data out of
the container. Callers never format `{exc}` directly; they use `describe`,
which keeps the exception type and a short first line, removes control
characters, collapses long runs of numbers or encoded data, and caps the
length. Pure.
"""

from __future__ import annotations

import re

DEFAULT_LIMIT = 240
ELIDED = "…"
# C0/C1 control characters (newlines included: only the first line is kept anyway).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Eight or more numbers in a row, as in "{1852142708, 1130721139, ...}" or "[0.1 0.2 ...]".
_NUMBER = r"[-+]?[0-9][0-9a-fA-FxX.eE+\-]*"
_NUMBER_RUN = re.compile(rf"(?:{_NUMBER}[\s,;]+){{7,}}{_NUMBER}")
# A long unbroken token: hex, base64, raw bytes rendered as text.
_LONG_TOKEN = re.compile(r"\S{64,}")


def _shorten_token(match: re.Match[str]) -> str:
    token = match.group(0)
    return f"{token[:32]}{ELIDED}"


def printable(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """`text` without control characters, capped: for lines that quote no data."""
    flat = _CONTROL.sub(" ", text).rstrip()
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + ELIDED


def clean(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """The first non-empty line of `text`, stripped of data dumps and capped at `limit`."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    flat = " ".join(_CONTROL.sub(" ", first).split())
    flat = _NUMBER_RUN.sub(ELIDED, flat)
    flat = _LONG_TOKEN.sub(_shorten_token, flat)
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + ELIDED


def describe(exc: BaseException, limit: int = DEFAULT_LIMIT) -> str:
    """`Type: first line of the message`, bounded; just `Type` when the message is empty."""
    name = type(exc).__name__
    text = clean(str(exc), limit)
    return f"{name}: {text}" if text else name
