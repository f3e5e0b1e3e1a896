"""A real Kubernetes control plane in the network sandbox, for the tests and `make cluster-up`.

etcd, kube-apiserver (TLS, RBAC, ServiceAccount tokens), kube-controller-manager,
kube-scheduler, kube-proxy (Services' ClusterIPs, nftables mode), CoreDNS (the
`cluster.local` zone behind the `kube-dns` Service) and kwok (standing in for the
kubelets of fake nodes) run as local processes inside the sandbox
(`localenv.sandbox`): clients reach the API server on the sandbox's 127.0.0.1, pods
reach it at the bridge's address (which it advertises, so the `kubernetes` Service has
a valid endpoint). kwok's fake pods get addresses from 10.245.0.0/16, which no route of
the sandbox leads to: they serve nothing, and a connection to one fails at once.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localenv import sandbox
from localenv.components.build import ensure as ensure_component
from localenv.controlplane.build import Binaries, ensure_binaries
from localenv.controlplane.pki import FRONT_PROXY_NAME, CertPair, Pki, create_pki

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CLUSTER_IP_RANGE = sandbox.SERVICE_NETWORK
NODE_COUNT = 2
DNS_SERVICE = "kube-dns"  # in kube-system, at sandbox.DNS_IP
START_TIMEOUT_S = 60.0
_PORT_ATTEMPTS = 3


class KubectlError(subprocess.CalledProcessError):
    """A kubectl command failed; the message carries what kubectl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


class ControlPlaneError(RuntimeError):
    """A component failed to start or died; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pod_cidr(index: int) -> str:
    """The podCIDR of fake node `index`: outside every route of the sandbox, so that a
    connection to a kwok pod (which serves nothing) fails at once."""
    return f"10.245.{index}.0/24"


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    """The running processes and where to reach them. Use `start_control_plane`."""

    state_dir: Path
    binaries: Binaries
    pki: Pki
    coredns: Path
    apiserver_port: int = 0
    components: list[Component] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def kubectl_path(self) -> Path:
        return self.binaries.path("kubectl")

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input_text: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this control plane, as the admin by default."""
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def wait_condition(
        self, resource: str, condition: str, *, namespace: str = "", timeout: float = 90.0
    ) -> None:
        """Poll until `resource` (e.g. crd/x, deployment/web) has `condition` True.
        (`kubectl wait` gives up instead of waiting while an object has no conditions yet.)"""
        jsonpath = f"jsonpath={{.status.conditions[?(@.type=='{condition}')].status}}"
        scope = ["--namespace", namespace] if namespace else []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.kubectl("get", resource, *scope, "-o", jsonpath, check=False)
            if result.stdout.strip() == "True":
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{resource} not {condition} within {timeout:.0f} s")

    def check(self) -> None:
        """Raise at once, with the component's log, if any component has died."""
        for component in self.components:
            if not component.alive():
                raise ControlPlaneError(
                    f"{component.name} exited with code {component.process.returncode}; "
                    f"last lines of {component.log}:\n{component.tail()}"
                )

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(
            f"----- {c.name} ({'running' if c.alive() else 'exited'}) {c.log} -----\n"
            f"{c.tail(lines)}"
            for c in self.components
        )

    def ssl_context(self, client: CertPair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        pair = client or self.pki.admin
        context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def restart(self, name: str, *, down_s: float = 0.0, kill: bool = True) -> None:
        """Stop component `name` (SIGKILL, or SIGTERM with `kill` False), leave it down
        for `down_s` seconds, and start it again with the same arguments (its ports, its
        data directory): a crashed or restarted kube-apiserver or etcd, for the fault
        tests. Returns once the API server answers /readyz again."""
        [component] = [c for c in self.components if c.name == name]
        argv = [str(arg) for arg in component.process.args]  # type: ignore[union-attr]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        component.process.wait(timeout=30)
        time.sleep(down_s)
        revived = _spawn(name, argv, component.log.parent)
        self.components[self.components.index(component)] = revived
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not revived.alive():
                raise ControlPlaneError(f"{name} exited after its restart:\n{revived.tail()}")
            if self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"the API server not ready {START_TIMEOUT_S:.0f} s after {name}'s restart"
        )

    def stop(self) -> None:
        """Stop every component, newest first; SIGKILL what does not stop in 10 s."""
        for component in reversed(self.components):
            if component.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for component in reversed(self.components):
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.process.pid, signal.SIGKILL)
                component.process.wait(timeout=10)
        self.components.clear()


