"""Fixtures shared by every test layer: the local control plane, per-test namespaces and
operators, the gateway (Traefik, the front door of the e2e and real-pod layers), and the
logs a failing test gets in its report."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from localenv.controlplane.cluster import ControlPlane, start_control_plane
from localenv.gateway import Gateway
from localenv.operator_process import OperatorEnv, install_operator_rbac
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus
from localenv.realnode import RealNode


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, controller manager, scheduler and kwok, for the whole session.

    Builds the binaries on first use (minutes, cached afterwards); never skips.
    """
    plane = start_control_plane(tmp_path_factory.mktemp("control-plane"))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The control plane, checked alive before and after the test (fails with the log)."""
    control_plane.check()
    yield control_plane
    control_plane.check()


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operators(cluster: ControlPlane, tmp_path: Path) -> Iterator[OperatorEnv]:
    """Starts real operator processes as the ServiceAccount of manifests/; kills them
    after the test."""
    env = OperatorEnv(
        plane=cluster, kubeconfig=install_operator_rbac(cluster, tmp_path), directory=tmp_path
    )
    yield env
    env.stop_all()


@pytest.fixture(scope="session")
def gateway(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Traefik serving Gateway `gateways/web`: MLModels with the gatewayAPI router attach."""
    server = Gateway(tmp_path_factory.mktemp("gateway")).start(control_plane)
    try:
        yield server
    finally:
        server.close()


# What a failing test gets in its report, for each fixture it used: section title, the
# fixture's type, and how to read its log tails.
LOG_SECTIONS: dict[str, tuple[str, type[Any], Callable[[Any], str]]] = {
    "control_plane": ("control plane logs", ControlPlane, ControlPlane.log_tails),
    "operators": ("operator logs", OperatorEnv, OperatorEnv.logs),
    "runner": ("pod runner logs", PodRunner, PodRunner.log_tails),
    "prometheus": ("prometheus log", Prometheus, Prometheus.tail),
    "gateway": ("gateway logs", Gateway, Gateway.log_tails),
    "real_node": ("real node logs", RealNode, RealNode.log_tails),
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failing test gets the log tails of what it used: every control-plane component,
    its operators, the pod runner with its pods, Prometheus, the gateway."""
    outcome = yield
    report = outcome.get_result()
    del call
    if not report.failed:
        return
    used = getattr(item, "funcargs", {})
    for fixture, (title, kind, tails) in LOG_SECTIONS.items():
        if isinstance(used.get(fixture), kind):
            report.sections.append((title, tails(used[fixture])))


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MLMODEL_OPERATOR_* or POD_NAME from the shell that runs the tests: what a test
    sets is all the operator's settings see."""
    for name in list(os.environ):
        if name.startswith("MLMODEL_OPERATOR_") or name == "POD_NAME":
            monkeypatch.delenv(name)
    return monkeypatch
