"""The e2e layer's models, load and first version: what every whole-rollout test starts
from."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris

from localenv import LoadGenerator, mlmodel, models, pods_of
from localenv.controlplane.cluster import ControlPlane
from localenv.loadgen import service_url, until_answering
from localenv.node import NODE_NAME
from localenv.operator_process import OperatorEnv
from localenv.prometheus import Prometheus
from tests.helpers.kube import apply, wait_healthy

RATE = 20.0  # requests per second from the load generator
UP_TIMEOUT_S = 120.0  # for a revision to convert and serve on a busy 2-core machine


@dataclass(frozen=True)
class IrisModels:
    v1: Path  # RandomForestClassifier
    v2: Path  # GradientBoostingClassifier: another good model
    not_a_model: Path
    rows: list[list[float]]
    labels: list[int]

    @staticmethod
    def sha256(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def infer_body(self) -> dict[str, Any]:
        """An Open Inference Protocol v2 request with the sample rows."""
        return models.infer_body(self.rows)


def bring_up_v1(
    cluster: ControlPlane,
    namespace: str,
    iris: IrisModels,
    operators: OperatorEnv,
    rollout: dict[str, Any],
    **spec: Any,
) -> tuple[str, str]:
    """Start the operator, apply v1 with `rollout` (and other `spec` sections: traffic,
    serving) and wait for it to serve from pods on the runner's node; (revision, the
    first pod's IP)."""
    operators.start(namespace)
    manifest = mlmodel("iris", namespace, version="v1", model_file=iris.v1, rollout=rollout, **spec)
    apply(cluster, manifest)
    status = wait_healthy(cluster, namespace, "v1", timeout=UP_TIMEOUT_S, interval=0.5)
    revision = str(status["stable"]["revision"])
    pods = pods_of(cluster, namespace, revision)
    assert len(pods) == manifest["spec"]["serving"]["replicas"], pods
    assert {pod["spec"]["nodeName"] for pod in pods} == {NODE_NAME}
    return revision, str(pods[0]["status"]["podIP"])


def start_load(
    cluster: ControlPlane,
    namespace: str,
    iris: IrisModels,
    *,
    seconds: float,
    rate: float = RATE,
) -> LoadGenerator:
    """Inference load on MLModel iris through its front door, the `iris` Service's
    ClusterIP: kube-proxy splits it by ready pods (a connection per request, so that the
    split shows), as the replicas router intends."""
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    asyncio.run(until_answering(url, body=iris.infer_body()))
    return LoadGenerator(
        url,
        body=iris.infer_body(),
        rate=rate,
        count=int(rate * seconds),
        duration=seconds,
        keep_alive=False,
    ).start()


def served_by_revision(prometheus: Prometheus, namespace: str) -> dict[str, float]:
    """200 answers per revision as Prometheus scraped them (also from pods gone since)."""
    query = (
        "sum by (mlops_dev_revision) (max_over_time("
        f'mlmodel_requests_total{{namespace="{namespace}",code="200"}}[10m]))'
    )
    return prometheus.values_by(query, "mlops_dev_revision")


def reference_of(model: Path, directory: Path) -> dict[str, str]:
    """`mlmodel-runtime reference` on the saved model and the iris rows: the uri and
    sha256 for spec.conversion.reference."""
    rows = directory / "iris-rows.npy"
    np.save(rows, load_iris(return_X_y=True)[0])
    out = directory / f"{model.stem}-reference.npz"
    made = subprocess.run(
        [sys.executable, "-m", "mlmodel_runtime.cli", "reference", "--model", str(model),
         "--format", "skops", "--data", str(rows), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    summary = json.loads(made.stdout)
    return {"uri": f"file://{out}", "sha256": summary["sha256"]}