def _kubeconfig(
    *, server: str, ca: Path, user: str, client: CertPair | None = None, token: str | None = None
) -> str:
    credentials: dict[str, str] = {}
    if client is not None:
        credentials["client-certificate-data"] = base64.b64encode(client.cert.read_bytes()).decode()
        credentials["client-key-data"] = base64.b64encode(client.key.read_bytes()).decode()
    if token is not None:
        credentials["token"] = token
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mlmodel-test",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "mlmodel-test", "user": user}}],
            "current-context": user,
        }
    )


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca: Path,
    user: str,
    client: CertPair | None = None,
    token: str | None = None,
) -> Path:
    path.write_text(_kubeconfig(server=server, ca=ca, user=user, client=client, token=token))
    path.chmod(0o600)
    return path


def _wait_until(
    description: str, probe: Callable[[], bool], components: list[Component], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for component in components:
            if not component.alive():
                raise ControlPlaneError(
                    f"{component.name} exited with code {component.process.returncode} "
                    f"while waiting for {description}; last lines of {component.log}:\n"
                    f"{component.tail()}"
                )
        if probe():
            return
        time.sleep(0.1)
    details = "\n".join(f"--- {c.name} ---\n{c.tail(15)}" for c in components)
    raise ControlPlaneError(f"timed out after {timeout:.0f} s waiting for {description}\n{details}")


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _spawn(name: str, argv: list[str], log_dir: Path) -> Component:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches its children too
    )
    handle.close()
    return Component(name=name, process=process, log=log)


def _start_with_free_ports(
    name: str,
    build_argv: Callable[[int, int], list[str]],
    healthy: Callable[[int, int], bool],
    plane: ControlPlane,
    log_dir: Path,
) -> tuple[int, int]:
    """Start a component on two free ports; if a port was taken meanwhile, try others."""
    for attempt in range(_PORT_ATTEMPTS):
        ports = (free_port(), free_port())
        component = _spawn(name, build_argv(*ports), log_dir)
        plane.components.append(component)
        try:
            _wait_until(
                f"{name} to become healthy",
                functools.partial(healthy, *ports),
                [*plane.components],
                START_TIMEOUT_S,
            )
            return ports
        except ControlPlaneError:
            in_use = "address already in use" in component.tail(200)
            if not in_use or attempt == _PORT_ATTEMPTS - 1:
                raise
            plane.components.remove(component)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.process.pid, signal.SIGKILL)
            component.process.wait(timeout=10)
    raise AssertionError("unreachable")


def _node_manifest(index: int) -> dict[str, object]:
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": pod_cidr(index), "podCIDRs": [pod_cidr(index)]},
    }


def start_control_plane(state_dir: Path, *, nodes: int = NODE_COUNT) -> ControlPlane:
    """Build (once) and start every component; return when nodes are Ready.

    On any failure everything already started is stopped before the error propagates.
    """
    sandbox.require_inside("the local control plane")
    _refuse_a_second_plane()
    binaries = ensure_binaries()
    coredns = ensure_component("coredns")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_dir = state_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    pki = create_pki(state_dir / "pki")
    plane = ControlPlane(state_dir=state_dir, binaries=binaries, pki=pki, coredns=coredns)
    try:
        _start_all(plane, log_dir, nodes)
    except BaseException:
        plane.stop()
        raise
    return plane


