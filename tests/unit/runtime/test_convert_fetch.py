"""Fetch decisions without a network: retryable or not, credentials, pinned digests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlmodel_runtime.convert import fetch, http_source
from mlmodel_runtime.convert.errors import FetchError, IntegrityError, UsageError
from mlmodel_runtime.convert.fetch import (
    FetchOptions,
    http_authorization,
    read_pinned_sha256,
)
from mlmodel_runtime.convert.http_source import HttpError, status_error

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("status", "retryable"), [
    (404, False), (410, False), (401, False), (403, False), (400, False), (416, False),
    (408, True), (425, True), (429, True), (500, True), (502, True), (503, True),
])  # fmt: skip
def test_which_http_statuses_are_worth_retrying(status: int, retryable: bool) -> None:
    assert status_error(status).retryable is retryable


def test_the_authorization_value_from_a_secret_file_loses_its_newline() -> None:
    env = "MLMODEL_HTTP_AUTHORIZATION"
    assert http_authorization({env: "Bearer abc\n"}) == "Bearer abc"
    assert http_authorization({env: "  \n"}) is None
    assert http_authorization({}) is None
    with pytest.raises(UsageError, match="line break"):
        http_authorization({env: "Bearer abc\r\nX-Evil: 1"})


def test_a_pinned_digest_file(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    assert read_pinned_sha256(None) is None
    assert read_pinned_sha256(pin) is None  # not pinned yet
    pin.write_text("")
    assert read_pinned_sha256(pin) is None
    pin.write_text("AB" * 32 + "\n")
    assert read_pinned_sha256(pin) == "ab" * 32
    pin.write_text("sha256:" + "ab" * 32)
    with pytest.raises(UsageError, match="64 hexadecimal digits"):
        read_pinned_sha256(pin)


def test_a_redirect_to_another_scheme_is_refused() -> None:
    from yarl import URL

    with pytest.raises(HttpError, match="unsupported 'file' URL") as refused:
        http_source._next_hop(URL("https://h/m"), "file:///etc/passwd")
    assert refused.value.retryable is False
    assert http_source._next_hop(URL("https://h/a/m"), "../b?x=1") == URL("https://h/b?x=1")


def _fake_http(outcomes: list[Any]) -> Callable[..., None]:
    """http_source.download replaced: raise or write the next outcome on each call."""

    def download(url: str, *, write: Callable[[bytes], None], **_: Any) -> None:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        write(outcome)

    return download


def _fetch(tmp_path: Path, **kwargs: Any) -> fetch.Fetched:
    logs: list[str] = []
    return fetch.fetch(
        "https://models.example/m.skops?token=tok-123456",
        dest=tmp_path,
        options=FetchOptions(retries=2),
        expected_sha256=kwargs.pop("expected_sha256", None),
        environ=kwargs.pop("environ", {}),
        log=logs.append,
        sleep=lambda _: None,
        **kwargs,
    )


def test_transient_failures_are_retried_then_reported_retryable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_source, "download", _fake_http([status_error(503)] * 3))
    with pytest.raises(FetchError) as failed:
        _fetch(tmp_path)
    assert failed.value.retryable is True
    assert "after 3 attempt(s)" in failed.value.message
    assert "tok-123456" not in failed.value.message
    assert list(tmp_path.iterdir()) == [], "no partial download is left"

    monkeypatch.setattr(http_source, "download", _fake_http([status_error(502), b"model"]))
    assert _fetch(tmp_path).size == 5


def test_permanent_failures_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for status, phrase in ((404, "not found"), (403, "access denied")):
        outcomes: list[Any] = [status_error(status), b"never reached"]
        monkeypatch.setattr(http_source, "download", _fake_http(outcomes))
        with pytest.raises(FetchError, match=phrase) as failed:
            _fetch(tmp_path)
        assert failed.value.retryable is False
        assert len(outcomes) == 1


def test_credentials_in_both_the_uri_and_the_secret_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give one") as refused:
        fetch.fetch(
            "https://alice:pw-123456@h/m",
            dest=tmp_path,
            options=FetchOptions(),
            expected_sha256=None,
            environ={"MLMODEL_HTTP_AUTHORIZATION": "Bearer x"},
            log=lambda _: None,
        )
    assert "pw-123456" not in refused.value.message


def test_a_pinned_digest_that_differs_means_the_object_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_source, "download", _fake_http([b"new model"]))
    with pytest.raises(IntegrityError, match="changed since the revision was pinned"):
        _fetch(tmp_path, pinned_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
