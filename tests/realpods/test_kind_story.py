"""The kind quickstart (examples/kind/, what `make kind-demo` applies) on real containers:
the model store trains the example models in the runtime image, iris v1 serves, the
load Deployment sends traffic through the Service, iris v2 is promoted by the default
scrape analysis and the bad iris v3 is rolled back, all in a namespace whose Pod
Security level is `restricted`, so admission proves every pod (the operator's too) is.

The files are applied unchanged; the only addition is the namespace annotation that
sends its pods to the real node (`pin_namespace`), which kind does not need."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.install import DEMO_NAMESPACE, KIND, InstalledOperator
from localenv.realnode import NODE_NAME, RealNode
from localenv.scenario import get_json, wait_for

pytestmark = pytest.mark.realpods

NS = DEMO_NAMESPACE


def _status(cluster: ControlPlane, name: str = "iris") -> dict[str, Any]:
    status: dict[str, Any] = get_json(cluster, "mlmodel", name, "-n", NS).get("status") or {}
    return status


def _settled(
    cluster: ControlPlane, phase: str, version: str, *, name: str = "iris"
) -> dict[str, Any] | None:
    status = _status(cluster, name)
    stable = status.get("stable") or {}
    if status.get("phase") == phase and stable.get("version") == version:
        return status
    return None


def _diagnosis(cluster: ControlPlane, real_node: RealNode) -> str:
    pods = cluster.kubectl("get", "pods", "-n", NS, "-o", "wide", check=False).stdout
    events = cluster.kubectl(
        "get", "events", "-n", NS, "--sort-by=.lastTimestamp", check=False
    ).stdout
    return (
        f"\n{pods}\n{events[-4000:]}\nstatus: {_status(cluster)}\n"
        + real_node.container_log_tails(NS, lines=10)
    )


def _grpc_labels(cluster: ControlPlane, name: str) -> list[int]:
    """Labels of three iris rows (one per class), asked over gRPC through the Service."""
    import numpy as np
    import tritonclient.grpc as triton

    ip = get_json(cluster, "service", name, "-n", NS)["spec"]["clusterIP"]
    client = triton.InferenceServerClient(
        f"{ip}:9000", channel_args=[("grpc.enable_http_proxy", 0)]
    )
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]], np.float32)
    metadata = client.get_model_metadata(name)
    [spec] = metadata.inputs
    tensor = triton.InferInput(spec.name, list(rows.shape), spec.datatype)
    tensor.set_data_from_numpy(rows.astype(np.float64 if spec.datatype == "FP64" else np.float32))
    label = next(o.name for o in metadata.outputs if o.datatype == "INT64")
    result = client.infer(name, [tensor], outputs=[triton.InferRequestedOutput(label)])
    labels: list[int] = result.as_numpy(label).reshape(-1).tolist()
    return labels


def _grpc_labels_when_routed(cluster: ControlPlane, name: str) -> list[int] | None:
    """The labels, or None while the Service refuses connections (UNAVAILABLE)."""
    from tritonclient.utils import InferenceServerException

    try:
        return _grpc_labels(cluster, name)
    except InferenceServerException as error:
        if error.status() != "StatusCode.UNAVAILABLE":
            raise
        return None


# Twelve pods start on two cores, each fetching, converting and proving its model.
@pytest.mark.timeout(1800)
def test_the_kind_quickstart_promotes_v2_and_rolls_back_a_bad_v3_under_restricted_pods(
    cluster: ControlPlane,
    real_node: RealNode,
    installed_operator: InstalledOperator,
    model_store: str,
) -> None:
    took: dict[str, float] = {}
    began = time.monotonic()

    def lap(name: str) -> None:
        took[name] = time.monotonic() - began - sum(took.values())

    try:
        # examples/kind/demo.sh, step by step, after the model store (the fixture).
        cluster.kubectl("apply", "-f", str(KIND / "iris-v1.yaml"))
        v1 = wait_for(
            lambda: _settled(cluster, "Healthy", "v1"), timeout=420, what="iris v1 Healthy"
        )
        lap("iris v1 Healthy (4 pods)")
        cluster.kubectl("apply", "-f", str(KIND / "load.yaml"))
        cluster.kubectl("rollout", "status", "deployment/iris-load", "-n", NS, "--timeout=110s")

        cluster.kubectl("apply", "-f", str(KIND / "iris-v2.yaml"))
        v2 = wait_for(
            lambda: _settled(cluster, "Healthy", "v2"), timeout=600, what="iris v2 promoted"
        )
        lap("iris v2 promoted")

        cluster.kubectl("apply", "-f", str(KIND / "iris-v3.yaml"))
        rolled_back = wait_for(
            lambda: _settled(cluster, "RolledBack", "v2"), timeout=300, what="iris v3 rolled back"
        )
        lap("iris v3 rolled back")
        # The conversion report of v1's init container came through the kubelet's real
        # termination-message path, parity proof included.
        assert v1["stable"]["conversion"], v1
        assert v2["stable"]["revision"] != v1["stable"]["revision"]
        # v3 failed on its predictions, not on errors: the message names the gate.
        assert "prediction-divergence" in rolled_back["message"], rolled_back
        assert "error-rate" not in rolled_back["message"], rolled_back
        assert rolled_back["revision"] != v2["stable"]["revision"]

        # The rollback gave the stable back the pod it lent the canary: wait for it to serve.
        wait_for(
            lambda: _status(cluster).get("ready") == "4/4", timeout=180, what="v2 at 4/4 again"
        )
        pods = get_json(cluster, "pods", "-n", NS)["items"]
        runtime_pods = [p for p in pods if p["metadata"]["labels"].get("mlops.dev/model") == "iris"]
        assert len(runtime_pods) >= 4, [p["metadata"]["name"] for p in pods]
        for pod in pods:
            assert pod["spec"]["nodeName"] == NODE_NAME, pod["metadata"]["name"]
        # The serving pods (v2's; v3's may still be going) run containerd's containers.
        stable = v2["stable"]["revision"]
        serving = [
            p for p in runtime_pods if p["metadata"]["labels"].get("mlops.dev/revision") == stable
        ]
        assert len(serving) == 4, [p["metadata"]["name"] for p in runtime_pods]
        for pod in serving:
            for status in pod["status"]["containerStatuses"]:
                assert status["containerID"].startswith("containerd://"), status
        # Pod Security admission enforced `restricted` on all of these.
        labels = get_json(cluster, "namespace", NS)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        # The load pod's requests, through the Service and kube-proxy, all succeeded.
        load_log = real_node.container_log_tails(NS, lines=200)
        assert "request failed" not in load_log, load_log[-3000:]

        # Another family in the shipped image: the model store trained a LightGBM booster
        # (LightGBM loads there: the image has its OpenMP runtime), and the runtime
        # image's init container converts it with its parity proof.
        cluster.kubectl("apply", "-f", str(KIND / "iris-lightgbm.yaml"))
        boosted = wait_for(
            lambda: _settled(cluster, "Healthy", "v1", name="iris-lightgbm"),
            timeout=300,
            what="iris-lightgbm Healthy",
        )
        lap("iris-lightgbm Healthy")
        assert boosted["stable"]["conversion"]["estimator"] == "lightgbm.basic.Booster", boosted
        assert boosted["stable"]["conversion"]["parity"]["passed"] is True, boosted
        # gRPC from the shipped image: Triton's client through the Service's grpc port
        # (kube-proxy to the container's grpcio server), the same labels as REST.
        # The Service's grpc port reaches the pod once kube-proxy has its endpoint (it syncs
        # at most once a second after the API shows the pod Ready): until then a
        # connection is refused, so the first answer is awaited, then must be right.
        labels = wait_for(
            lambda: _grpc_labels_when_routed(cluster, "iris-lightgbm"),
            timeout=60,
            interval=1.0,
            what="a gRPC answer through iris-lightgbm's Service",
        )
        assert labels == [0, 1, 2], labels
    except AssertionError as failed:
        raise AssertionError(f"{failed}{_diagnosis(cluster, real_node)}") from None
    finally:
        # The failure tests share the namespace and its model store, not this load.
        cluster.kubectl("delete", "-f", str(KIND / "load.yaml"), "--wait=false", check=False)
        cluster.kubectl(
            "delete", "mlmodel", "iris", "iris-lightgbm", "-n", NS, "--wait=false", check=False
        )
    print("\n[kind story] " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()))
