"""One pod on a real kubelet: containerd and runc run a pause sandbox and a container from
an image made here, in a network namespace the CNI bridge plugin wired; the pod turns
Ready by the kubelet's own probe, and a ClusterIP reaches it through kube-proxy."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from localenv.controlplane.cluster import ControlPlane
from localenv.images import ECHO_SOURCE, Image, build_archive, static_program
from localenv.realnode import NODE_NAME, TAINT, RealNode
from localenv.scenario import get_json, wait_for

pytestmark = pytest.mark.realpods

ECHO_IMAGE = "localenv.test/echo:1"


def echo_pod(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "echo", "namespace": namespace, "labels": {"app": "echo"}},
        "spec": {
            "nodeSelector": {"mlops.dev/real": "true"},
            "tolerations": [{**TAINT, "operator": "Equal"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "echo",
                    "image": ECHO_IMAGE,
                    "imagePullPolicy": "Never",
                    "ports": [{"containerPort": 8080}],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                    ],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def test_a_pod_runs_on_a_real_kubelet_and_answers_through_its_service(
    cluster: ControlPlane, namespace: str, real_node: RealNode, tmp_path: Path
) -> None:
    binary = static_program("echo", ECHO_SOURCE, tmp_path / "programs")
    real_node.import_image(
        build_archive(Image(ECHO_IMAGE, {"echo": binary}, ("/echo",)), tmp_path / "echo.tar")
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": namespace},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    manifest = yaml.safe_dump_all([echo_pod(namespace), service])
    began = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input_text=manifest)

    def ready() -> dict[str, object] | None:
        pod = get_json(cluster, "pod", "echo", "-n", namespace)
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        return pod if conditions.get("Ready") == "True" else None

    pod = wait_for(ready, timeout=60, what="the pod to be Ready on the real kubelet")
    ready_in = time.monotonic() - began
    assert pod["spec"]["nodeName"] == NODE_NAME
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.244.2."), ip
    [status] = pod["status"]["containerStatuses"]
    assert status["containerID"].startswith("containerd://"), status
    assert "running" in status["state"], status

    direct = httpx.get(f"http://{ip}:8080/", timeout=5, trust_env=False).text
    assert direct.split() == ["echo", ip]
    cluster_ip = get_json(cluster, "service", "echo", "-n", namespace)["spec"]["clusterIP"]
    answer = wait_for(
        lambda: _get(f"http://{cluster_ip}"), timeout=20, what="the ClusterIP to reach the pod"
    )
    assert answer.split() == ["echo", ip]
    print(f"\n[real pod] Ready {ready_in:.1f} s after apply on {NODE_NAME}, IP {ip}")


def _get(url: str) -> str | None:
    try:
        return httpx.get(url + "/", timeout=2, trust_env=False).text
    except httpx.HTTPError:
        return None
