"""Failures only a real kubelet shows: a container that exits repeatedly (a true
CrashLoopBackOff with its back-off), a memory limit the kernel enforces (OOMKilled), an
image that cannot be pulled (containerd's pull, the kubelet's ErrImagePull and
back-off), and a pod deleted while it serves (the kubelet's SIGTERM and grace period,
the runtime's drain, the EndpointSlices that Traefik and kube-proxy follow). The pods
run the image built from runtime/Dockerfile in the quickstart's `restricted` namespace."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from localenv.gateway import Gateway, gateway_traffic
from localenv.imagebuild import archive_for, project_images
from localenv.realnode import RealNode
from localenv.scenario import get_json, wait_for
from tests.helpers.realpods import BODY, Models

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(900)]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {c["type"]: c for c in status.get("conditions") or ()}.get(kind, {})
    return found


def test_a_canary_in_a_real_crash_loop_is_rolled_back_and_status_quotes_its_error(
    models: Models,
) -> None:
    began = time.monotonic()
    models.apply("crashy", "iris-v1.skops", "v1")
    models.until_phase("crashy", "Healthy", timeout=300)
    # One pod on real containers: fetch, convert with the parity proof, load, Ready.
    print(f"\n[one real pod] apply -> Healthy {time.monotonic() - began:.1f} s")
    # A typo in a setting: the runtime refuses it at start, every time it is restarted.
    bad_env = [{"name": "MLMODEL_MAX_BODY_BYTES", "value": "lots"}]
    models.apply("crashy", "iris-v2.skops", "v2", env=bad_env)
    status = models.until_phase("crashy", "RolledBack", timeout=300)
    assert status["stable"]["version"] == "v1", status
    message = status["message"]
    # The kubelet's own words (CrashLoopBackOff or the restarts it counted), and the
    # runtime's, through the termination message's log fallback.
    assert "CrashLoop" in message or "restarted" in message, message
    assert "invalid int value: 'lots'" in message, message
    assert "keeps serving" in message, message


def test_a_memory_limit_too_small_for_the_model_is_reported_as_oom_killed(
    models: Models,
) -> None:
    tiny = {"requests": {"cpu": "50m", "memory": "48Mi"}, "limits": {"memory": "48Mi"}}
    models.apply("starved", "iris-v1.skops", "v1", resources=tiny)
    status = models.until_phase("starved", "Failed", timeout=300)
    # The kernel killed it under the cgroup's limit; the kubelet says OOMKilled (exit 137).
    assert "(exit 137, OOMKilled)" in status["message"], status


def test_an_image_that_cannot_be_pulled_degrades_serving_with_the_kubelets_reason(
    models: Models, real_node: RealNode
) -> None:
    """The runtime image goes from the node (as after an image GC, or on a new node),
    and the serving pod is replaced: the pull fails (no registry is reachable from the
    sandbox), the MLModel turns Degraded quoting the kubelet, and recovers by itself once
    the image is back, on the kubelet's next pull attempt."""
    runtime = project_images()["runtime"].reference
    models.apply("unpullable", "iris-v1.skops", "v1")
    models.until_phase("unpullable", "Healthy", timeout=300)
    [serving] = models.pods("unpullable")
    real_node.ctr("images", "rm", runtime)
    try:
        models.cluster.kubectl(
            "delete", "pod", serving["metadata"]["name"], "-n", models.namespace, "--wait=false"
        )
        # Degraded at once (no replica ready), then with the reason once the pull fails.
        status = wait_for(
            lambda: (
                (s := models.status("unpullable")).get("phase") == "Degraded"
                and condition(s, "Degraded").get("reason") == "ImagePullFailed"
                and s
            ),
            timeout=240,
            what="unpullable Degraded by ImagePullFailed",
            interval=1.0,
        )
    finally:
        real_node.import_image(archive_for("runtime"))
    message = status["message"]
    assert "v1" in message, message
    # The kubelet's waiting reason and containerd's error, for the image the pod needs.
    assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
    assert runtime in message, message
    assert condition(status, "Degraded")["status"] == "True", status
    assert condition(status, "Ready")["status"] == "False", status
    began = time.monotonic()
    models.until_phase("unpullable", "Healthy", timeout=420)
    print(
        f"\n[image pull] Degraded: {message[:300]}\n"
        f"[image pull] Healthy again {time.monotonic() - began:.0f} s after the image came back"
    )


