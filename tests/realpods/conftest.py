"""Fixtures of the real-pod layer: node `real-0`, a kubelet over containerd and runc; the
project's images built from its Dockerfiles (`make images`); the operator installed as
users install it, `kubectl apply -k manifests/`; the kind quickstart's model store
(localenv/install.py does each, as `make demo DEMO_ARGS=--pods=real` does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localenv import install
from localenv.controlplane.cluster import ControlPlane
from localenv.install import InstalledOperator
from localenv.metricsserver import MetricsServer
from localenv.realnode import RealNode
from tests.helpers.realpods import Models


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
    """The operator and runtime images in containerd's `k8s.io` namespace; the seconds
    each import took, by name."""
    return install.import_project_images(real_node)


@pytest.fixture(scope="session")
def installed_operator(
    control_plane: ControlPlane, real_node: RealNode, project_images_imported: dict[str, float]
) -> Iterator[InstalledOperator]:
    """`kubectl apply -k manifests/`, unchanged: two operator pods on the real node, one
    of them the leader. Afterwards only the Deployment goes (the CRD stays for the rest
    of the session)."""
    installed = install.install_operator(control_plane, real_node)
    try:
        yield installed
    finally:
        install.remove_operator(control_plane)


@pytest.fixture(scope="session")
def model_store(control_plane: ControlPlane, real_node: RealNode) -> Iterator[str]:
    """The kind quickstart's model store, serving iris-v1/v2/v3.skops in the `restricted`
    namespace; the namespace, for the tests' MLModels to use."""
    try:
        yield install.start_model_store(control_plane, real_node)
    finally:
        install.remove_model_store(control_plane)


@pytest.fixture
def models(
    cluster: ControlPlane,
    real_node: RealNode,
    installed_operator: InstalledOperator,
    model_store: str,
) -> Iterator[Models]:
    """The operator installed from manifests/ and the quickstart's model store running."""
    made = Models(cluster, model_store)
    yield made
    for name in made.applied:
        cluster.kubectl("delete", "mlmodel", name, "-n", model_store, "--wait=false", check=False)


@pytest.fixture(scope="session")
def metrics_server(
    control_plane: ControlPlane, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetricsServer]:
    """metrics-server reading the real node's kubelet, behind the API server's
    aggregation layer (metrics.k8s.io), as HPAs with a CPU target need."""
    server = MetricsServer(control_plane, tmp_path_factory.mktemp("metrics-server")).start()
    try:
        yield server
    finally:
        server.stop()
