"""The complete local environment in one object, for `make demo` and the rollout bench.

The pytest fixtures of tests/e2e/ assemble the same pieces one by one; this starts them
in order outside pytest and stops them in reverse:

1. the control plane (etcd, kube-apiserver, controller manager, scheduler, kwok), state
   under `<directory>/cluster` (`kubeconfig` there is the admin's);
2. the MLModel CRD, the Gateway API CRDs, and the operator's namespace and RBAC from
   manifests/;
3. the pod runner, the kubelet of node runner-0 (pods from `pod_cidr`, loopback);
4. a real Prometheus scraping the runner's serve processes every second;
5. the operator, as its ServiceAccount, watching `namespace`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from localenv.controlplane.cluster import ControlPlane, start_control_plane
from localenv.kubeapi import ApiAccess
from localenv.operator_process import OperatorEnv, OperatorProcess, install_operator_rbac
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus

# Not the pytest runner's 127.101.0.0/24: the demo's test runs next to that runner.
DEMO_POD_CIDR = "127.102.0.0/24"


@dataclass
class LocalEnvironment:
    """`with LocalEnvironment(directory).start() as env:` ... everything stops on exit."""

    directory: Path
    namespace: str = "demo"
    pod_cidr: str = DEMO_POD_CIDR
    say: Callable[[str], None] = print
    plane: ControlPlane | None = None
    runner: PodRunner | None = None
    prometheus: Prometheus | None = None
    operators: OperatorEnv | None = None
    operator: OperatorProcess | None = None
    _api: httpx.Client | None = None

    def start(self) -> LocalEnvironment:
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
        self.plane = start_control_plane(self.directory / "cluster")
        self.say(f"  ready in {time.monotonic() - started:.1f} s at {self.plane.server}")
        self.kubectl("apply", "--server-side", "-f", str(self.plane.binaries.gateway_api_crds))
        kubeconfig = install_operator_rbac(self.plane, self.directory)
        self.kubectl("create", "namespace", self.namespace)
        self.say(f"starting the pod runner (the kubelet of runner-0, pods on {self.pod_cidr})")
        self.runner = PodRunner(
            self.plane, self.directory / "podrunner", pod_cidr=self.pod_cidr
        ).start()
        self.say("starting Prometheus (scrapes every serve process each second)")
        self.prometheus = Prometheus(self.directory / "prometheus", self.runner.targets_file)
        self.prometheus.start()
        self.say(f"  at {self.prometheus.url}")
        self.say(f"starting the operator (as its ServiceAccount, watching '{self.namespace}')")
        self.operators = OperatorEnv(
            plane=self.plane, kubeconfig=kubeconfig, directory=self.directory
        )
        self.operator = self.operators.start(self.namespace)
        access = ApiAccess.from_plane(self.plane)
        self._api = httpx.Client(
            base_url=access.server, verify=access.ssl, headers=access.headers, timeout=10.0
        )

    def stop(self) -> None:
        """Stop everything that was started, last first; never raises."""
        if self._api is not None:
            self._api.close()
        if self.operators is not None:
            self.operators.stop_all()
        if self.prometheus is not None:
            with contextlib.suppress(Exception):
                self.prometheus.close()
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.stop()
        if self.plane is not None:
            self.plane.stop()

    def __enter__(self) -> LocalEnvironment:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- helpers ----------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None
        return self.plane.kubeconfig

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        assert self.plane is not None
        return self.plane.kubectl(*args, input_text=input_text).stdout

    def mlmodel(self, name: str) -> dict[str, Any]:
        """The MLModel as the API server has it ({} when absent)."""
        assert self._api is not None
        response = self._api.get(
            f"/apis/mlops.dev/v1alpha1/namespaces/{self.namespace}/mlmodels/{name}"
        )
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def check(self) -> None:
        """Raise if a component died (the control plane's, the operator, Prometheus)."""
        assert self.plane is not None
        assert self.operator is not None
        self.plane.check()
        if not self.operator.alive():
            raise RuntimeError(f"the operator exited:\n{self.operator.output()[-3000:]}")
        prometheus = self.prometheus
        if prometheus and prometheus.process and prometheus.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited:\n{prometheus.tail()}")

    def log_tails(self) -> str:
        """The operator's and the pod runner's (with its pods'): where a rollout's story
        is. The control plane's own logs are under `<directory>/cluster/logs`."""
        parts = []
        if self.runner is not None:
            parts.append(self.runner.log_tails(lines=15))
        if self.operators is not None:
            parts.append(self.operators.logs())
        return "\n".join(parts)
