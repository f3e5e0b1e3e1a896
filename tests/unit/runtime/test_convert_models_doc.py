"""docs/models.md is generated from the test matrix; fail while it is stale."""

from __future__ import annotations

import pytest

from tests.runtime.gen_models_doc import DOC, render

pytestmark = pytest.mark.unit


def test_models_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/models.md is stale: run `python tests/runtime/gen_models_doc.py`"
    )
