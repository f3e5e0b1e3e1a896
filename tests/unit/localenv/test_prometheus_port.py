"""Prometheus's URL is known from construction on, and stays true until it starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from localenv import LocalEnvironment
from localenv.prometheus import Prometheus

pytestmark = pytest.mark.unit


def ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_the_url_is_known_before_start_on_a_port_no_outgoing_connection_takes(
    tmp_path: Path,
) -> None:
    server = Prometheus(tmp_path / "prometheus", tmp_path / "kubeconfig")
    assert server.url == f"http://127.0.0.1:{server.port}"
    # Below the ephemeral range: only a server asking for this very port could take it.
    assert server.port < ephemeral_low()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", server.port))  # free, for Prometheus to bind later
    assert server.process is None


def test_an_environment_knows_its_prometheus_url_before_it_starts(tmp_path: Path) -> None:
    env = LocalEnvironment(tmp_path / "env")
    assert env.prometheus_url == env.prometheus.url
    assert env.prometheus_url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not started"):
        _ = env.plane
