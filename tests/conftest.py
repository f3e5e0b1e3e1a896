"""Fixtures shared by every test layer: the local control plane and per-test namespaces."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from localenv.controlplane.cluster import ControlPlane, start_control_plane


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach the tail of every component's log to a failing test that used the cluster."""
    outcome = yield
    report = outcome.get_result()
    plane = getattr(item, "funcargs", {}).get("control_plane")
    if report.failed and isinstance(plane, ControlPlane):
        report.sections.append(("control plane logs", plane.log_tails()))
    operators = getattr(item, "funcargs", {}).get("operators")
    if report.failed and operators is not None:
        report.sections.append(("operator logs", operators.logs()))
    del call


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
