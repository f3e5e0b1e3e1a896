"""Monitoring after promotion, end to end: a stable converted with a parity reference
(the iris training data) serves through its Service while `spec.monitoring` judges its
inputs against the training baseline every interval.

Served rows drawn like the training data show no drift; the load generator then moves
one feature (petal length, `input[2]`) far from what training saw: within two judged
intervals the MLModel is Drifting, the condition naming the feature, a Warning Event
says so, and the stable keeps serving untouched (monitoring never rolls back). When the
shift stops, the condition clears within two intervals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris

from localenv import LoadGenerator, mlmodel, models
from localenv.controlplane.cluster import ControlPlane
from localenv.loadgen import service_url, until_answering
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, deployments, events_for, model_status, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, reference_of

pytestmark = pytest.mark.e2e

INTERVAL_S = 3
SHIFT = 3.0  # added to petal length (cm): iris's longest is 6.9
TRAINING = [[float(v) for v in row] for row in load_iris(return_X_y=True)[0]]
SHIFTED = [[a, b, c + SHIFT, d] for a, b, c, d in TRAINING]


def drifting(status: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in status.get("conditions") or () if c["type"] == "Drifting"]
    return dict(found[0]) if found else {}


def judged(status: dict[str, Any]) -> int:
    return int((status.get("monitoring") or {}).get("interval", 0))


def wait_for(
    cluster: ControlPlane, namespace: str, what: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = model_status(cluster, namespace)
        if what(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.25)


def turns(cluster: ControlPlane, namespace: str, wanted: str) -> dict[str, Any]:
    """The status once Drifting is `wanted` ("True", "False"), which must take at most
    two judged intervals from now (the first may hold rows from before the change)."""
    before = judged(model_status(cluster, namespace))
    status = wait_for(cluster, namespace, lambda s: drifting(s).get("status") == wanted,
                      timeout=10 * INTERVAL_S)  # fmt: skip
    assert judged(status) <= before + 2, status["monitoring"]
    return status


def load(url: str, rows: list[list[float]]) -> LoadGenerator:
    return LoadGenerator(url, body=models.infer_body(rows), rate=15.0, keep_alive=False).start()


def test_a_shifted_feature_sets_drifting_on_the_stable_and_clears_when_it_stops(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
) -> None:
    operators.start(namespace)
    conversion = {"parity": {"samples": 32}, "reference": reference_of(iris.v1, tmp_path)}
    monitoring = {
        "interval": f"{INTERVAL_S}s",
        "minSamples": 20,
        "metrics": [{"name": "input-drift", "max": 0.1}],
    }
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=iris.v1,
                           conversion=conversion, monitoring=monitoring))  # fmt: skip
    wait_healthy(cluster, namespace, "v1", timeout=UP_TIMEOUT_S)
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    asyncio.run(until_answering(url, body=models.infer_body(TRAINING)))
    stable = model_status(cluster, namespace)["stable"]["revision"]

    # Like training: judged within limits, the worst feature far under the limit.
    calm = load(url, TRAINING)
    try:
        status = wait_for(cluster, namespace, lambda s: drifting(s).get("reason") == "WithinLimits",
                          timeout=10 * INTERVAL_S)  # fmt: skip
        start = judged(status)
        status = wait_for(cluster, namespace, lambda s: judged(s) >= start + 2, 10 * INTERVAL_S)
        assert drifting(status)["status"] == "False", status
        [figure] = status["monitoring"]["metrics"]
        assert figure["verdict"] == "Pass", figure
        assert figure["canary"] < 0.05, figure
        print(f"\n[monitoring] like training: {figure['reason']}")
    finally:
        calm.stop()
    assert not calm.wait().failures()

    # Petal length moved: Drifting within two judged intervals, naming input[2].
    shifted = load(url, SHIFTED)
    try:
        status = turns(cluster, namespace, "True")
        condition = drifting(status)
        assert condition["reason"] == "InputDrift", condition
        assert "on input[2] > max 0.1" in condition["message"], condition
        print(f"\n[monitoring] {condition['message']}")
        # The stable serves on: phase, revision and Deployment as they were.
        assert status["phase"] == "Healthy", status
        assert status["stable"]["revision"] == stable
        assert [d["metadata"]["name"] for d in deployments(cluster, namespace)] == [
            f"iris-{stable}"
        ]
        warnings = [e for e in events_for(cluster, namespace, "iris") if e["reason"] == "Drifting"]
        assert warnings, "no Drifting event"
        assert "input[2]" in warnings[0]["message"], warnings
    finally:
        shifted.stop()
    assert not shifted.wait().failures()

    # The shift stopped: cleared within two judged intervals.
    calm = load(url, TRAINING)
    try:
        status = turns(cluster, namespace, "False")
        assert drifting(status)["reason"] == "WithinLimits"
        resolved = [e for e in events_for(cluster, namespace, "iris")
                    if e["reason"] == "DriftResolved"]  # fmt: skip
        assert resolved, "no DriftResolved event"
    finally:
        calm.stop()
    result = calm.wait()
    assert not result.failures(), result.explain()
