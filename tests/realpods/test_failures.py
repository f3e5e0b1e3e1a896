"""Failures only a real kubelet shows: a container that exits repeatedly (a true
CrashLoopBackOff with its back-off), a memory limit the kernel enforces (OOMKilled),
and a pod deleted while it serves (the kubelet's SIGTERM and grace period, the
runtime's drain, kube-proxy's endpoints). The pods run the image built from
runtime/Dockerfile in the quickstart's `restricted` namespace."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import yaml

from localenv.controlplane.cluster import ControlPlane
from localenv.realnode import RealNode
from localenv.scenario import get_json, pods_of, wait_for
from tests.realpods.conftest import InstalledOperator

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(900)]

STORE = "http://model-store.mlmodel-demo.svc.cluster.local:8000"
ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": ROWS}]}


def mlmodel(name: str, namespace: str, file: str, version: str, **serving: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": f"{STORE}/{file}", "format": "skops", "version": version},
            "serving": {"replicas": 1, **serving},
            "rollout": {"steps": [{"weight": 50, "pause": {"duration": "10s"}}, {"weight": 100}]},
        },
    }


def apply(cluster: ControlPlane, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(obj))


def status_of(cluster: ControlPlane, name: str, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = get_json(cluster, "mlmodel", name, "-n", namespace).get("status") or {}
    return status


def until_phase(
    cluster: ControlPlane, name: str, namespace: str, phase: str, timeout: float
) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (s := status_of(cluster, name, namespace)).get("phase") == phase and s,
        timeout=timeout,
        what=f"{name} {phase}",
        interval=1.0,
    )
    return found


@pytest.fixture
def cleanup(cluster: ControlPlane, model_store: str) -> Any:
    names: list[str] = []
    yield names
    for name in names:
        cluster.kubectl("delete", "mlmodel", name, "-n", model_store, "--wait=false", check=False)


def test_a_canary_in_a_real_crash_loop_is_rolled_back_and_status_quotes_its_error(
    cluster: ControlPlane,
    real_node: RealNode,
    installed_operator: InstalledOperator,
    model_store: str,
    cleanup: list[str],
) -> None:
    ns = model_store
    cleanup.append("crashy")
    began = time.monotonic()
    apply(cluster, mlmodel("crashy", ns, "iris-v1.skops", "v1"))
    until_phase(cluster, "crashy", ns, "Healthy", timeout=300)
    # One pod on real containers: fetch, convert with the parity proof, load, Ready.
    print(f"\n[one real pod] apply -> Healthy {time.monotonic() - began:.1f} s")
    # A typo in a setting: the runtime refuses it at start, every time it is restarted.
    bad_env = [{"name": "MLMODEL_MAX_BODY_BYTES", "value": "lots"}]
    apply(cluster, mlmodel("crashy", ns, "iris-v2.skops", "v2", env=bad_env))
    status = until_phase(cluster, "crashy", ns, "RolledBack", timeout=300)
    assert status["stable"]["version"] == "v1", status
    message = status["message"]
    # The kubelet's own words (CrashLoopBackOff or the restarts it counted), and the
    # runtime's, through the termination message's log fallback.
    assert "CrashLoop" in message or "restarted" in message, message
    assert "invalid int value: 'lots'" in message, message
    assert "keeps serving" in message, message


def test_a_memory_limit_too_small_for_the_model_is_reported_as_oom_killed(
    cluster: ControlPlane,
    real_node: RealNode,
    installed_operator: InstalledOperator,
    model_store: str,
    cleanup: list[str],
) -> None:
    ns = model_store
    cleanup.append("starved")
    tiny = {"requests": {"cpu": "50m", "memory": "48Mi"}, "limits": {"memory": "48Mi"}}
    apply(cluster, mlmodel("starved", ns, "iris-v1.skops", "v1", resources=tiny))
    status = until_phase(cluster, "starved", ns, "Failed", timeout=300)
    # The kernel killed it under the cgroup's limit; the kubelet says OOMKilled (exit 137).
    assert "(exit 137, OOMKilled)" in status["message"], status


def test_a_pod_deleted_under_load_fails_no_request_through_the_service(
    cluster: ControlPlane,
    real_node: RealNode,
    installed_operator: InstalledOperator,
    model_store: str,
    cleanup: list[str],
) -> None:
    ns = model_store
    cleanup.append("steady")
    apply(cluster, mlmodel("steady", ns, "iris-v1.skops", "v1", replicas=2))
    until_phase(cluster, "steady", ns, "Healthy", timeout=420)
    service_ip = get_json(cluster, "service", "steady", "-n", ns)["spec"]["clusterIP"]
    url = f"http://{service_ip}/v2/models/steady/infer"
    outcomes: Counter[str] = Counter()
    errors: list[str] = []  # when (relative to the delete) and what, for the message
    deleted_at = 0.0
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5, trust_env=False) as client:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    outcomes[str(client.post(url, json=BODY).status_code)] += 1
                except httpx.HTTPError as error:
                    outcomes[type(error).__name__] += 1
                    at = time.monotonic() - deleted_at if deleted_at else -1.0
                    errors.append(f"{at:+.2f} s {type(error).__name__}: {error}")
                time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))

    workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(5)
    [victim, *_] = pods_of(cluster, ns, "", name="steady")
    deleted_at = time.monotonic()
    cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", ns, "--wait=false")
    # Through the grace period and until the Deployment's replacement serves.
    wait_for(
        lambda: (
            len(
                [
                    p
                    for p in pods_of(cluster, ns, "", name="steady")
                    if p["metadata"]["name"] != victim["metadata"]["name"]
                    and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
                ]
            )
            >= 2
        ),
        timeout=300,
        what="the replacement pod to serve",
        interval=1.0,
    )
    replaced_after = time.monotonic() - deleted_at
    time.sleep(3)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    assert outcomes["200"] > 200, outcomes
    assert set(outcomes) == {"200"}, (outcomes, errors[:10], errors[-3:])
    print(
        f"\n[pod deleted under load] {outcomes['200']} answers, all 200; replacement "
        f"serving {replaced_after:.0f} s after the delete"
    )