def test_a_pod_deleted_under_load_fails_no_request_through_the_gateway_or_the_service(
    models: Models, gateway: Gateway
) -> None:
    """Load through both front doors (Traefik, by the HTTPRoute's backends' EndpointSlices;
    the `steady` Service's ClusterIP, by kube-proxy's rules) while a serving pod is
    deleted: the kubelet's SIGTERM, the runtime's drain while the endpoints update, and
    the Deployment's replacement."""
    host = "steady.example"
    models.apply(
        "steady", "iris-v1.skops", "v1", replicas=2, traffic=gateway_traffic(hostname=host)
    )
    models.until_phase("steady", "Healthy", timeout=420)
    service_ip = get_json(models.cluster, "service", "steady", "-n", models.namespace)["spec"][
        "clusterIP"
    ]
    doors = {
        "gateway": (f"{gateway.url}/v2/models/steady/infer", {"Host": host}),
        "service": (f"http://{service_ip}/v2/models/steady/infer", {}),
    }
    outcomes: dict[str, Counter[str]] = {door: Counter() for door in doors}
    errors: list[str] = []  # which door, when (relative to the delete) and what
    deleted_at = 0.0
    stop = threading.Event()

    def load(door: str) -> None:
        url, headers = doors[door]
        with httpx.Client(timeout=5, trust_env=False, headers=headers) as client:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    response = client.post(url, json=BODY)
                    outcomes[door][str(response.status_code)] += 1
                    if response.status_code != 200:
                        errors.append(f"{door} {response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    outcomes[door][type(error).__name__] += 1
                    at = time.monotonic() - deleted_at if deleted_at else -1.0
                    errors.append(f"{door} {at:+.2f} s {type(error).__name__}: {error}")
                time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))

    # The route and kube-proxy's rules follow Healthy by a moment (a Service whose
    # endpoints kube-proxy has not programmed yet is rejected: connection refused):
    # start counting once both doors answer.
    def answers(door: str) -> bool:
        url, headers = doors[door]
        try:
            return httpx.post(url, json=BODY, headers=headers, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    for door in doors:
        wait_for(
            functools.partial(answers, door),
            timeout=60,
            what=f"the {door} to route to steady",
            interval=0.5,
        )
    workers = [threading.Thread(target=load, args=(d,), daemon=True) for d in doors]
    for worker in workers:
        worker.start()
    time.sleep(5)
    [victim, *_] = models.pods("steady")
    victim_name = victim["metadata"]["name"]
    deleted_at = time.monotonic()
    models.cluster.kubectl("delete", "pod", victim_name, "-n", models.namespace, "--wait=false")

    def replaced() -> bool:
        serving = [
            p
            for p in models.pods("steady")
            if p["metadata"]["name"] != victim_name
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
        ]
        return len(serving) >= 2

    # Through the grace period and until the Deployment's replacement serves.
    wait_for(replaced, timeout=300, what="the replacement pod to serve", interval=1.0)
    replaced_after = time.monotonic() - deleted_at
    time.sleep(3)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    for door, counted in outcomes.items():
        assert counted["200"] > 100, (door, outcomes)
        assert set(counted) == {"200"}, (door, outcomes, errors[:10], errors[-3:])
    print(
        f"\n[pod deleted under load] gateway {outcomes['gateway']['200']}, service "
        f"{outcomes['service']['200']} answers, all 200; replacement serving "
        f"{replaced_after:.0f} s after the delete"
    )
