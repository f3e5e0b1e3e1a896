"""Run the real operator as a process, authenticated as its ServiceAccount from manifests/.

Used by the local environment and by the tests' `operators` fixture. Each test runs
its own operator scoped to its own namespace and Lease, so tests never see each
other's operator; RBAC is exactly `manifests/rbac.yaml`. Every Prometheus here listens
on loopback, so the operator's allow-list of Prometheus URLs is `http://127.0.0.1:*`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localenv.controlplane.cluster import ControlPlane, free_port
from localenv.controlplane.serviceaccount import service_account_kubeconfig

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "mlmodels.mlops.dev.yaml"
OPERATOR_NAMESPACE = "mlmodel-system"
RUNTIME_IMAGE = "registry.example/mlmodel-runtime:test"


@dataclass
class OperatorProcess:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path
    health_port: int = 0

    def metrics(self) -> str:
        """The operator's own /metrics, as Prometheus would scrape it."""
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


@dataclass
class OperatorEnv:
    plane: ControlPlane
    kubeconfig: Path
    directory: Path
    started: list[OperatorProcess] = field(default_factory=list)
    # Where the Leases are: the manifests' namespace, or another install's (the chart's).
    lease_namespace: str = OPERATOR_NAMESPACE

    def start(
        self,
        namespace: str,
        *,
        identity: str = "op-a",
        lease_seconds: float = 15,
        allowed_prometheus_urls: str = "http://127.0.0.1:*",
        allowed_webhook_urls: str = "http://127.0.0.1:*",
        settings: Sequence[str] = (),
        kubeconfig: Path | None = None,
    ) -> OperatorProcess:
        """An operator for `namespace`. Every test Prometheus and webhook receiver listens
        on loopback, so the administrator's allow-lists are loopback on any port.
        `settings`: more flags, as an administrator would set them. `kubeconfig`: another
        way to the API server than the ServiceAccount's usual one (e.g. through a
        `localenv.faults.FaultyProxy`)."""
        log = self.directory / f"operator-{namespace}-{identity}-{len(self.started)}.log"
        port = free_port()
        handle = log.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlmodel_operator.cli",
                f"--namespaces={namespace}",
                f"--lease-namespace={self.lease_namespace}",
                f"--lease-name=lease-{namespace}",
                f"--lease-duration-seconds={lease_seconds}",
                f"--identity={identity}",
                f"--health-address=127.0.0.1:{port}",
                f"--runtime-image={RUNTIME_IMAGE}",
                "--resync-seconds=5",
                f"--allowed-prometheus-urls={allowed_prometheus_urls}",
                f"--allowed-webhook-urls={allowed_webhook_urls}",
                *settings,
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        operator = OperatorProcess(identity=identity, process=process, log=log, health_port=port)
        self.started.append(operator)
        return operator

    def kubeconfig_via(self, port: int, path: Path) -> Path:
        """The ServiceAccount's kubeconfig with its server moved to 127.0.0.1:`port` (a
        `localenv.faults.FaultyProxy` in front of the API server), written to `path`:
        an operator started with it meets whatever fault the proxy plays. The API
        server's certificate names 127.0.0.1, so TLS passes through the proxy."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        for entry in config["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path.write_text(yaml.safe_dump(config))
        return path

    def stop_all(self) -> None:
        for operator in self.started:
            operator.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"----- {o.log.name} -----\n{o.output()[-3000:]}" for o in self.started)


def install_operator_rbac(plane: ControlPlane, directory: Path) -> Path:
    """Apply the CRDs (the MLModel's and the analysis templates') and the operator's
    namespace and RBAC; return its kubeconfig."""
    plane.kubectl("apply", "-k", str(ROOT / "crds"))
    for crd in ("mlmodels", "mlmodelanalysistemplates", "clustermlmodelanalysistemplates"):
        plane.wait_condition(f"crd/{crd}.mlops.dev", "Established")
    plane.kubectl("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    return service_account_kubeconfig(
        plane,
        namespace=OPERATOR_NAMESPACE,
        name="mlmodel-operator",
        rbac=[ROOT / "manifests" / "rbac.yaml"],
        directory=directory,
    )
