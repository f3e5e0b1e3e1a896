"""The installed operator killed for memory (the kernel's OOM killer under its pod's
limit, reported by the kubelet as OOMKilled) while it holds many MLModels: it loses
nothing. Models are on kwok nodes (only the operator runs on real containers), so the
leader's memory is real and the models many."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest
import yaml

from localenv import mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.install import LEASE, OPERATOR_NAMESPACE, InstalledOperator, leader
from localenv.realnode import RealNode
from localenv.scenario import get_json, wait_for

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(1500)]

MODELS = 800
MANIFEST_MEMORY = {"requests": "128Mi", "limits": "512Mi"}  # manifests/operator.yaml
CHANGED = "m0000"  # scaled while the operator cannot lead


def operator_pods(cluster: ControlPlane) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(
        cluster, "pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=mlmodel-operator"
    )["items"]
    return items


def set_memory(cluster: ControlPlane, requests: str, limits: str) -> None:
    """As an administrator would: `kubectl set resources` on the operator's Deployment."""
    cluster.kubectl(
        "set",
        "resources",
        "deployment/mlmodel-operator",
        "-n",
        OPERATOR_NAMESPACE,
        "-c",
        "operator",
        f"--requests=memory={requests}",
        f"--limits=memory={limits}",
    )


def phases(cluster: ControlPlane, namespace: str) -> Counter[str]:
    items = get_json(cluster, "mlmodels", "-n", namespace)["items"]
    return Counter(str((m.get("status") or {}).get("phase")) for m in items)


def oom_killed(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return dict(terminated)
    return None


def test_an_operator_killed_for_memory_loses_nothing_once_given_enough(
    cluster: ControlPlane, installed_operator: InstalledOperator, real_node: RealNode
) -> None:
    """800 MLModels Healthy under the installed operator. Its memory limit is then cut to
    halfway between the standby's memory (it holds no models) and the leader's: each pod
    that leads is killed for memory as it takes the models up, and restarted by the
    kubelet. A model is scaled while no pod can lead. With the manifest's limit back,
    the change is carried out and every model is Healthy with exactly its own objects:
    no duplicate, no orphan."""
    namespace = f"oom-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    manifests = [mlmodel(f"m{i:04d}", namespace) for i in range(MODELS)]
    try:
        began = time.monotonic()
        cluster.kubectl(
            "apply", "--server-side", "-f", "-", input_text=yaml.safe_dump_all(manifests)
        )
        wait_for(
            lambda: phases(cluster, namespace)["Healthy"] == MODELS,
            timeout=900,
            interval=5,
            what=f"{MODELS} models Healthy",
        )
        healthy_s = time.monotonic() - began
        holder = leader(cluster)
        rss = {
            p["metadata"]["name"]: real_node.container_rss(
                p["status"]["containerStatuses"][0]["containerID"]
            )
            for p in operator_pods(cluster)
        }
        standby = min(v for k, v in rss.items() if k != holder)
        limit_mi = (standby + rss[holder]) // 2 // 2**20
        assert rss[holder] - standby > 16 * 2**20, rss  # room for a limit between them

        set_memory(cluster, f"{limit_mi}Mi", f"{limit_mi}Mi")
        killed = wait_for(
            lambda: next(filter(None, map(oom_killed, operator_pods(cluster))), None),
            timeout=600,
            interval=2,
            what=f"an operator pod killed for memory under {limit_mi}Mi",
        )
        assert killed["exitCode"] == 137, killed
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input_text=yaml.safe_dump(mlmodel(CHANGED, namespace, serving={"replicas": 2})),
        )

        set_memory(cluster, MANIFEST_MEMORY["requests"], MANIFEST_MEMORY["limits"])
        recovered = time.monotonic()
        cluster.kubectl(
            "rollout",
            "status",
            "deployment/mlmodel-operator",
            "-n",
            OPERATOR_NAMESPACE,
            "--timeout=300s",
        )
        wait_for(
            lambda: (
                phases(cluster, namespace)["Healthy"] == MODELS
                and get_json(cluster, "mlmodel", CHANGED, "-n", namespace)["status"].get("ready")
                == "2/2"
            ),
            timeout=600,
            interval=5,
            what="every model Healthy again and the scaled one at 2/2",
        )
        recovered_s = time.monotonic() - recovered
        deployments = get_json(cluster, "deployments", "-n", namespace)["items"]
        owners = Counter(d["metadata"]["labels"]["mlops.dev/model"] for d in deployments)
        assert owners == Counter({m["metadata"]["name"]: 1 for m in manifests}), [
            k for k, v in owners.items() if v != 1
        ]
        services = get_json(cluster, "services", "-n", namespace)["items"]
        assert len(services) == 3 * MODELS, len(services)
        assert leader(cluster)
    finally:
        set_memory(cluster, MANIFEST_MEMORY["requests"], MANIFEST_MEMORY["limits"])
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    print(
        f"\n[operator OOM] {MODELS} models Healthy in {healthy_s:.0f} s; leader "
        f"{rss[holder] / 2**20:.0f} MiB, standby {standby / 2**20:.0f} MiB; under "
        f"{limit_mi}Mi killed (exit {killed['exitCode']}, OOMKilled); all Healthy and the "
        f"change carried out {recovered_s:.0f} s after the limit was raised; lease {LEASE}"
    )
