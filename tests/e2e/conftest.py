"""Fixtures of the e2e layer: the pod runner (the kubelet of node runner-0), a real
Prometheus discovering and scraping its pods, and iris models trained and saved with
skops. The operator and the gateway (Traefik) come from tests/conftest.py, builders and
waits from tests/helpers/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localenv import models
from localenv.controlplane.cluster import ControlPlane
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus
from tests.helpers.serving import IrisModels


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModels:
    """Two small, good iris classifiers saved with skops, and a file that is not a model."""
    directory = tmp_path_factory.mktemp("models")
    good = models.train_good(directory)
    rows, labels = models.sample_rows()
    junk = directory / "not-a-model.skops"
    junk.write_text("this is not a model\n" * 10)
    return IrisModels(v1=good["v1"], v2=good["v2"], not_a_model=junk, rows=rows, labels=labels)


@pytest.fixture(scope="session")
def runner(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    """The kubelet of node runner-0: pods bound to it run as local processes."""
    pod_runner = PodRunner(control_plane, tmp_path_factory.mktemp("podrunner")).start()
    try:
        yield pod_runner
    finally:
        pod_runner.stop()


@pytest.fixture(scope="session")
def prometheus(
    control_plane: ControlPlane, runner: PodRunner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A real Prometheus discovering the runner's pods through the API, every second."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), control_plane.kubeconfig).start()
    try:
        yield server
    finally:
        server.close()
