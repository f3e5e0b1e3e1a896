"""Every field of the MLModel CRD's schema says what it is.

`kubectl explain mlmodel.spec...` and docs/crd-reference.md show these descriptions; a
field without one is a field people have to guess about.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from mlmodel_operator import crddoc

pytestmark = pytest.mark.unit


def _schema() -> Mapping[str, Any]:
    crd = yaml.safe_load(crddoc.CRD.read_text())
    schema: Mapping[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _fields(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, schema) of every field below `schema`: its properties, those of its array
    items (`path[]`) and of its map values (`path.*`), at every depth."""
    for name, child in (schema.get("properties") or {}).items():
        field = f"{path}.{name}"
        yield field, child
        yield from _fields(child, field)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _fields(items, f"{path}[]")
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping):
        yield from _fields(values, f"{path}.*")


def _all_fields() -> list[tuple[str, Mapping[str, Any]]]:
    root = _schema()["properties"]
    return [
        field
        for top in ("spec", "status")
        for field in ((top, root[top]), *_fields(root[top], top))
    ]


def test_the_walk_reaches_nested_objects_array_items_and_open_objects() -> None:
    paths = {path for path, _ in _all_fields()}
    for expected in (
        "spec",
        "spec.rollout.analysis.interval",
        "spec.rollout.steps[].weight",
        "spec.rollout.steps[].pause.duration",
        "spec.rollout.analysis.metrics[].prometheus.query",
        "spec.serving.affinity",
        "status.analysis",
        "status.conditions[].lastTransitionTime",
    ):
        assert expected in paths


def test_every_crd_field_has_a_description() -> None:
    missing = [
        path for path, schema in _all_fields() if not str(schema.get("description") or "").strip()
    ]
    assert not missing, "CRD fields without a description:\n" + "\n".join(missing)
