"""The network sandbox the tests run in: no way out, and its own cluster network inside.

Everything that uses pod or Service addresses runs in a network namespace with no
interface to the outside and no default route (localenv/sandbox.py); these tests show
that a packet to any address outside fails at once, that cluster DNS answers for
Services, that a Service's ClusterIP reaches a process in a pod's own namespace, and
that each local environment gets a sandbox of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localenv import podnet, sandbox
from localenv.controlplane.cluster import ControlPlane, ControlPlaneError, start_control_plane

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("address", ["93.184.216.34", "10.0.0.1", "172.16.0.1", "192.168.1.1"])
def test_a_connection_to_an_address_outside_the_sandbox_fails_at_once(address: str) -> None:
    assert sandbox.inside()
    started = time.monotonic()
    with socket.socket() as sock, pytest.raises(OSError, match="Network is unreachable"):
        sock.connect((address, 80))
    assert time.monotonic() - started < 0.1  # refused before anything is sent


def test_the_sandbox_has_no_route_out_and_no_interface_but_its_own() -> None:
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "default" not in routes
    links = subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    names = {line.split(":")[1].strip().split("@")[0] for line in links}
    assert {"lo", sandbox.BRIDGE} <= names
    assert not {n for n in names if n not in ("lo", sandbox.BRIDGE) and not n.startswith("mlv")}


def test_a_service_name_resolves_and_its_cluster_ip_reaches_a_pod(
    cluster: ControlPlane, namespace: str
) -> None:
    """kube-proxy and CoreDNS: `<service>.<namespace>` resolves to the ClusterIP, and a
    connection to it lands on the endpoint, a process in a pod network namespace."""
    netns = podnet.create(f"sandbox-test-{namespace}", "10.244.200.7")
    server = subprocess.Popen(
        ["python3", "-m", "http.server", "9000", "--bind", "10.244.200.7"],
        preexec_fn=netns.enter,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        manifest = f"""
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {namespace}}}
spec:
  ports: [{{port: 80, targetPort: 9000, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
endpoints: [{{addresses: [10.244.200.7], conditions: {{ready: true}}}}]
ports: [{{port: 9000, protocol: TCP}}]
"""
        cluster.kubectl("apply", "-f", "-", input_text=manifest)
        cluster_ip = cluster.kubectl(
            "get", "service", "echo", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
        ).stdout
        deadline = time.monotonic() + 30
        resolved, answered = "", ""
        while time.monotonic() < deadline and not answered:
            try:
                resolved = socket.gethostbyname(f"echo.{namespace}")
                with socket.create_connection((resolved, 80), timeout=2) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    answered = conn.recv(64).decode(errors="replace")
            except OSError:
                time.sleep(0.5)
        assert resolved == cluster_ip
        assert answered.startswith("HTTP/1.0 200")
    finally:
        server.kill()
        server.wait()
        podnet.delete(netns)


def test_a_sandbox_started_from_inside_one_is_a_new_one(tmp_path: Path) -> None:
    """`make demo` run by a test gets a network of its own, as from a shell on the host."""
    inner = subprocess.run(
        [sys.executable, "-m", "localenv.sandbox", "--", "readlink", "/proc/self/ns/net"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert inner.startswith("net:[")
    assert inner != os.readlink("/proc/self/ns/net")


def test_a_second_control_plane_in_one_sandbox_is_refused(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    """It would take over the first one's Service rules (localenv/sandbox.py)."""
    with pytest.raises(ControlPlaneError, match="another control plane runs in this network"):
        start_control_plane(tmp_path / "second")
    assert not (tmp_path / "second").exists()  # refused before anything was made
