"""A revision serves the model bytes its first pod fetched, never other bytes put at the
same URI later: the operator pins the first digest, and later pods' fetch refuses a change.

Without the pin, a model file overwritten in the store would be served by the new pods of
a scale-up (or a pod restart) of the same revision, with no canary and no analysis.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.scenario import get_json, wait_for
from tests.e2e.conftest import IrisModels, e2e_mlmodel

pytestmark = pytest.mark.e2e

UP_TIMEOUT_S = 120.0


def status_of(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = get_json(cluster, "mlmodel", "iris", "-n", namespace).get("status", {})
    return status


def test_a_model_overwritten_at_its_uri_is_refused_by_later_pods_of_the_same_revision(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
) -> None:
    store = tmp_path / "store" / "iris.skops"
    store.parent.mkdir()
    shutil.copyfile(iris.v1, store)
    operators.start(namespace)
    cluster.kubectl(
        "apply", "-f", "-", input_text=e2e_mlmodel(namespace, model=store, version="v1")
    )
    healthy = wait_for(
        lambda: (s := status_of(cluster, namespace)).get("phase") == "Healthy" and s,
        timeout=UP_TIMEOUT_S,
        interval=0.5,
        what="v1 to serve",
    )
    revision = healthy["stable"]["revision"]
    assert healthy["stable"]["digest"] == iris.sha256(iris.v1)
    pins = get_json(cluster, "configmap", "iris-model-digests", "-n", namespace)
    assert pins["data"] == {revision: iris.sha256(iris.v1)}

    # Someone overwrites the object in the store; then the model is scaled up, which is
    # not a new revision (replicas are not part of it).
    shutil.copyfile(iris.v2, store)
    scaled = yaml.safe_load(e2e_mlmodel(namespace, model=store, version="v1", replicas=2))
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(scaled))
    refused = wait_for(
        lambda: (
            "changed since the revision was pinned"
            in (s := status_of(cluster, namespace)).get("message", "")
            and s
        ),
        timeout=UP_TIMEOUT_S,
        interval=0.5,
        what="the new pod's fetch to refuse the overwritten model",
    )
    assert refused["phase"] == "Degraded"
    assert refused["stable"]["revision"] == revision
    assert refused["stable"]["readyReplicas"] == 1  # the first pod keeps serving v1's bytes
    reports = [
        json.loads(path.read_text())
        for path in runner.directory.glob(f"pods/{namespace}_*/fetch.termination-log")
    ]
    refusals = [r for r in reports if r["status"] == "failed"]
    assert [r["error"] for r in refusals] == ["integrity"]
    assert refusals[0]["retryable"] is False
