"""MLModels of the real-pod tests: the kind quickstart's model store's files, in its
`restricted` namespace, applied with kubectl and deleted after each test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from localenv.controlplane.cluster import ControlPlane
from localenv.install import STORE_URL
from localenv.scenario import get_json, pods_of, wait_for

ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": ROWS}]}


def mlmodel(name: str, namespace: str, file: str, version: str, **serving: Any) -> dict[str, Any]:
    """An MLModel of the store's `file`; `serving` keywords go to spec.serving (one
    replica unless given, or autoscaled), but `traffic` and `rollout`, which replace
    their sections."""
    traffic = serving.pop("traffic", None)
    steps = [{"weight": 50, "pause": {"duration": "10s"}}, {"weight": 100}]
    rollout = serving.pop("rollout", {"steps": steps})
    sizing = {} if "autoscaling" in serving else {"replicas": 1}
    spec: dict[str, Any] = {
        "model": {"uri": f"{STORE_URL}/{file}", "format": "skops", "version": version},
        "serving": {**sizing, **serving},
        "rollout": rollout,
    }
    if traffic:
        spec["traffic"] = traffic
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@dataclass
class Models:
    """MLModels of one test in the quickstart's namespace, with the model store's files;
    deleted after the test."""

    cluster: ControlPlane
    namespace: str
    applied: list[str] = field(default_factory=list)

    def apply(self, name: str, file: str, version: str, **serving: Any) -> None:
        obj = mlmodel(name, self.namespace, file, version, **serving)
        self.cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(obj))
        if name not in self.applied:
            self.applied.append(name)

    def status(self, name: str) -> dict[str, Any]:
        found = get_json(self.cluster, "mlmodel", name, "-n", self.namespace)
        status: dict[str, Any] = found.get("status") or {}
        return status

    def until_phase(self, name: str, phase: str, timeout: float) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(
            lambda: (s := self.status(name)).get("phase") == phase and s,
            timeout=timeout,
            what=f"{name} {phase}",
            interval=1.0,
        )
        return found

    def pods(self, name: str) -> list[dict[str, Any]]:
        return pods_of(self.cluster, self.namespace, "", name=name)
