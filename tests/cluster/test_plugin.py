"""`kubectl mlmodel` logs in as kubectl does: a kubeconfig context picks the cluster and
the namespace, and credentials come from an exec plugin, as on EKS, GKE and AKS. It
needs no more than a person's RBAC on MLModels: get, list, watch and patch.

(The plugin driving real rollouts with the operator is in test_rollout.py; here the
test writes the status itself, standing in for the operator.)"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import CRD
from localenv.scenario import get_json
from tests.helpers.kube import apply
from tests.helpers.plugin import kubectl_mlmodel, plugin_env

pytestmark = pytest.mark.cluster

NOWHERE = "https://127.0.0.1:1"  # nothing listens there
PERSON_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: mlmodel-person}
rules:
- {apiGroups: [mlops.dev], resources: [mlmodels], verbs: [get, list, watch, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: mlmodel-person}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: mlmodel-person}
subjects:
- {kind: ServiceAccount, name: person}
"""


def exec_kubeconfig(cluster: ControlPlane, namespace: str, directory: Path) -> Path:
    """Current context `elsewhere` (a server that is not there); context `here` reaches
    this control plane in `namespace`, as ServiceAccount `person`, whose token an exec
    credential plugin prints (as `aws eks get-token` or `kubelogin` would)."""
    token = cluster.kubectl("create", "token", "person", "-n", namespace).stdout.strip()
    credential = directory / "credential.json"
    credential.write_text(
        json.dumps(
            {
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {"token": token},
            }
        )
    )
    ca = base64.b64encode(cluster.pki.ca.cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "elsewhere", "cluster": {"server": NOWHERE, "certificate-authority-data": ca}},
            {
                "name": "here",
                "cluster": {"server": cluster.server, "certificate-authority-data": ca},
            },
        ],
        "users": [
            {
                "name": "person",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": sys.executable,
                        "args": [
                            "-c",
                            "import sys; print(open(sys.argv[1]).read())",
                            str(credential),
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [
            {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "person"}},
            {
                "name": "here",
                "context": {"cluster": "here", "user": "person", "namespace": namespace},
            },
        ],
        "current-context": "elsewhere",
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def write_status(cluster: ControlPlane, namespace: str, status: dict[str, Any]) -> None:
    """Merge `status` into MLModel iris's, as the operator would (as the admin)."""
    patch = json.dumps({"status": status})
    cluster.kubectl(
        "patch", "mlmodel", "iris", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", patch,
    )  # fmt: skip


def test_the_plugin_logs_in_through_a_context_with_an_exec_credential_plugin(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.wait_condition("crd/mlmodels.mlops.dev", "Established")
    cluster.kubectl("create", "serviceaccount", "person", "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=PERSON_ROLE)
    kubeconfig = exec_kubeconfig(cluster, namespace, tmp_path)
    apply(cluster, mlmodel("iris", namespace, version="v2"))
    canary = {"revision": "c41d2e8", "version": "v2", "attempt": 1, "step": 0, "steps": 2}
    write_status(cluster, namespace, {"phase": "Progressing", "canary": canary})

    # The current context's server is not there; --context picks the one that is, and
    # its namespace (no -n), and the exec plugin's token authenticates.
    refused = kubectl_mlmodel(cluster, "status", "iris", check=False, kubeconfig=kubeconfig)
    assert refused.returncode == 1
    assert f"cannot reach the API server at {NOWHERE}" in refused.stderr
    here = ("--kubeconfig", str(kubeconfig), "--context", "here")
    view = kubectl_mlmodel(cluster, "status", "iris", *here).stdout
    assert "iris  phase: Progressing" in view
    assert "canary   v2 (revision c41d2e8)" in view

    out = kubectl_mlmodel(cluster, "pause", "iris", *here).stdout
    assert out.strip() == "pausing the rollout of revision c41d2e8"
    annotations = get_json(cluster, "mlmodel", "iris", "-n", namespace)["metadata"]["annotations"]
    assert annotations["mlops.dev/pause"] == "c41d2e8/1"

    # A live view needs only list and watch: it redraws when the status changes.
    watcher = subprocess.Popen(
        [str(cluster.kubectl_path), "mlmodel", "status", "-w", "iris", *here],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(cluster),
        # As in a terminal: a run started in the background (nohup, `&`) inherits SIGINT
        # ignored, and then the Ctrl-C below would never stop the view.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Read its output as it comes: a loaded machine may take more than a moment to
    # start it, and the status must change only after its first view is drawn.
    lines: list[str] = []
    assert watcher.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: "phase: Progressing" in "".join(lines),
            timeout=20,
            what="the live view's first drawing",
        )
        write_status(cluster, namespace, {"phase": "Paused"})
        wait_for(lambda: "phase: Paused" in "".join(lines), timeout=20, what="the view to redraw")
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=20)
        reader.join(timeout=5)
    errors = watcher.stderr.read() if watcher.stderr else ""
    output = "".join(lines)
    assert "phase: Progressing" in output, errors
    assert "phase: Paused" in output, errors
    assert kubectl_mlmodel(cluster, "resume", "iris", *here).stdout.strip() == "resumed"
    wait_for(
        lambda: (
            "mlops.dev/pause"
            not in get_json(cluster, "mlmodel", "iris", "-n", namespace)["metadata"]["annotations"]
        ),
        timeout=10,
        what="the pause annotation to be removed",
    )
