"""An autoscaled MLModel on the real node: its HorizontalPodAutoscaler reads the serving
pods' real CPU use (the kubelet's /metrics/resource, through metrics-server and the API
server's aggregation layer) and scales the stable revision up under load sent through the
gateway, while a canary at 50% follows the stable's size."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from localenv.gateway import Gateway, gateway_traffic
from localenv.metricsserver import MetricsServer
from localenv.scenario import get_json, wait_for
from tests.helpers.realpods import BODY, Models

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(900)]

HOST = "busy.example"


def autoscaled() -> dict[str, Any]:
    return {
        "autoscaling": {
            "minReplicas": 1,
            "maxReplicas": 3,
            "cpuUtilization": 50,
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}},
        },
        # A small CPU request, so that modest load is well above 50% of it.
        "resources": {
            "requests": {"cpu": "50m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "traffic": gateway_traffic(hostname=HOST),
        "rollout": {"steps": [{"weight": 50, "pause": {}}, {"weight": 100, "pause": {}}]},
    }


def deployment_of(models: Models, revision: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(
        models.cluster,
        "deployment",
        f"busy-{revision}",
        "-n",
        models.namespace,
        "--show-managed-fields",
    )
    return found


def pod_metrics(models: Models) -> list[dict[str, Any]]:
    raw = models.cluster.kubectl(
        "get",
        "--raw",
        f"/apis/metrics.k8s.io/v1beta1/namespaces/{models.namespace}/pods"
        "?labelSelector=mlops.dev/model%3Dbusy",
        check=False,
    )
    if raw.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(raw.stdout).get("items") or []
    return items


def test_the_hpa_scales_the_stable_on_real_cpu_use_and_the_canary_follows(
    models: Models, gateway: Gateway, metrics_server: MetricsServer
) -> None:
    models.apply("busy", "iris-v1.skops", "v1", **autoscaled())
    v1 = models.until_phase("busy", "Healthy", timeout=420)["stable"]["revision"]
    # metrics-server has scraped the stable's pod: the HPA can read its CPU use.
    wait_for(lambda: pod_metrics(models), timeout=90, what="the stable pod's metrics", interval=2)
    hpa = get_json(models.cluster, "hpa", "busy", "-n", models.namespace)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"busy-{v1}"

    models.apply("busy", "iris-v2.skops", "v2", **autoscaled())
    status = wait_for(
        lambda: (s := models.status("busy")).get("phase") == "Paused" and s,
        timeout=420,
        what="the canary paused at 50%",
        interval=1.0,
    )
    v2 = status["canary"]["revision"]
    assert deployment_of(models, v2)["spec"]["replicas"] == 1  # 50% of 1

    url = f"{gateway.url}/v2/models/busy/infer"
    wait_for(
        lambda: (
            httpx.post(url, json=BODY, headers={"Host": HOST}, trust_env=False).status_code == 200
        ),
        timeout=60,
        what="the gateway to route to busy",
        interval=0.5,
    )
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10, trust_env=False, headers={"Host": HOST}) as client:
            while not stop.is_set():
                try:
                    outcomes[str(client.post(url, json=BODY).status_code)] += 1
                except httpx.HTTPError as error:
                    outcomes[type(error).__name__] += 1

    workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    try:
        # The HPA controller sees the stable's CPU well above 50% of its request and
        # scales it to its maximum; the operator sizes the canary at 50% of that.
        wait_for(
            lambda: deployment_of(models, v1)["spec"]["replicas"] == 3,
            timeout=240,
            what="the HPA to scale the stable to 3 under load",
            interval=1.0,
        )
        scaled_after = time.monotonic() - started
        wait_for(
            lambda: deployment_of(models, v2)["spec"]["replicas"] == math.ceil(3 * 0.5),
            timeout=60,
            what="the canary to follow the stable to 2 replicas",
            interval=1.0,
        )
        wait_for(
            lambda: deployment_of(models, v1).get("status", {}).get("readyReplicas") == 3,
            timeout=300,
            what="the stable's new pods to serve",
            interval=2.0,
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
    hpa = get_json(models.cluster, "hpa", "busy", "-n", models.namespace)
    [cpu] = [m for m in hpa["status"].get("currentMetrics") or () if m["type"] == "Resource"]
    assert cpu["resource"]["name"] == "cpu"
    stable = deployment_of(models, v1)
    owners = {
        e["manager"]
        for e in stable["metadata"]["managedFields"]
        if "f:replicas" in ((e.get("fieldsV1") or {}).get("f:spec") or {})
    }
    assert owners == {"kube-controller-manager"}, owners
    print(f"stable scaled to 3 after {scaled_after:.0f} s of load; requests: {dict(outcomes)}")
    # Scaling up both revisions under load fails no request.
    assert set(outcomes) == {"200"}, outcomes
