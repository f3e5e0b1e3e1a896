"""Fixtures of the real-pod layer: node `real-0`, a kubelet over containerd and runc."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.realnode import RealNode


@pytest.fixture(scope="session")
def real_node(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    node = RealNode(tmp_path_factory.mktemp("realnode"))
    try:
        yield node.start(control_plane)
    finally:
        node.stop()
