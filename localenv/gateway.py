"""Traefik as the Gateway API implementation of the local environment: a real data plane
that routes by the HTTPRoutes the operator writes.

Traefik (built from its Go module, `localenv.components`) runs in the network sandbox
with its Kubernetes Gateway provider, reading GatewayClass `traefik`, the Gateway
`gateways/web` this module creates, and every HTTPRoute attached to it, through the
admin's kubeconfig (in a cluster: its ServiceAccount). It listens on the bridge's
address, so the gateway is reachable from the sandbox and from pods, and sends each
request straight to a ready endpoint of the backend Service the route's weights pick
(EndpointSlices, as Traefik does by default), or to the side the `x-mlmodel-variant`
header pins. MLModels attach with `traffic.gatewayAPI.parentRefs: [{name: web,
namespace: gateways}]` (`PARENT_REF`), or through Traefik's own CRDs with the traefik
router (`traefik_traffic`; its kubernetesCRD provider runs too), which can mirror.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from localenv.components.build import ensure as ensure_component
from localenv.components.build import file_of
from localenv.controlplane.cluster import ControlPlane, free_port
from localenv.sandbox import GATEWAY_IP

GATEWAY_CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"
NAMESPACE = "gateways"
NAME = "web"
PORT = 8000  # the listener's port, and Traefik's entry point of the same port
PARENT_REF = {"name": NAME, "namespace": NAMESPACE}
ENTRY_POINT = "web"  # the entry point on PORT, where IngressRoutes attach
TRAEFIK_CRDS = "traefik-crds.yaml"  # Traefik's own CRDs, kept beside its binary
START_TIMEOUT_S = 60.0


class GatewayError(RuntimeError):
    pass


def gateway_traffic(hostname: str | None = None) -> dict[str, Any]:
    """The `spec.traffic` of an MLModel routed by this gateway: its HTTPRoute attaches to
    Gateway `gateways/web`, for `hostname` (requests carry it as their Host), or for any
    host when None. Two MLModels of one name in different namespaces need a hostname
    each: their routes match the same path, and the Gateway API gives a conflict to the
    older route, which keeps it while it exists (a namespace being deleted included)."""
    settings: dict[str, Any] = {"parentRefs": [dict(PARENT_REF)]}
    if hostname is not None:
        settings["hostnames"] = [hostname]
    return {"router": "gatewayAPI", "gatewayAPI": settings}


def traefik_traffic(hostname: str | None = None) -> dict[str, Any]:
    """The `spec.traffic` of an MLModel routed by this Traefik through its own CRDs (the
    traefik router: an IngressRoute on entry point `web`, a TraefikService that splits
    or mirrors), for `hostname` or any host."""
    settings: dict[str, Any] = {"entryPoints": [ENTRY_POINT]}
    if hostname is not None:
        settings["hostnames"] = [hostname]
    return {"router": "traefik", "traefik": settings}


def objects() -> list[dict[str, Any]]:
    """The GatewayClass served by Traefik, its namespace, and the Gateway routes attach to."""
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "http",
                        "port": PORT,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


@dataclass
class Gateway:
    """`Gateway(directory).start(plane)` ... `.stop()`; `url` is where clients send."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    ping_port: int = field(default_factory=free_port)
    _client: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=2.0, trust_env=False)
    )

    @property
    def url(self) -> str:
        return f"http://{GATEWAY_IP}:{PORT}"

    @property
    def log(self) -> Path:
        return self.directory / "traefik.log"

    @property
    def access_log(self) -> Path:
        """Requests the gateway answered with 400 or above."""
        return self.directory / "access.log"

    def start(self, plane: ControlPlane) -> Gateway:
        binary = ensure_component("traefik")
        self.directory.mkdir(parents=True, exist_ok=True)
        plane.kubectl("apply", "--server-side", "-f", str(plane.binaries.gateway_api_crds))
        plane.kubectl("apply", "--server-side", "-f", str(file_of("traefik", TRAEFIK_CRDS)))
        plane.wait_condition("crd/gateways.gateway.networking.k8s.io", "Established")
        plane.wait_condition("crd/traefikservices.traefik.io", "Established")
        plane.kubectl(
            "apply", "-f", "-", input_text="\n---\n".join(yaml.safe_dump(o) for o in objects())
        )
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--entryPoints.{ENTRY_POINT}.address={GATEWAY_IP}:{PORT}",
                    f"--entryPoints.traefik.address=127.0.0.1:{self.ping_port}",
                    "--ping=true",
                    "--ping.entryPoint=traefik",
                    # Its live configuration, read-only, on the same internal port
                    # (/api/http/services): what a weight became in the data plane.
                    "--api.insecure=true",
                    "--providers.kubernetesGateway=true",
                    f"--providers.kubernetesGateway.statusAddress.ip={GATEWAY_IP}",
                    # Traefik's own CRDs, for the traefik router (mirror steps): a
                    # TraefikService names the canary Service, which has no endpoints
                    # between rollouts.
                    "--providers.kubernetesCRD=true",
                    "--providers.kubernetesCRD.allowEmptyServices=true",
                    "--log.level=INFO",
                    # Answers of 400 and above, one JSON a line: which backend, how long.
                    "--accessLog=true",
                    f"--accessLog.filePath={self.access_log}",
                    "--accessLog.format=json",
                    "--accessLog.filters.statusCodes=400-599",
                    # No calls home: there is no way out of the sandbox anyway.
                    "--global.checkNewVersion=false",
                    "--global.sendAnonymousUsage=false",
                ],
                env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_programmed(plane)
        except GatewayError:
            self.stop()
            raise
        return self

    def _wait_programmed(self, plane: ControlPlane) -> None:
        """Until Traefik answers its ping and has accepted the Gateway (status written)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        jsonpath = "jsonpath={.status.conditions[?(@.type=='Programmed')].status}"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise GatewayError(f"traefik exited; log:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                pinged = self._client.get(f"http://127.0.0.1:{self.ping_port}/ping")
                programmed = plane.kubectl(
                    "get", "gateway", NAME, "-n", NAMESPACE, "-o", jsonpath, check=False
                ).stdout.strip()
                if pinged.status_code == 200 and programmed == "True":
                    return
            time.sleep(0.25)
        raise GatewayError(
            f"the gateway not programmed within {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_tails(self, lines: int = 30) -> str:
        """Traefik's log, then the last requests it answered with 400 or above."""
        parts = [f"----- {self.log} -----", self.tail(lines)]
        if self.access_log.exists():
            answered = self.access_log.read_text(errors="replace").splitlines()[-lines:]
            parts += [f"----- {self.access_log} -----", *answered]
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self._client.close()
