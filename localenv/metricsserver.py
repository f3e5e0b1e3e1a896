"""metrics-server, built from its Go module, serving the resource metrics API
(`metrics.k8s.io`) to the local control plane through its aggregation layer.

It is what a HorizontalPodAutoscaler with a CPU target reads: the pods' CPU use, scraped
every 10 s (its shortest resolution) from the kubelets' `/metrics/resource`. Here only
the real node's kubelet (`localenv.realnode`) has one; kwok's nodes and the pod runner
have none, so their pods have no metrics (metrics-server logs the failed scrapes).

It runs as a process inside the network sandbox, listening on the sandbox's gateway
address, with a client certificate for `system:metrics-server` (the API server's RBAC
below; the kubelet trusts the cluster's CA). The API server reaches it as an
APIService backed by a Service without selector whose Endpoints name that address
(`--enable-aggregator-routing`), with the front-proxy client certificate
(`localenv.controlplane.pki`); metrics-server serves with a self-signed certificate,
which the APIService skips verifying, as the upstream manifests do.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from localenv.components.build import ensure as ensure_component
from localenv.controlplane.cluster import ControlPlane, write_kubeconfig
from localenv.controlplane.pki import issue_client
from localenv.processes import stop_group
from localenv.prometheus import port_known_in_advance
from localenv.sandbox import GATEWAY_IP, require_inside

USER = "system:metrics-server"
APISERVICE = "v1beta1.metrics.k8s.io"
START_TIMEOUT_S = 90.0
RESOLUTION = "10s"  # metrics-server refuses less


class MetricsServerError(RuntimeError):
    pass


def objects(port: int) -> list[dict[str, Any]]:
    """Its RBAC (as upstream's manifests grant it), and the APIService with the Service and
    Endpoints that lead the API server to `GATEWAY_IP:port`."""
    user = {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole"}
    namespace = "kube-system"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": USER},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": USER},
            "roleRef": {**role_ref, "name": USER},
            "subjects": [user],
        },
        {
            # Delegated authentication and authorization of the requests it is proxied.
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-server:system:auth-delegator"},
            "roleRef": {**role_ref, "name": "system:auth-delegator"},
            "subjects": [user],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": [user],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": namespace},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "metrics-server", "namespace": namespace},
            "subsets": [
                {
                    "addresses": [{"ip": GATEWAY_IP}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }
            ],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": "metrics-server", "namespace": namespace, "port": 443},
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


class MetricsServer:
    """`MetricsServer(plane, directory).start()` ... `.stop()`."""

    def __init__(self, plane: ControlPlane, directory: Path) -> None:
        self.plane = plane
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "metrics-server.log"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def head(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[:lines])
        except FileNotFoundError:
            return ""

    def start(self) -> MetricsServer:
        require_inside("metrics-server")
        binary = ensure_component("metrics-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        client = issue_client(self.plane.pki.ca, self.directory / "pki", "metrics-server", USER)
        kubeconfig = self.directory / "kubeconfig"
        write_kubeconfig(
            kubeconfig,
            server=self.plane.server,
            ca=self.plane.pki.ca.cert,
            user="metrics-server",
            client=client,
        )
        port = port_known_in_advance(GATEWAY_IP)
        manifest = yaml.safe_dump_all(objects(port))
        self.plane.kubectl("apply", "-f", "-", input_text=manifest)
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--bind-address={GATEWAY_IP}",
                    f"--secure-port={port}",
                    f"--cert-dir={self.directory / 'certs'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    # The kubelet's serving certificate is its own self-signed one.
                    "--kubelet-insecure-tls",
                    "--kubelet-preferred-address-types=InternalIP",
                    f"--metric-resolution={RESOLUTION}",
                    "--kubelet-request-timeout=5s",  # under 9/10 of the resolution
                    "--v=1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_available()
        except MetricsServerError:
            self.stop()
            raise
        return self

    def _wait_available(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                # Its flag errors come first, followed by its whole usage text.
                raise MetricsServerError(f"metrics-server exited; log:\n{self.head()}")
            result = self.plane.kubectl(
                "get",
                "apiservice",
                APISERVICE,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Available')].status}",
                check=False,
            )
            if result.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise MetricsServerError(
            f"APIService {APISERVICE} not Available within {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
        )

    def stop(self) -> None:
        """Stop the process and remove the APIService (an unavailable aggregated API makes
        discovery of every client report an error)."""
        self.plane.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        if self.process is not None:
            stop_group(self.process)
