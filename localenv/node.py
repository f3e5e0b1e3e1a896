"""The extra Node `runner-0` whose kubelet is the pod runner, and its heartbeat.

kwok manages only nodes annotated `kwok.x-k8s.io/node`; this one has no such
annotation, so its pods are left to `localenv.podrunner`. It is labelled and
tainted so that only MLModels that ask for it (nodeSelector + toleration) land on
it. The runner keeps it Ready as a kubelet does: a Ready condition in the node
status and a Lease in `kube-node-lease`, both renewed every HEARTBEAT_S (the node
lifecycle controller taints a node whose heartbeat stops and evicts its pods).
"""

from __future__ import annotations

import time
from typing import Any

from localenv.kubeapi import ApiError, KubeApi
from localenv.sandbox import GATEWAY_IP

NODE_NAME = "runner-0"
RUNNER_LABEL = "mlops.dev/runner"
POD_CIDR = "10.244.1.0/24"  # inside the sandbox's pod network (localenv.sandbox)
HOST_IP = GATEWAY_IP  # the node's address: the sandbox's side of the pods' bridge
HEARTBEAT_S = 10.0
LEASE_SECONDS = 40
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_PATH = f"/api/v1/nodes/{NODE_NAME}"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

RUNNER_TAINT = {"key": RUNNER_LABEL, "value": "true", "effect": "NoSchedule"}


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def micro_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def node_manifest(pod_cidr: str = POD_CIDR) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                RUNNER_LABEL: "true",
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "podrunner",
            },
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "taints": [RUNNER_TAINT]},
    }


def node_status(*, now: float, since: float) -> dict[str, Any]:
    """The status a kubelet reports: Ready, no pressure, generous capacity.

    Capacity is nominal (the scheduler needs some); the processes share the machine."""
    resources = {"cpu": "16", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": rfc3339(now),
            "lastTransitionTime": rfc3339(since),
        }

    return {
        "conditions": [
            condition("Ready", "True", "KubeletReady", "the pod runner is posting ready status"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": HOST_IP},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": "podrunner",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "podrunner://local-processes",
            "kernelVersion": "",
            "osImage": "local processes",
            "bootID": "",
            "machineID": "",
            "systemUUID": "",
        },
    }


def lease(*, now: float, node_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": NODE_NAME,
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": NODE_NAME,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_time(now),
        },
    }


async def ensure_node(api: KubeApi, pod_cidr: str = POD_CIDR) -> dict[str, Any]:
    """Create `runner-0` if absent; make an existing one carry our label and taint."""
    await api.create("/api/v1/nodes", node_manifest(pod_cidr))
    node: dict[str, Any] = await api.get(NODE_PATH)
    if KWOK_NODE_ANNOTATION in (node["metadata"].get("annotations") or {}):
        raise RuntimeError(f"node {NODE_NAME} is managed by kwok; the pod runner cannot own it")
    if node["spec"].get("podCIDR") != pod_cidr:
        raise RuntimeError(f"node {NODE_NAME} has podCIDR {node['spec'].get('podCIDR')}")
    taints = node["spec"].get("taints") or []
    if not any(t.get("key") == RUNNER_LABEL for t in taints):
        await api.merge_patch(NODE_PATH, {"spec": {"taints": [*taints, RUNNER_TAINT]}})
    await api.merge_patch(NODE_PATH, {"metadata": {"labels": {RUNNER_LABEL: "true"}}})
    return node


async def heartbeat(api: KubeApi, *, node_uid: str, since: float) -> None:
    """Post Ready status and renew the Lease (created when missing)."""
    now = time.time()
    await api.merge_patch(f"{NODE_PATH}/status", {"status": node_status(now=now, since=since)})
    body = lease(now=now, node_uid=node_uid)
    try:
        renewed = await api.merge_patch(f"{LEASES}/{NODE_NAME}", {"spec": body["spec"]})
    except ApiError:
        renewed = None
    if renewed is None:
        await api.create(LEASES, body)
