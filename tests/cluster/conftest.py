"""Fixtures for tests that run the operator against the local control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv, install_operator_rbac


@pytest.fixture
def operators(cluster: ControlPlane, tmp_path: Path) -> Iterator[OperatorEnv]:
    """Starts operator processes as the ServiceAccount of manifests/; kills them after."""
    env = OperatorEnv(
        plane=cluster, kubeconfig=install_operator_rbac(cluster, tmp_path), directory=tmp_path
    )
    yield env
    env.stop_all()
