"""The kubectl plugin as people run it: `kubectl mlmodel ...`, found by the real
kubectl on PATH next to the venv's `kubectl-mlmodel`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localenv.controlplane.cluster import ControlPlane

VENV_BIN = Path(sys.executable).parent


def plugin_env(cluster: ControlPlane, kubeconfig: Path | None = None) -> dict[str, str]:
    """PATH with the control plane's kubectl and the plugin; KUBECONFIG the admin's (or
    `kubeconfig`)."""
    path = f"{cluster.kubectl_path.parent}:{VENV_BIN}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "KUBECONFIG": str(kubeconfig or cluster.kubeconfig)}


def kubectl_mlmodel(
    cluster: ControlPlane, *args: str, check: bool = True, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `kubectl mlmodel <args>`; with `check`, it must succeed."""
    result = subprocess.run(
        [str(cluster.kubectl_path), "mlmodel", *args],
        capture_output=True,
        text=True,
        env=plugin_env(cluster, kubeconfig),
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result
