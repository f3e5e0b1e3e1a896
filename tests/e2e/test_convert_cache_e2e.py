"""With the administrator's conversion cache, the next pod of a revision reuses the
conversion its first pod proved, instead of importing scikit-learn and converting again.

The operator mounts `<--convert-cache-host-path>/<namespace>` into the `convert` init
container; the process runner maps that hostPath to its node's directory, shared by the
pods on it as a kubelet's would be. What counts is what a person reads with kubectl:
each pod's `convert` report (its termination message).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localenv import mlmodel, pods_of, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, model_status, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels

pytestmark = pytest.mark.e2e

CACHE_ROOT = "/var/cache/mlmodel"


def convert_report(pod: dict[str, Any]) -> dict[str, Any]:
    """The `convert` init container's report, as `kubectl get pod -o yaml` shows it."""
    [status] = [s for s in pod["status"].get("initContainerStatuses", ()) if s["name"] == "convert"]
    report: dict[str, Any] = json.loads(status["state"]["terminated"]["message"])
    return report


def test_the_next_pod_of_a_revision_reuses_the_conversion_its_first_pod_proved(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    operators.start(namespace, settings=[f"--convert-cache-host-path={CACHE_ROOT}"])
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=iris.v1))
    revision = wait_healthy(cluster, namespace, "v1", timeout=UP_TIMEOUT_S)["stable"]["revision"]
    [first] = pods_of(cluster, namespace, revision)
    converted = convert_report(first)
    assert converted["status"] == "ok"
    assert converted["cache"]["reused"] is False
    assert converted["cache"]["stored"] is True
    assert converted["message"].startswith("converted ")
    node_cache = runner.host_path(f"{CACHE_ROOT}/{namespace}")
    assert [p.name for p in node_cache.iterdir()] == [converted["cache"]["entry"]]

    # A scale-up is the same revision: its pod finds the conversion on the node.
    apply(
        cluster,
        mlmodel("iris", namespace, version="v1", model_file=iris.v1, serving={"replicas": 2}),
    )
    wait_for(
        lambda: (
            (s := model_status(cluster, namespace)).get("phase") == "Healthy"
            and (s.get("stable") or {}).get("readyReplicas") == 2
        ),
        timeout=UP_TIMEOUT_S,
        interval=0.5,
        what="the second pod to be ready",
    )
    pods = pods_of(cluster, namespace, revision)
    [second] = [p for p in pods if p["metadata"]["name"] != first["metadata"]["name"]]
    reused = convert_report(second)
    assert reused["status"] == "ok"
    assert reused["cache"] == {"reused": True, "entry": converted["cache"]["entry"]}
    assert reused["message"].startswith(
        "reused the conversion of sklearn.ensemble.RandomForestClassifier"
    )
    # The same bytes, with the proof recorded when they were converted.
    assert reused["model_sha256"] == converted["model_sha256"]
    assert reused["parity"] == converted["parity"]
    assert reused["parity"]["passed"] is True
    # And it imported no model library to say so.
    assert set(reused["timings"]) == {"fetch", "cache", "write"}, reused["timings"]