def _refuse_a_second_plane() -> None:
    """One control plane per sandbox (localenv/sandbox.py says why): another one's
    CoreDNS answering on the sandbox's DNS address means this one would take over its
    Services' rules."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((sandbox.GATEWAY_IP, 53)) != 0:
            return
    raise ControlPlaneError(
        f"another control plane runs in this network sandbox (its DNS answers at "
        f"{sandbox.GATEWAY_IP}:53); two would overwrite each other's Service rules. Start "
        "this one in a sandbox of its own: python -m localenv.sandbox -- ..."
    )


def _start_all(plane: ControlPlane, log_dir: Path, nodes: int) -> None:
    state_dir, binaries, pki = plane.state_dir, plane.binaries, plane.pki
    etcd_dir = state_dir / "etcd"

    def etcd_argv(client: int, peer: int) -> list[str]:
        return [
            str(binaries.path("etcd")),
            "--name=default",
            f"--data-dir={etcd_dir}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]

    etcd_port, _ = _start_with_free_ports(
        "etcd", etcd_argv, lambda c, _p: _http_ok(f"http://127.0.0.1:{c}/health"), plane, log_dir
    )

    admin_context = plane.ssl_context()

    def apiserver_argv(port: int, _unused: int) -> list[str]:
        return [
            str(binaries.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            # Every address of the sandbox (loopback and the pods' bridge): nothing else.
            "--bind-address=0.0.0.0",
            f"--advertise-address={sandbox.GATEWAY_IP}",
            f"--secure-port={port}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            # The aggregation layer, for metrics-server's metrics.k8s.io (autoscaling):
            # requests proxied to an endpoint's address (no ClusterIP hop), as the
            # front-proxy client, with the user in X-Remote-* headers.
            f"--requestheader-client-ca-file={pki.ca.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_NAME}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy.cert}",
            f"--proxy-client-key-file={pki.front_proxy.key}",
            "--enable-aggregator-routing=true",
            "--authorization-mode=Node,RBAC",
            # Namespace annotations may add a node selector and tolerations to every pod:
            # how the real-pod tests put pods from unchanged manifests on the real node.
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={state_dir / 'apiserver-certs'}",
            "--v=1",
        ]

    plane.apiserver_port, _ = _start_with_free_ports(
        "kube-apiserver",
        apiserver_argv,
        lambda p, _u: _http_ok(f"https://127.0.0.1:{p}/readyz", admin_context),
        plane,
        log_dir,
    )
    write_kubeconfig(
        plane.kubeconfig, server=plane.server, ca=pki.ca.cert, user="admin", client=pki.admin
    )
    component_kubeconfigs = {
        name: write_kubeconfig(
            state_dir / f"{name}.kubeconfig",
            server=plane.server,
            ca=pki.ca.cert,
            user=name,
            client=pair,
        )
        for name, pair in (
            ("kube-controller-manager", pki.controller_manager),
            ("kube-scheduler", pki.scheduler),
            ("kwok", pki.kwok),
            ("kube-proxy", pki.kube_proxy),
            ("coredns", pki.coredns),
        )
    }

    def component_argv(name: str, port: int) -> list[str]:
        """Flags kube-controller-manager and kube-scheduler share: their identity, a
        loopback health port, and no leader election (one of each)."""
        kubeconfig = component_kubeconfigs[name]
        return [
            str(binaries.path(name)),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            f"--cert-dir={state_dir / (name + '-certs')}",
            "--v=1",
        ]

    def controller_manager_argv(port: int, _unused: int) -> list[str]:
        return [
            *component_argv("kube-controller-manager", port),
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            "--concurrent-deployment-syncs=10",
            "--concurrent-gc-syncs=20",
            # HPAs decide every 2 s rather than every 15 s: tests of autoscaled MLModels
            # wait for the HPA controller's decisions.
            "--horizontal-pod-autoscaler-sync-period=2s",
        ]

    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the components' self-signed serving certs

    def scheduler_argv(port: int, _unused: int) -> list[str]:
        return component_argv("kube-scheduler", port)

    for name, argv in (
        ("kube-controller-manager", controller_manager_argv),
        ("kube-scheduler", scheduler_argv),
    ):
        _start_with_free_ports(
            name,
            argv,
            lambda p, _u: _http_ok(f"https://127.0.0.1:{p}/healthz", insecure),
            plane,
            log_dir,
        )

    _start_service_network(plane, log_dir, component_kubeconfigs)

    def kwok_argv(port: int, _unused: int) -> list[str]:
        return [
            str(binaries.path("kwok")),
            f"--kubeconfig={component_kubeconfigs['kwok']}",
            f"--config={binaries.kwok_stages}",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-ip=127.0.0.1",
            "--cidr=127.99.0.0/16",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{port}",
        ]

    _start_with_free_ports(
        "kwok",
        kwok_argv,
        lambda p, _u: _http_ok(f"http://127.0.0.1:{p}/healthz"),
        plane,
        log_dir,
    )

    manifests = "\n---\n".join(yaml.safe_dump(_node_manifest(i)) for i in range(nodes))
    plane.kubectl("apply", "-f", "-", input_text=manifests)
    _wait_until(
        f"{nodes} Ready nodes",
        lambda: _ready_nodes(plane) >= nodes,
        plane.components,
        START_TIMEOUT_S,
    )
    _wait_until(
        "the default ServiceAccount",
        lambda: plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        plane.components,
        START_TIMEOUT_S,
    )


_COREDNS_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
"""


