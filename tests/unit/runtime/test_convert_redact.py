"""What of a model URI may be shown: one function, and a scrubber for library texts."""

from __future__ import annotations

import pytest

from mlmodel_runtime.convert.redact import Redactor, redact_uri

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("uri", "shown"), [
    ("https://host/m.skops", "https://host/m.skops"),
    ("https://host/m.skops?token=abc", "https://host/m.skops?<redacted>"),
    ("https://user:pass@host:8443/a/m.onnx", "https://***@host:8443/a/m.onnx"),
    ("https://user@host/m", "https://***@host/m"),
    ("https://u:p@host/m?X-Amz-Signature=s&X-Amz-Credential=c#frag",
     "https://***@host/m?<redacted>#<redacted>"),
    ("https://host/m?", "https://host/m?"),
    ("s3://bucket/key.skops?versionId=3", "s3://bucket/key.skops?<redacted>"),
    ("s3://bucket/key.skops", "s3://bucket/key.skops"),
    ("pvc://claim/a/b.skops", "pvc://claim/a/b.skops"),
    ("/models/a?b.skops", "/models/a?b.skops"),  # a local path has no credentials
    ("relative/model.onnx", "relative/model.onnx"),
    ("http://u:p@[::1/m?t=1", "http://***@[::1/m?<redacted>"),  # unparsable: still hidden
])  # fmt: skip
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert redact_uri(shown) == shown, "redacting twice changes nothing"


def test_library_texts_lose_urls_and_known_secrets() -> None:
    uri = "https://alice:pa%24%24word@models.example/m.skops?token=tok-123456&v=2"
    redactor = Redactor.for_run(uri=uri, authorization="Bearer abcdef-ghijk")
    texts = [
        # aiohttp's ClientResponseError quotes the URL it requested.
        f"404, message='Not Found', url=URL('{uri}')",
        # Decoded forms and bare values, as some backends print them.
        "credentials alice:pa$$word rejected; params {'token': 'tok-123456'}",
        "header Authorization: Bearer abcdef-ghijk refused (abcdef-ghijk)",
        "redirected to https://cdn.example/obj?X-Amz-Signature=deadbeef",
    ]
    scrubbed = " ".join(redactor.text(t) for t in texts)
    for secret in ("pa$$word", "pa%24%24word", "alice", "tok-123456", "abcdef-ghijk", "deadbeef"):
        assert secret not in scrubbed
    assert "https://***@models.example/m.skops?<redacted>" in scrubbed
    assert "https://cdn.example/obj?<redacted>" in scrubbed


def test_report_values_are_scrubbed_keys_kept() -> None:
    redactor = Redactor.for_run(uri="https://h/m?token=tok-123456", authorization=None)
    report = {"message": "failed: token tok-123456", "source": {"uri": "https://h/m?token=x"},
              "rows": [1, "tok-123456"], "exit_code": 3}  # fmt: skip
    assert redactor.value(report) == {
        "message": "failed: token ***", "source": {"uri": "https://h/m?<redacted>"},
        "rows": [1, "***"], "exit_code": 3,
    }  # fmt: skip


def test_short_values_are_not_replaced_everywhere() -> None:
    redactor = Redactor.for_run(uri="https://h/m?v=2", authorization=None)
    assert redactor.text("version 2 of 2") == "version 2 of 2"
