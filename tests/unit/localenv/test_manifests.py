"""The one MLModel builder: what each test layer and the demo get from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv import gateway, mlmodel
from localenv.demo import METRICS, manifest
from localenv.node import RUNNER_LABEL

pytestmark = pytest.mark.unit


def test_without_a_file_the_model_is_a_uri_nothing_fetches() -> None:
    body = mlmodel("iris", "models", version="v2", rollout={"steps": [{"weight": 50}]})
    assert body == {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "iris", "namespace": "models"},
        "spec": {
            "model": {"uri": "s3://models/iris/v2/model.skops", "version": "v2"},
            "rollout": {"steps": [{"weight": 50}]},
        },
    }


def test_model_fields_are_merged_and_no_namespace_is_left_to_kubectl() -> None:
    body = mlmodel(model={"format": "sklearn", "allowUnsafePickle": True})
    assert body["metadata"] == {"name": "iris"}
    assert body["spec"]["model"] == {
        "uri": "s3://models/iris/v1/model.skops",
        "version": "v1",
        "format": "sklearn",
        "allowUnsafePickle": True,
    }


def test_a_local_model_file_lands_on_the_runner_with_small_fast_settings(tmp_path: Path) -> None:
    path = tmp_path / "iris.skops"
    body = mlmodel("iris", "e2e", model_file=path, serving={"env": [{"name": "A", "value": "1"}]})
    spec = body["spec"]
    assert spec["model"] == {"uri": f"file://{path}", "format": "skops", "version": "v1"}
    assert spec["conversion"] == {"parity": {"samples": 32}}
    assert spec["serving"]["nodeSelector"] == {RUNNER_LABEL: "true"}
    assert spec["serving"]["tolerations"] == [
        {"key": RUNNER_LABEL, "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["serving"]["replicas"] == 1
    assert spec["serving"]["env"] == [{"name": "A", "value": "1"}]


def test_editing_one_manifest_never_edits_the_next(tmp_path: Path) -> None:
    first = mlmodel(model_file=tmp_path / "m.skops")
    first["spec"]["serving"]["tolerations"].append({"key": "x"})
    first["spec"]["conversion"]["parity"]["samples"] = 1
    second = mlmodel(model_file=tmp_path / "m.skops")
    assert len(second["spec"]["serving"]["tolerations"]) == 1
    assert second["spec"]["conversion"] == {"parity": {"samples": 32}}


def test_the_demo_manifest_has_the_demo_values_unless_told_otherwise(tmp_path: Path) -> None:
    prometheus = {"prometheus": {"url": "http://127.0.0.1:20001"}}
    demo = manifest(
        "demo", model=tmp_path / "v2.skops", version="v2", pause_s=10, provider=prometheus
    )
    assert demo["metadata"] == {"name": "iris", "namespace": "demo"}
    rollout = demo["spec"]["rollout"]
    assert [s["weight"] for s in rollout["steps"]] == [10, 30, 60, 100]
    assert rollout["steps"][0]["pause"] == {"duration": "10s"}
    assert "pause" not in rollout["steps"][-1]
    assert rollout["analysis"]["metrics"] == list(METRICS)
    assert rollout["analysis"]["provider"] == prometheus
    # Attached to the sandbox's Gateway, on any host: curl $GATEWAY_URL/... reaches it.
    assert demo["spec"]["traffic"]["gatewayAPI"] == {"parentRefs": [gateway.PARENT_REF]}

    other = manifest(
        "demo",
        model=tmp_path / "v2.skops",
        version="v2",
        pause_s=10,
        provider={"scrape": {}},
        name="wine",
        steps=[{"weight": 50}],
        metrics=[{"name": "error-rate", "max": 0.05}],
    )
    assert other["metadata"]["name"] == "wine"
    assert other["spec"]["rollout"]["steps"] == [{"weight": 50}]
    assert other["spec"]["rollout"]["analysis"]["metrics"] == [{"name": "error-rate", "max": 0.05}]
