"""The pod runner (the stand-in kubelet of node runner-0) across an API server outage.

A soak run found it: a canary pod turned ready while kube-apiserver was being
restarted, the runner's status write failed and was never made again, and the
operator rolled the good canary back as "not ready within 180s". A kubelet's status
manager writes a pod's status until it lands; so must the runner, or the faults the
e2e tests inject would be judged on a node that lies.
"""

from __future__ import annotations

import pytest

from localenv import mlmodel, pods_of, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels

pytestmark = pytest.mark.e2e

DOWN_S = 12.0  # longer than fetch + convert + serve start of an iris model here


def test_a_pod_that_turns_ready_while_the_api_server_is_down_is_reported_ready(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    # A lease longer than the outage: the operator keeps leading (shorter, it exits by
    # design, tests/cluster/test_control_plane_faults.py) and nothing restarts it here.
    operator = operators.start(namespace, lease_seconds=60)
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=iris.v1))
    pods = wait_for(
        lambda: [p for p in pods_of(cluster, namespace, "") if p["status"].get("podIP")],
        timeout=UP_TIMEOUT_S,
        what="the runner to start the pod",
    )
    [pod] = pods
    name = pod["metadata"]["name"]

    # Down from the pod's start until after it serves: every status write in between,
    # the Ready one among them, fails.
    cluster.restart("kube-apiserver", down_s=DOWN_S)

    status = wait_healthy(cluster, namespace, "v1", timeout=UP_TIMEOUT_S, interval=0.5)
    assert status["stable"]["readyReplicas"] == 1, status
    assert operator.alive(), operator.output()[-3000:]
    log = runner.log_file.read_text()
    mine = [line for line in log.splitlines() if f"{namespace}/{name}:" in line]
    assert any("status not written" in line for line in mine), "\n".join(mine)
    assert any("writing its status again" in line for line in mine), "\n".join(mine)
