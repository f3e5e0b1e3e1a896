"""Kubeconfigs that authenticate as a ServiceAccount, so code runs under exactly its RBAC.

Later tests run the operator with the kubeconfig this returns after applying the
RBAC from `manifests/`: a verb missing there fails them, as it would in a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from localenv.controlplane.cluster import ControlPlane, write_kubeconfig


def service_account_kubeconfig(
    plane: ControlPlane,
    *,
    namespace: str,
    name: str,
    rbac: Sequence[Path] = (),
    directory: Path | None = None,
) -> Path:
    """Create namespace and ServiceAccount, apply `rbac` files, return a kubeconfig as it."""
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        },
    ]
    plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(objects))
    for path in rbac:
        plane.kubectl("apply", "-f", str(path))
    token = plane.kubectl(
        "create", "token", name, "--namespace", namespace, "--duration", "24h"
    ).stdout.strip()
    target = (directory or plane.state_dir) / f"sa-{namespace}-{name}.kubeconfig"
    return write_kubeconfig(
        target,
        server=plane.server,
        ca=plane.pki.ca.cert,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=token,
    )
