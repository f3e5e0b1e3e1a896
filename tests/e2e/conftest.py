"""Fixtures of the e2e layer: the pod runner (the kubelet of node runner-0), a real
Prometheus scraping the pods it runs, iris models trained and saved with skops, the
operator as its ServiceAccount, and MLModels that land on the runner's node."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv import models
from localenv.controlplane.cluster import ControlPlane
from localenv.node import RUNNER_LABEL
from localenv.operator_process import OperatorEnv, install_operator_rbac
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus


@dataclass(frozen=True)
class IrisModels:
    v1: Path  # RandomForestClassifier
    v2: Path  # GradientBoostingClassifier: another good model
    not_a_model: Path
    rows: list[list[float]]
    labels: list[int]

    @staticmethod
    def sha256(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def infer_body(self) -> dict[str, Any]:
        """An Open Inference Protocol v2 request with the sample rows."""
        return models.infer_body(self.rows)


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
def prometheus(runner: PodRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus scraping every serve process the runner runs, every second."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), runner.targets_file).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def operators(cluster: ControlPlane, tmp_path: Path) -> Iterator[OperatorEnv]:
    """The real operator as the ServiceAccount of manifests/; killed after the test."""
    env = OperatorEnv(
        plane=cluster, kubeconfig=install_operator_rbac(cluster, tmp_path), directory=tmp_path
    )
    yield env
    env.stop_all()


def e2e_mlmodel(
    namespace: str,
    *,
    model: Path,
    version: str,
    sha256: str | None = None,
    rollout: dict[str, Any] | None = None,
    replicas: int = 1,
    name: str = "iris",
) -> str:
    """An MLModel whose pods land on runner-0 and read the model from a local file."""
    source: dict[str, Any] = {"uri": f"file://{model.resolve()}", "format": "skops"}
    source["version"] = version
    if sha256:
        source["sha256"] = sha256
    spec: dict[str, Any] = {
        "model": source,
        "conversion": {"parity": {"samples": 32}},
        "serving": {
            "replicas": replicas,
            "batching": {"maxBatchSize": 8, "maxDelayMs": 0},
            "nodeSelector": {RUNNER_LABEL: "true"},
            "tolerations": [{"key": RUNNER_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    if rollout:
        spec["rollout"] = rollout
    body = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return yaml.safe_dump(body)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach the runner's and its pods' logs, and Prometheus's, to a failing e2e test."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    if report.failed:
        pod_runner = funcargs.get("runner")
        if isinstance(pod_runner, PodRunner):
            report.sections.append(("pod runner logs", pod_runner.log_tails()))
        server = funcargs.get("prometheus")
        if isinstance(server, Prometheus):
            report.sections.append(("prometheus log", server.tail()))
    del call
