"""ASGI plumbing of the HTTP app: the request head, bodies within limits, answers.

Used by the app (`app.py`), the exchange of inference requests (`exchange.py`)
and the protocol adapters (`adapters.py`, for the headers of an answer). A body
is read whole (the codec needs all of it) but never beyond its limit, and a body
whose length was not declared (chunked) asks for admission chunk by chunk.

A request refused before its body is read must not leave the body unread: a
server that closes a connection with unread data makes the kernel send a reset,
and a client that sends its whole body before reading the answer (urllib, many
clients on a blocking socket) then sees "connection reset" instead of the 413 or
503. So a refusal is answered at once (`answer_early`: the whole answer, with
`Connection: close`, but the exchange left open), the rest of the body is read and
dropped (`discard_body`; the app bounds it by the request's deadline), and only
then is the exchange finished (`finish`) and the connection closed by uvicorn. A
client that waits for `100 Continue` has sent nothing: it is answered and closed
at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from mlmodel_runtime.serve.admission import Refusal
from mlmodel_runtime.serve.codec import RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON_CONTENT: Final[Header] = (b"content-type", b"application/json")
CLOSE: Final[Header] = (b"connection", b"close")
# Overload and start-up are short-lived: one second is long enough to matter and
# short enough for a client to come back soon.
RETRY_AFTER: Final[Header] = (b"retry-after", b"1")
_CONTENT_LENGTH: Final = b"content-length"
_JSON_LENGTH: Final = b"inference-header-content-length"
_EXPECT: Final = b"expect"


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class BodyRefused(Exception):
    """A chunked body outgrew what admission allows."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


# What the app needs from the request headers: Content-Length (None: chunked, length
# unknown), Inference-Header-Content-Length (the JSON part of a binary body), and
# whether the client waits for 100 Continue before it sends its body. A plain tuple:
# this is on every request's path.
Head = tuple[int | None, int | None, bool]


def read_head(headers: Iterable[Header]) -> Head:
    """The request's declared lengths; a malformed one is a 400."""
    content_length: int | None = None
    json_length: int | None = None
    expects_continue = False
    for key, value in headers:
        if key == _CONTENT_LENGTH:
            # httptools refuses a malformed one before the app sees it.
            content_length = int(value) if value.isdigit() else _integer(value, "Content-Length")
        elif key == _JSON_LENGTH:
            json_length = _integer(value, "Inference-Header-Content-Length")
        elif key == _EXPECT:
            expects_continue = value.lower() == b"100-continue"
    return content_length, json_length, expects_continue


def _integer(value: bytes, name: str) -> int:
    if not value.isdigit():
        raise RequestError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def too_large(size: int | None, limit: int, flag: str, what: str = "request body") -> RequestError:
    got = f"{what} of {size} bytes" if size is not None else what
    return RequestError(f"{got} exceeds the limit of {limit} bytes ({flag})", 413)


def whole_body(message: Message, declared: int | None) -> bytes | None:
    """The body, if the first message received holds all of it: the common case, which
    then needs no other coroutine. None when `read_body` must take it from there."""
    if declared is None or message.get("more_body", False) or message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    return body


async def read_body(
    receive: Receive,
    message: Message,
    *,
    declared: int | None,
    limit: int,
    flag: str,
    admit: Callable[[int], Refusal | None] | None = None,
) -> bytes | bytearray:
    """The whole body, from its first message on, at most `limit` bytes (413 beyond,
    naming `flag`).

    `declared` is the Content-Length, already checked against the limit; the body
    then goes into one buffer of that size instead of a list of chunks joined at
    the end (which holds it twice). Without it, `admit(size)` is asked after every
    chunk and `BodyRefused` raised when it refuses.
    """
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if message["type"] == "http.disconnect":
            raise ClientGone
        if declared is None:
            _check_undeclared(len(body), limit, flag, admit)
        return body
    if declared is not None:
        buffer = bytearray(declared)
        size = len(body)
        buffer[:size] = body
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            buffer[size : size + len(chunk)] = chunk
            size += len(chunk)
            if not message.get("more_body", False):
                return buffer
    grown = bytearray(body)
    _check_undeclared(len(grown), limit, flag, admit)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        grown += message.get("body", b"")
        _check_undeclared(len(grown), limit, flag, admit)
        if not message.get("more_body", False):
            return grown


def _check_undeclared(
    size: int, limit: int, flag: str, admit: Callable[[int], Refusal | None] | None
) -> None:
    if size > limit:
        raise too_large(None, limit, flag)
    if admit is not None:
        refusal = admit(size)
        if refusal is not None:
            raise BodyRefused(refusal)


async def discard_body(receive: Receive) -> None:
    """Read and drop the rest of a body, until it ends or the client goes."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


async def answer(send: Send, status: int, body: bytes, *extra: Header) -> int:
    """A JSON answer; every 503 says when to come back."""
    headers = [JSON_CONTENT, (_CONTENT_LENGTH, b"%d" % len(body)), *extra]
    if status == 503:
        headers.append(RETRY_AFTER)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


async def answer_early(send: Send, status: int, body: bytes) -> None:
    """All of a JSON answer, before the request's body is read; `finish` must follow.

    The client has the complete answer (its Content-Length is exact) and may stop
    sending; the server keeps reading what it sends until `finish`.
    """
    headers = [JSON_CONTENT, (_CONTENT_LENGTH, b"%d" % len(body)), CLOSE]
    if status == 503:
        headers.append(RETRY_AFTER)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def finish(send: Send) -> None:
    await send({"type": "http.response.body", "body": b""})
