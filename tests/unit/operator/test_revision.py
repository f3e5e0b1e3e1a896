"""revision_of: the same pods keep their revision; anything that changes the pods gets a new one."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlmodel_operator.revision import REVISION_LENGTH, revision_of
from mlmodel_operator.spec import parse_spec

pytestmark = pytest.mark.unit

IMAGE = "ghcr.io/mlops-dev/mlmodel-runtime:0.1.0"
BASE: dict[str, Any] = {
    "model": {"uri": "s3://models/iris/v1/model.skops", "format": "skops", "version": "v1"},
    "serving": {
        "replicas": 2,
        "batching": {"maxBatchSize": 32, "maxDelayMs": 2},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "nodeSelector": {"pool": "ml", "zone": "a"},
    },
    "rollout": {"steps": [{"weight": 10, "pause": {"duration": "1m"}}, {"weight": 100}]},
}


def revision(raw: dict[str, Any], image: str = IMAGE) -> str:
    return revision_of(parse_spec(raw), image)


def changed(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


def test_a_revision_is_a_short_hex_hash_and_deterministic() -> None:
    first = revision(BASE)

    assert len(first) == REVISION_LENGTH
    assert set(first) <= set("0123456789abcdef")
    assert revision(copy.deepcopy(BASE)) == first


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("serving.replicas", 5),  # scaling is not a new version
        ("serving.replicas", 0),
        ("rollout.steps", [{"weight": 50}]),
        ("rollout.progressDeadlineSeconds", 60),
        ("rollout.analysis", {"interval": "10s"}),
        ("traffic.router", "replicas"),
    ],
)
def test_what_does_not_change_the_pods_keeps_the_revision(path: str, value: Any) -> None:
    assert revision(changed(path, value)) == revision(BASE)


def test_the_order_keys_are_written_in_does_not_matter() -> None:
    reordered = copy.deepcopy(BASE)
    serving = reordered["serving"]
    serving["resources"] = {
        "limits": {"memory": "2Gi"},
        "requests": {"memory": "1Gi", "cpu": "500m"},
    }
    serving["nodeSelector"] = {"zone": "a", "pool": "ml"}
    reordered["serving"] = dict(reversed(list(serving.items())))
    reordered["model"] = dict(reversed(list(reordered["model"].items())))

    assert revision(reordered) == revision(BASE)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model.uri", "s3://models/iris/v2/model.skops"),
        ("model.format", "onnx"),
        ("model.sha256", "ab" * 32),
        ("model.version", "v2"),  # shown by the serving pods (--version)
        ("model.credentialsSecret", "s3-credentials"),
        ("model.trustTypes", ["numpy.dtype"]),
        ("conversion.parity", {"samples": 64}),
        ("serving.batching", {"maxBatchSize": 64, "maxDelayMs": 2}),
        ("serving.batching", {"maxBatchSize": 32, "maxDelayMs": 5}),
        ("serving.workers", 2),
        ("serving.resources", {"requests": {"cpu": "1", "memory": "1Gi"}}),
        ("serving.nodeSelector", {"pool": "gpu"}),
        ("serving.env", [{"name": "OMP_NUM_THREADS", "value": "1"}]),
        ("serving.podMetadata", {"labels": {"team": "fraud"}}),
    ],
)
def test_what_changes_the_pods_gives_a_new_revision(path: str, value: Any) -> None:
    assert revision(changed(path, value)) != revision(BASE)


def test_a_new_runtime_image_gives_a_new_revision() -> None:
    assert revision(BASE, "ghcr.io/mlops-dev/mlmodel-runtime:0.2.0") != revision(BASE)
