"""Fixtures of the control-plane tests beyond the shared ones (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localenv.controlplane.cluster import ControlPlane


@pytest.fixture
def gateway_api(cluster: ControlPlane) -> Iterator[None]:
    """The Gateway API CRDs, for the gatewayAPI router (no gateway serves them here)."""
    cluster.kubectl("apply", "--server-side", "-f", str(cluster.binaries.gateway_api_crds))
    cluster.wait_condition("crd/httproutes.gateway.networking.k8s.io", "Established")
    yield
    # Not waiting: a CRD with instances can take minutes to go on a busy machine.
    cluster.kubectl("delete", "-f", str(cluster.binaries.gateway_api_crds), "--wait=false")
