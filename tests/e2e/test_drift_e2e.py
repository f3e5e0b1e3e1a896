"""Input drift in a rollout: both revisions are converted with a parity reference (a
sample of training inputs), so their pods count what they serve into the training
baseline's buckets; the load's rows have one feature (petal length, `input[2]`) moved
far outside what training saw.

With the default limit (maxIncrease over the stable) the canary is promoted: the world
shifted, for stable and canary alike, and the analysis judged the drift on both sides
(both far from training) without holding the rollout. With an absolute `max` the same
shift rolls the canary back, the message naming the feature."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from localenv import LoadGenerator, mlmodel, models
from localenv.controlplane.cluster import ControlPlane
from localenv.loadgen import service_url, until_answering
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, model_status, wait_phase
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, reference_of

pytestmark = pytest.mark.e2e

SHIFT = 3.0  # added to petal length (cm): iris's longest is 6.9


def rollout(metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [{"weight": 50, "pause": {"duration": "8s"}}, {"weight": 100}],
        "scaleDownDelaySeconds": 1,
        "progressDeadlineSeconds": 180,
        "analysis": {
            "interval": "2s",
            "minSamples": 10,
            "failureLimit": 0,
            "metrics": [{"name": "error-rate", "max": 0.01}, metric],
        },
    }


def shifted_load(cluster: ControlPlane, namespace: str, iris: IrisModels) -> LoadGenerator:
    rows = [[a, b, c + SHIFT, d] for a, b, c, d in iris.rows]
    body = models.infer_body(rows)
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    asyncio.run(until_answering(url, body=body))
    return LoadGenerator(url, body=body, rate=30.0, keep_alive=False).start()


def converted_with_reference(
    version: str, model: Path, reference: dict[str, str], metric: dict[str, Any], namespace: str
) -> dict[str, Any]:
    conversion = {"parity": {"samples": 32}, "reference": reference}
    return mlmodel("iris", namespace, version=version, model_file=model,
                   rollout=rollout(metric), conversion=conversion)  # fmt: skip


def drift_figures(status: dict[str, Any]) -> dict[str, Any] | None:
    for result in (status.get("analysis") or {}).get("metrics") or ():
        if result.get("name") == "input-drift" and result.get("verdict") != "Inconclusive":
            return dict(result)
    return None


@pytest.mark.parametrize(
    ("metric", "outcome"),
    [({"name": "input-drift"}, "Promoted"), ({"name": "input-drift", "max": 0.2}, "RolledBack")],
    ids=["relative-default", "absolute-max"],
)
def test_a_shift_reaching_both_revisions_is_judged_relative_by_default(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    tmp_path: Path,
    metric: dict[str, Any],
    outcome: str,
) -> None:
    operators.start(namespace)
    apply(cluster, converted_with_reference("v1", iris.v1, reference_of(iris.v1, tmp_path),
                                            metric, namespace))  # fmt: skip
    wait_phase(cluster, namespace, "iris", "Healthy", timeout=UP_TIMEOUT_S)
    stable = model_status(cluster, namespace)["stable"]
    assert stable["conversion"]["baseline"]["features"] == 4, stable["conversion"]
    load = shifted_load(cluster, namespace, iris)
    seen: list[dict[str, Any]] = []
    try:
        apply(cluster, converted_with_reference("v2", iris.v2, reference_of(iris.v2, tmp_path),
                                                metric, namespace))  # fmt: skip
        deadline = time.monotonic() + UP_TIMEOUT_S
        while True:
            status = model_status(cluster, namespace)
            if figures := drift_figures(status):
                seen.append(figures)
            entry = [e for e in status.get("history") or () if e.get("version") == "v2"]
            if entry and entry[0]["outcome"] != "Progressing":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.25)
    finally:
        load.stop()
    result = load.wait()
    assert not result.failures(), result.explain()
    assert entry[0]["outcome"] == outcome, (entry, status.get("message"))
    assert seen, "input-drift was never judged"
    if outcome == "Promoted":
        judged = seen[-1]
        # Both far from training on the shifted feature, the canary no further than the
        # stable: the world moved, not the canary.
        assert judged["verdict"] == "Pass", judged
        assert judged["canary"] > 0.3, judged
        assert judged["stable"] > 0.3, judged
        assert "input[2]" in judged["reason"], judged
        print(f"\n[drift] promoted through the shift: {judged['reason']}")
    else:
        assert "input-drift" in status["message"], status
        assert "on input[2]" in status["message"], status
        print(f"\n[drift] rolled back: {status['message']}")
