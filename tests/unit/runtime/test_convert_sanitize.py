"""Library error texts are bounded before they reach a log line or the report."""

from __future__ import annotations

import pytest

from mlmodel_runtime.convert.sanitize import clean, describe, printable

pytestmark = pytest.mark.unit


def test_only_the_first_line_survives_without_control_characters() -> None:
    text = "\n  bad \x1b[31mthing\x00 here\x07\nsecond line with data 0xdeadbeef"
    assert clean(text) == "bad [31mthing here"


def test_runs_of_numbers_are_collapsed() -> None:
    shape = ", ".join(str(b) for b in b"MARKER-SECRET-42")
    message = f"invalid shape {{{shape}}} for tensor w (8 dims)"
    assert clean(message) == "invalid shape {…} for tensor w (8 dims)"
    assert clean("values [0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9]") == "values […]"
    assert clean("expected 4 features, got 17") == "expected 4 features, got 17"


def test_long_tokens_and_long_texts_are_capped() -> None:
    blob = "QUJD" * 100
    assert clean(f"raw data {blob} end") == f"raw data {blob[:32]}… end"
    assert len(clean("word " * 500, limit=100)) == 100


def test_describe_keeps_the_type() -> None:
    assert describe(ValueError("x\ny")) == "ValueError: x"
    assert describe(KeyError()) == "KeyError"
    assert describe(RuntimeError("a" * 1000), limit=50).startswith("RuntimeError: aaaa")


def test_printable_keeps_paths() -> None:
    line = '  File "/very/long/path/' + "d/" * 40 + 'module.py", line 3, in f\x1b'
    assert printable(line, 300) == line[:-1]
