"""Fixtures of the real-pod layer: node `real-0`, a kubelet over containerd and runc; the
project's images built from its Dockerfiles (`make images`); the operator installed as
users install it, `kubectl apply -k manifests/`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.imagebuild import REPO, archive_for, project_images
from localenv.realnode import RealNode, pin_namespace
from localenv.scenario import get_json, wait_for

OPERATOR_NAMESPACE = "mlmodel-system"
LEASE = "mlmodel-operator-leader"
KIND = REPO / "examples" / "kind"
DEMO_NAMESPACE = "mlmodel-demo"  # examples/kind/ puts everything there


@pytest.fixture(scope="session")
def real_node(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    node = RealNode(tmp_path_factory.mktemp("realnode"))
    try:
        yield node.start(control_plane)
    finally:
        node.stop()


@pytest.fixture(scope="session")
def project_images_imported(real_node: RealNode) -> dict[str, float]:
    """The operator and runtime images, as `make images` built them from the Dockerfiles,
    in containerd's `k8s.io` namespace; the seconds each import took, by name."""
    took: dict[str, float] = {}
    for name in sorted(project_images()):
        began = time.monotonic()
        real_node.import_image(archive_for(name))
        took[name] = time.monotonic() - began
    return took


@dataclass(frozen=True)
class InstalledOperator:
    pods: list[dict[str, Any]]
    leader: str
    applied_at: float  # time.monotonic() of `kubectl apply -k`
    leader_after_s: float  # from the apply to a pod holding the Lease


def _leader(cluster: ControlPlane) -> str:
    found = cluster.kubectl(
        "get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False
    )
    if found.returncode != 0:
        return ""
    return str((json.loads(found.stdout).get("spec") or {}).get("holderIdentity") or "")


@pytest.fixture(scope="session")
def installed_operator(
    control_plane: ControlPlane, real_node: RealNode, project_images_imported: dict[str, float]
) -> Iterator[InstalledOperator]:
    """`kubectl apply -k manifests/`, unchanged: two operator pods on the real node, one
    of them the leader. Afterwards only the Deployment goes (the CRD stays for the rest
    of the session)."""
    cluster = control_plane
    pin_namespace(cluster, OPERATOR_NAMESPACE)
    # A Lease left by an earlier test's operator process would hold the pods back.
    cluster.kubectl("delete", "lease", LEASE, "-n", OPERATOR_NAMESPACE, check=False)
    applied_at = time.monotonic()
    cluster.kubectl("apply", "-k", str(REPO / "manifests"))
    try:
        leader = wait_for(
            lambda: _leader(cluster),
            timeout=180,
            what="an operator pod to take the Lease",
            interval=0.2,
        )
        leader_after = time.monotonic() - applied_at
        cluster.kubectl(
            "rollout",
            "status",
            "deployment/mlmodel-operator",
            "-n",
            OPERATOR_NAMESPACE,
            "--timeout=110s",
        )
    except Exception as failed:
        pods = cluster.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide", check=False)
        raise AssertionError(
            f"the operator did not come up: {failed}\n{pods.stdout}"
            + real_node.container_log_tails(OPERATOR_NAMESPACE)
        ) from failed
    pods = get_json(
        cluster, "pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=mlmodel-operator"
    )["items"]
    try:
        yield InstalledOperator(pods, leader, applied_at, leader_after)
    finally:
        cluster.kubectl(
            "delete",
            "deployment",
            "mlmodel-operator",
            "-n",
            OPERATOR_NAMESPACE,
            "--wait=true",
            check=False,
        )


@pytest.fixture(scope="session")
def model_store(control_plane: ControlPlane, real_node: RealNode) -> Iterator[str]:
    """The kind quickstart's first step: examples/kind/model-store.yaml, unchanged, whose
    init container trains the example models (examples/train.py) in the runtime image
    and whose http.server serves them; its namespace enforces the `restricted` Pod
    Security level. The namespace, for the tests' MLModels to use."""
    cluster = control_plane
    pin_namespace(cluster, DEMO_NAMESPACE)
    try:
        cluster.kubectl("apply", "-f", str(KIND / "model-store.yaml"))
        script = cluster.kubectl(
            "create",
            "configmap",
            "train-script",
            "-n",
            DEMO_NAMESPACE,
            f"--from-file=train.py={REPO / 'examples' / 'train.py'}",
            "--dry-run=client",
            "-o",
            "yaml",
        ).stdout
        cluster.kubectl("apply", "-f", "-", input_text=script)
        try:
            cluster.kubectl(
                "rollout",
                "status",
                "deployment/model-store",
                "-n",
                DEMO_NAMESPACE,
                "--timeout=110s",
            )
        except Exception as failed:
            raise AssertionError(
                f"the model store did not start: {failed}\n"
                + real_node.container_log_tails(DEMO_NAMESPACE)
            ) from failed
        yield DEMO_NAMESPACE
    finally:
        # MLModels first, while the operator runs; then the rest. Pods take their grace
        # period (the runtime drains), so wait by polling rather than in one kubectl.
        cluster.kubectl(
            "delete", "mlmodels", "--all", "-n", DEMO_NAMESPACE, "--wait=false", check=False
        )
        cluster.kubectl("delete", "namespace", DEMO_NAMESPACE, "--wait=false", check=False)
        wait_for(
            lambda: cluster.kubectl("get", "namespace", DEMO_NAMESPACE, check=False).returncode,
            timeout=300,
            what=f"namespace {DEMO_NAMESPACE} to be deleted",
            interval=1.0,
        )
