"""The analysis template CRDs are the MLModel's analysis schema, generated
(`python -m mlmodel_operator.templatecrds`), installed and readable by the operator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from mlmodel_operator import templatecrds
from mlmodel_operator.analysis.templates import KINDS

pytestmark = pytest.mark.unit

MLMODEL_CRD: dict[str, Any] = yaml.safe_load(templatecrds.CRD.read_text())


def _analysis() -> Mapping[str, Any]:
    schema = MLMODEL_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis: Mapping[str, Any] = schema["properties"]["spec"]["properties"]["rollout"][
        "properties"
    ]["analysis"]
    return analysis


def _defaults(schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if "default" in schema:
        yield path
    for name, child in (schema.get("properties") or {}).items():
        yield from _defaults(child, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from _defaults(schema["items"], f"{path}[]")


def test_the_committed_template_crds_are_what_the_generator_writes() -> None:
    for path, text in templatecrds.render(MLMODEL_CRD).items():
        assert path.exists(), f"{path} is missing: run `python -m mlmodel_operator.templatecrds`"
        assert path.read_text() == text, (
            f"{path} is stale: run `python -m mlmodel_operator.templatecrds`"
        )


def test_a_template_spec_is_the_analysis_schema_without_its_template_ref() -> None:
    analysis = _analysis()
    for kind in KINDS.values():
        crd = yaml.safe_load(templatecrds.file_of(kind).read_text())
        assert crd["spec"]["names"]["kind"] == kind.kind
        assert crd["spec"]["scope"] == ("Namespaced" if kind.namespaced else "Cluster")
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert set(spec["properties"]) == set(analysis["properties"]) - {"templateRef"}
        for field in ("interval", "metrics", "provider"):
            assert spec["properties"][field] == analysis["properties"][field]
        rules = spec["x-kubernetes-validations"]
        assert all("templateRef" not in rule["rule"] for rule in rules)
        assert [rule["message"] for rule in rules] == [
            "custom metrics need spec.provider.prometheus",
            "a custom metric needs prometheus.query",
        ]


def test_no_analysis_field_has_a_schema_default_that_would_override_a_template() -> None:
    """The API server fills a default into every object it stores: an MLModel naming a
    template would then set every defaulted field itself, replacing the template's."""
    found = [p for p in _defaults(_analysis(), "analysis") if p != "analysis.templateRef.kind"]
    assert found == []


def test_the_crds_are_installed_with_the_mlmodels() -> None:
    kustomization = yaml.safe_load((templatecrds.ROOT / "crds" / "kustomization.yaml").read_text())
    for kind in KINDS.values():
        assert templatecrds.file_of(kind).name in kustomization["resources"]


def test_the_operator_may_get_every_template_kind_and_nothing_more() -> None:
    documents = yaml.safe_load_all((templatecrds.ROOT / "manifests" / "rbac.yaml").read_text())
    [role] = [d for d in documents if d["kind"] == "ClusterRole"]
    granted = {
        resource: rule["verbs"]
        for rule in role["rules"]
        if rule["apiGroups"] == ["mlops.dev"]
        for resource in rule["resources"]
    }
    for kind in KINDS.values():
        assert granted[kind.plural] == ["get"]
