"""Generated documentation is current."""

from __future__ import annotations

import pytest
import yaml

from mlmodel_operator import crddoc

pytestmark = pytest.mark.unit


def test_crd_reference_is_generated_from_the_current_crd() -> None:
    expected = crddoc.render(yaml.safe_load(crddoc.CRD.read_text()))
    assert crddoc.REFERENCE.read_text() == expected, (
        "docs/crd-reference.md is stale: run `python -m mlmodel_operator.crddoc`"
    )


def test_crd_reference_documents_every_spec_field() -> None:
    reference = crddoc.REFERENCE.read_text()
    for field in (
        "spec.model.uri",
        "spec.rollout.steps[].pause.duration",
        "spec.traffic.gatewayAPI.parentRefs",
        "status.canary.weight",
    ):
        assert f"`{field}`" in reference
