"""The project on the real node as users install it: the images `make images` built from
the Dockerfiles, imported into containerd; `kubectl apply -k manifests/` unchanged; and
the kind quickstart's model store (examples/kind/model-store.yaml), whose init container
trains the example models in the runtime image.

Shared by the real-pod tests (tests/realpods/conftest.py) and `make demo
DEMO_ARGS=--pods=real` (localenv/environment.py), so both install the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from localenv.controlplane.cluster import ControlPlane
from localenv.imagebuild import REPO, archive_for, project_images
from localenv.realnode import RealNode, pin_namespace
from localenv.scenario import get_json, wait_for

OPERATOR_NAMESPACE = "mlmodel-system"
LEASE = "mlmodel-operator-leader"
KIND = REPO / "examples" / "kind"
DEMO_NAMESPACE = "mlmodel-demo"  # examples/kind/ puts everything there
STORE_URL = f"http://model-store.{DEMO_NAMESPACE}.svc.cluster.local:8000"


def import_project_images(node: RealNode) -> dict[str, float]:
    """The operator and runtime images, as `make images` built them, into containerd's
    `k8s.io` namespace; the seconds each import took, by name."""
    took: dict[str, float] = {}
    for name in sorted(project_images()):
        began = time.monotonic()
        node.import_image(archive_for(name))
        took[name] = time.monotonic() - began
    return took


@dataclass(frozen=True)
class InstalledOperator:
    pods: list[dict[str, Any]]
    leader: str
    applied_at: float  # time.monotonic() of `kubectl apply -k`
    leader_after_s: float  # from the apply to a pod holding the Lease


def leader(plane: ControlPlane, namespace: str = OPERATOR_NAMESPACE) -> str:
    """The identity holding the operator's Lease in `namespace`, or ''."""
    found = plane.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return ""
    return str((json.loads(found.stdout).get("spec") or {}).get("holderIdentity") or "")


def install_operator(plane: ControlPlane, node: RealNode) -> InstalledOperator:
    """`kubectl apply -k manifests/`: two operator pods on the real node, one of them the
    leader, both ready. Raises with the pods and their containers' logs if not."""
    pin_namespace(plane, OPERATOR_NAMESPACE)
    # A Lease left by an earlier operator (a process, in tests) would hold the pods back.
    plane.kubectl("delete", "lease", LEASE, "-n", OPERATOR_NAMESPACE, check=False)
    applied_at = time.monotonic()
    plane.kubectl("apply", "-k", str(REPO / "manifests"))
    try:
        holder = wait_for(
            lambda: leader(plane),
            timeout=180,
            what="an operator pod to take the Lease",
            interval=0.2,
        )
        leader_after = time.monotonic() - applied_at
        plane.kubectl(
            "rollout",
            "status",
            "deployment/mlmodel-operator",
            "-n",
            OPERATOR_NAMESPACE,
            "--timeout=110s",
        )
    except Exception as failed:
        pods = plane.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide", check=False)
        raise AssertionError(
            f"the operator did not come up: {failed}\n{pods.stdout}"
            + node.container_log_tails(OPERATOR_NAMESPACE)
        ) from failed
    pods = get_json(
        plane, "pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=mlmodel-operator"
    )["items"]
    return InstalledOperator(pods, holder, applied_at, leader_after)


def remove_operator(plane: ControlPlane) -> None:
    """The operator's Deployment only: the CRD (and every MLModel) stays."""
    plane.kubectl(
        "delete",
        "deployment",
        "mlmodel-operator",
        "-n",
        OPERATOR_NAMESPACE,
        "--wait=true",
        check=False,
    )


def start_model_store(plane: ControlPlane, node: RealNode) -> str:
    """examples/kind/model-store.yaml, unchanged, with its `train-script` ConfigMap made
    from examples/train.py as examples/kind/demo.sh makes it; returns when it serves.
    Its namespace enforces the `restricted` Pod Security level. The namespace."""
    pin_namespace(plane, DEMO_NAMESPACE)
    plane.kubectl("apply", "-f", str(KIND / "model-store.yaml"))
    script = plane.kubectl(
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
    plane.kubectl("apply", "-f", "-", input_text=script)
    try:
        plane.kubectl(
            "rollout", "status", "deployment/model-store", "-n", DEMO_NAMESPACE, "--timeout=170s"
        )
    except Exception as failed:
        raise AssertionError(
            f"the model store did not start: {failed}\n" + node.container_log_tails(DEMO_NAMESPACE)
        ) from failed
    return DEMO_NAMESPACE


def remove_model_store(plane: ControlPlane) -> None:
    """The quickstart's namespace with everything in it: MLModels first, while the
    operator runs. Pods take their grace period (the runtime drains), so this polls
    rather than wait in one kubectl."""
    plane.kubectl("delete", "mlmodels", "--all", "-n", DEMO_NAMESPACE, "--wait=false", check=False)
    plane.kubectl("delete", "namespace", DEMO_NAMESPACE, "--wait=false", check=False)
    wait_for(
        lambda: plane.kubectl("get", "namespace", DEMO_NAMESPACE, check=False).returncode,
        timeout=300,
        what=f"namespace {DEMO_NAMESPACE} to be deleted",
        interval=1.0,
    )