def _dns_service() -> str:
    """The `kube-dns` Service at sandbox.DNS_IP and its endpoints: CoreDNS on the bridge's
    address (a process of the sandbox, not a pod, so the slice is written here)."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": DNS_SERVICE, "namespace": "kube-system"},
        "spec": {
            "clusterIP": sandbox.DNS_IP,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        },
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{DNS_SERVICE}-localenv",
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": DNS_SERVICE,
                "endpointslice.kubernetes.io/managed-by": "localenv",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [sandbox.GATEWAY_IP], "conditions": {"ready": True}}],
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    }
    return "\n---\n".join(yaml.safe_dump(o) for o in (service, endpoints))


PROXY_NODE = "localenv"


def _proxy_node() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": PROXY_NODE, "labels": {"kubernetes.io/hostname": PROXY_NODE}},
        "spec": {
            "unschedulable": True,
            "taints": [{"key": "localenv/sandbox", "effect": "NoSchedule"}],
        },
    }


def _start_service_network(
    plane: ControlPlane, log_dir: Path, kubeconfigs: dict[str, Path]
) -> None:
    """kube-proxy, then CoreDNS behind the `kube-dns` Service: what makes Services and
    their names work inside the sandbox."""
    state_dir, binaries = plane.state_dir, plane.binaries

    # kube-proxy waits (30 s) for the Node it runs on before it writes any rule. The
    # sandbox itself is that node: a Node nobody can schedule onto, with the bridge's
    # address.
    plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(_proxy_node()))

    def kube_proxy_argv(health: int, metrics: int) -> list[str]:
        return [
            str(binaries.path("kube-proxy")),
            f"--kubeconfig={kubeconfigs['kube-proxy']}",
            "--proxy-mode=nftables",
            f"--cluster-cidr={sandbox.POD_NETWORK}",
            f"--hostname-override={PROXY_NODE}",
            # Pods and the sandbox share one bridge: without masquerading, a pod's
            # reply to another pod behind a ClusterIP would skip the un-NAT.
            "--masquerade-all",
            "--conntrack-max-per-core=0",  # never touch the kernel's global conntrack
            f"--healthz-bind-address=127.0.0.1:{health}",
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            "--v=1",
        ]

    _start_with_free_ports(
        "kube-proxy",
        kube_proxy_argv,
        lambda h, _m: _http_ok(f"http://127.0.0.1:{h}/livez"),
        plane,
        log_dir,
    )
    plane.kubectl("apply", "-f", "-", input_text=_COREDNS_RBAC)
    plane.kubectl("apply", "-f", "-", input_text=_dns_service())

    def coredns_argv(ready: int, _unused: int) -> list[str]:
        corefile = state_dir / "Corefile"
        corefile.write_text(
            f".:53 {{\n"
            f"    bind {sandbox.GATEWAY_IP}\n"
            "    errors\n"
            f"    ready 127.0.0.1:{ready}\n"
            "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
            f"        kubeconfig {kubeconfigs['coredns']}\n"
            "        pods insecure\n"
            "        fallthrough in-addr.arpa ip6.arpa\n"
            "    }\n"
            "    cache 5\n"
            "}\n"
        )
        return [str(plane.coredns), "-conf", str(corefile)]

    _start_with_free_ports(
        "coredns",
        coredns_argv,
        lambda r, _u: _http_ok(f"http://127.0.0.1:{r}/ready"),
        plane,
        log_dir,
    )


def _ready_nodes(plane: ControlPlane) -> int:
    result = plane.kubectl(
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
        check=False,
    )
    return result.stdout.split().count("True") if result.returncode == 0 else 0


@contextlib.contextmanager
def running_control_plane(state_dir: Path) -> Iterator[ControlPlane]:
    plane = start_control_plane(state_dir)
    try:
        yield plane
    finally:
        plane.stop()
