"""The complete local environment in one object, for `make demo`, the rollout bench and
any other scenario run outside pytest. It runs inside the network sandbox
(`localenv.sandbox`: `make demo` starts one).

`start()` takes the directory's lock, then starts, in order (and `stop()` stops in
reverse, then releases the lock):

1. the control plane (etcd, kube-apiserver, controller manager, scheduler, kube-proxy,
   CoreDNS, kwok), state under `<directory>/cluster` (`kubeconfig` there is the admin's);
2. the MLModel CRD, and the operator's namespace and RBAC from manifests/;
3. the gateway: Traefik with the Gateway API CRDs, GatewayClass `traefik` and Gateway
   `gateways/web` (`localenv.gateway`), at `gateway_url`;
4. the pod runner, the kubelet of node runner-0 (each pod in its own network namespace,
   addresses from `pod_cidr`);
5. a real Prometheus discovering the pods through the API (Kubernetes service
   discovery) and scraping them, and the operator, every second; its URL is known from
   construction on, so MLModels can name it before anything runs;
6. the operator, as its ServiceAccount, watching `namespace`.

With `pods="real"` (`make demo DEMO_ARGS=--pods=real`), steps 4 to 6 are instead what
users of the kind quickstart run (`localenv.install`): the real node `real-0` (a kubelet
over containerd and runc, `localenv.realnode`), the images `make images` built from the
Dockerfiles imported into it, the operator installed with `kubectl apply -k manifests/`
(two pods, one leading), and the quickstart's model store; `namespace` is then the
quickstart's `mlmodel-demo`, which enforces the `restricted` Pod Security level. There
is no Prometheus: the installed operator contacts none unless allowed, and analyses by
scraping the pods (the quickstart's default).

The pytest fixtures of tests/ assemble the same pieces one by one (a session's control
plane is shared by many tests, each with its own namespace and operator).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO, TypeVar, get_args

import httpx
import yaml

from localenv import install, sandbox
from localenv.controlplane.cluster import ControlPlane, start_control_plane
from localenv.gateway import Gateway
from localenv.kubeapi import ApiAccess
from localenv.node import POD_CIDR
from localenv.operator_process import OperatorEnv, OperatorProcess, install_operator_rbac
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus
from localenv.realnode import RealNode

RUNNER_DIR = "podrunner"
NODE_DIR = "realnode"
# Who runs the pods: the pod runner (processes), or a real kubelet (containers).
PodKind = Literal["process", "real"]
POD_KINDS: tuple[PodKind, ...] = get_args(PodKind)
T = TypeVar("T")


class EnvironmentBusy(RuntimeError):
    """Another local environment holds this directory; `holder` says which (pid, directory)."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"a local environment is already running in this directory ({holder}); "
            "stop it first, or use another directory"
        )
        self.holder = holder


def lock_file(directory: Path) -> Path:
    return directory.resolve().parent / f".{directory.name}.lock"


