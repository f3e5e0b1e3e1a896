"""A revision serves the model bytes its first pod fetched, never other bytes put at the
same URI later: the operator pins the first digest, and later pods' fetch refuses a change.

Without the pin, a model file overwritten in the store would be served by the new pods of
a scale-up (or a pod restart) of the same revision, with no canary and no analysis.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.scenario import get_json
from tests.helpers.kube import apply, model_status, wait_phase
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels

pytestmark = pytest.mark.e2e


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
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=store))
    healthy = wait_phase(cluster, namespace, "iris", "Healthy", timeout=UP_TIMEOUT_S)
    revision = healthy["stable"]["revision"]
    assert healthy["stable"]["digest"] == iris.sha256(iris.v1)
    pins = get_json(cluster, "configmap", "iris-model-digests", "-n", namespace)
    assert pins["data"] == {revision: iris.sha256(iris.v1)}

    # Someone overwrites the object in the store; then the model is scaled up, which is
    # not a new revision (replicas are not part of it).
    shutil.copyfile(iris.v2, store)
    apply(
        cluster,
        mlmodel("iris", namespace, version="v1", model_file=store, serving={"replicas": 2}),
    )
    refused = wait_for(
        lambda: (
            "changed since the revision was pinned"
            in (s := model_status(cluster, namespace, "iris")).get("message", "")
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