def hold_directory_lock(directory: Path) -> TextIO:
    """One environment per directory: a second one would wipe or share the first's state
    (two environments in two directories may run at once: each has its own sandbox,
    whose addresses exist nowhere else). Held as long as the returned file is open; the
    file names the holder for whoever is refused."""
    path = lock_file(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise EnvironmentBusy(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, directory {directory}")
    handle.flush()
    return handle


@dataclass
class LocalEnvironment:
    """`with LocalEnvironment(directory).start() as env:` ... everything stops on exit.

    `plane`, `runner` and `operator` exist once started; `prometheus` (not yet running)
    and `prometheus_url` from construction on."""

    directory: Path
    namespace: str = "demo"
    pod_cidr: str = POD_CIDR
    say: Callable[[str], None] = print
    pods: PodKind = "process"
    prometheus: Prometheus = field(init=False)
    gateway: Gateway = field(init=False)
    _plane: ControlPlane | None = field(default=None, init=False)
    _runner: PodRunner | None = field(default=None, init=False)
    _node: RealNode | None = field(default=None, init=False)
    _operators: OperatorEnv | None = field(default=None, init=False)
    _operator: OperatorProcess | None = field(default=None, init=False)
    _api: httpx.Client | None = field(default=None, init=False)
    _lock: TextIO | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.pods not in POD_KINDS:
            raise ValueError(f"pods must be one of {', '.join(POD_KINDS)}, not {self.pods!r}")
        if self.pods == "real":
            self.namespace = install.DEMO_NAMESPACE
        self.prometheus = Prometheus(
            self.directory / "prometheus", self.directory / "cluster" / "kubeconfig"
        )
        self.gateway = Gateway(self.directory / "gateway")

    # ---- life ---------------------------------------------------------------------

    def claim(self) -> LocalEnvironment:
        """Take the machine's environment lock now (`start` takes it otherwise), e.g.
        before wiping a directory another environment might be using.

        Raises EnvironmentBusy naming the holder."""
        if self._lock is None:
            self._lock = hold_directory_lock(self.directory)
        return self

    def start(self) -> LocalEnvironment:
        sandbox.require_inside("the local environment")
        self.claim()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.say("starting the control plane (etcd, kube-apiserver, controller manager, ...)")
        self._plane = plane = start_control_plane(self.directory / "cluster")
        self.say(f"  ready in {time.monotonic() - started:.1f} s at {plane.server}")
        self.say("starting the gateway (Traefik, routing by the Gateway API)")
        self.gateway.start(plane)
        self.say(f"  at {self.gateway.url}")
        if self.pods == "real":
            self._start_real_node(plane)
        else:
            self._start_processes(plane)
        access = ApiAccess.from_plane(plane)
        self._api = httpx.Client(
            base_url=access.server, verify=access.ssl, headers=access.headers, timeout=10.0
        )

    def _start_real_node(self, plane: ControlPlane) -> None:
        """What users of the kind quickstart run, on a real kubelet (localenv/install.py)."""
        began = time.monotonic()
        self.say("starting the real node (a kubelet over containerd and runc: real-0)")
        self._node = node = RealNode(self.directory / NODE_DIR).start(plane)
        self.say(f"  ready in {time.monotonic() - began:.1f} s")
        self.say("importing the operator and runtime images (make images built them)")
        took = install.import_project_images(node)
        self.say("  " + ", ".join(f"{name} {s:.1f} s" for name, s in took.items()))
        self.say(f"$ kubectl apply -k manifests/  (the operator, in {install.OPERATOR_NAMESPACE})")
        installed = install.install_operator(plane, node)
        self.say(
            f"  {installed.leader} leads, {installed.leader_after_s:.1f} s after the apply; "
            f"{len(installed.pods)} pods ready"
        )
        began = time.monotonic()
        self.say(
            f"$ kubectl apply -f examples/kind/model-store.yaml  (trains iris v1, v2, v3 "
            f"in the runtime image; namespace {self.namespace}, Pod Security `restricted`)"
        )
        install.start_model_store(plane, node)
        self.say(f"  serving models {time.monotonic() - began:.1f} s later")

    def _start_processes(self, plane: ControlPlane) -> None:
        """The pod runner, Prometheus and the operator as a local process."""
        kubeconfig = install_operator_rbac(plane, self.directory)
        self.kubectl("create", "namespace", self.namespace)
        self.say(f"starting the pod runner (the kubelet of runner-0, pods on {self.pod_cidr})")
        self._runner = PodRunner(plane, self.directory / RUNNER_DIR, pod_cidr=self.pod_cidr)
        self._runner.start()
        self.say("starting Prometheus (discovers the pods through the API, scrapes each second)")
        self.prometheus.start()
        self.say(f"  at {self.prometheus.url}")
        self.say(f"starting the operator (as its ServiceAccount, watching '{self.namespace}')")
        self._operators = OperatorEnv(plane=plane, kubeconfig=kubeconfig, directory=self.directory)
        self._operator = self._operators.start(self.namespace)
        self.prometheus.scrape_operators([self._operator.health_port])

    def stop(self) -> None:
        """Stop everything that was started, last first, and release the lock; never
        raises."""
        if self._api is not None:
            self._api.close()
        if self._operators is not None:
            self._operators.stop_all()
        with contextlib.suppress(Exception):
            self.prometheus.close()
        with contextlib.suppress(Exception):
            self.gateway.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                self._runner.stop()
        if self._node is not None:
            with contextlib.suppress(Exception):
                self._node.stop()
        if self._plane is not None:
            self._plane.stop()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> LocalEnvironment:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def restart_operator(self, *, crash: bool = True) -> OperatorProcess:
        """Stop the operator (SIGKILL, as a crash, or with `crash=False` SIGTERM, a clean
        stop that hands its Lease over) and start a new one under a new identity. It
        resumes every rollout from status; after a crash only once the old Lease has
        expired (15 s)."""
        if self.pods == "real":
            raise RuntimeError("with real pods the operator is a Deployment: delete its pods")
        operators, old = self._started(self._operators), self.operator
        old.stop(signal.SIGKILL if crash else signal.SIGTERM)
        self._operator = operators.start(
            self.namespace, identity=f"op-{len(operators.started) + 1}"
        )
        self.prometheus.scrape_operators([self._operator.health_port])
        return self._operator

    # ---- what runs ------------------------------------------------------------------

    @property
    def plane(self) -> ControlPlane:
        return self._started(self._plane)

    @property
    def runner(self) -> PodRunner:
        return self._started(self._runner)

    @property
    def node(self) -> RealNode:
        return self._started(self._node)

    @property
    def operator(self) -> OperatorProcess:
        """The operator now running (a new one after `restart_operator`)."""
        return self._started(self._operator)

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def gateway_url(self) -> str:
        """Where clients send: the gateway, inside the sandbox."""
        return self.gateway.url

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig."""
        return self.plane.kubeconfig

    @staticmethod
    def _started(part: T | None) -> T:
        if part is None:
            raise RuntimeError("the local environment is not started")
        return part

    # ---- acting and looking ---------------------------------------------------------

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """The control plane's kubectl as the admin; its output (raises on failure)."""
        return self.plane.kubectl(*args, input_text=input_text).stdout

    def apply(self, manifest: Mapping[str, Any]) -> str:
        """`kubectl apply` one object (e.g. from `localenv.mlmodel`) in its namespace,
        `namespace` when it names none."""
        named = (manifest.get("metadata") or {}).get("namespace")
        scope = [] if named else ["-n", self.namespace]
        return self.kubectl("apply", *scope, "-f", "-", input_text=yaml.safe_dump(dict(manifest)))

    def mlmodel(self, name: str) -> dict[str, Any]:
        """The MLModel as the API server has it ({} when absent)."""
        api = self._started(self._api)
        response = api.get(f"/apis/mlops.dev/v1alpha1/namespaces/{self.namespace}/mlmodels/{name}")
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def check(self) -> None:
        """Raise if a component died (the control plane's, the operator, Prometheus, the
        gateway, the real node's containerd and kubelet)."""
        self.plane.check()
        if not self.gateway.alive():
            raise RuntimeError(f"the gateway exited:\n{self.gateway.tail()}")
        if self.pods == "real":
            self.node.check()
            return
        if not self.operator.alive():
            raise RuntimeError(f"the operator exited:\n{self.operator.output()[-3000:]}")
        process = self.prometheus.process
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Prometheus exited:\n{self.prometheus.tail()}")

    def log_tails(self) -> str:
        """The operator's and the pod runner's (with its pods'), or the real node's and
        its containers' (the operator's and the demo namespace's): where a rollout's
        story is. The control plane's own logs are under `<directory>/cluster/logs`."""
        parts = []
        if self._runner is not None:
            parts.append(self._runner.log_tails(lines=15))
        if self._node is not None:
            parts.append(self._node.log_tails(lines=15))
            for namespace in (install.OPERATOR_NAMESPACE, self.namespace):
                parts.append(self._node.container_log_tails(namespace, lines=15))
        if self._operators is not None:
            parts.append(self._operators.logs())
        return "\n".join(parts)
