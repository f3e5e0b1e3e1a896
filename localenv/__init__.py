"""The local environment: a Kubernetes control plane with kube-proxy and cluster DNS,
the operator, a pod runner giving each pod a network namespace, a Gateway API gateway
(Traefik), Prometheus and a load generator, all inside a network sandbox of their own
(`localenv.sandbox`: pod and Service addresses that exist nowhere else, no way out).

`make demo`, `make cluster-up`, the benchmarks and the tests use it. A scenario needs
only the names below (docs/e2e.md has a worked example):

- `LocalEnvironment(directory)`: `.start()` ... `.stop()` (or `with`) brings up and
  tears down everything; `.apply(manifest)`, `.mlmodel(name)`, `.kubectl(...)`,
  `.restart_operator()`, `.prometheus_url` (known before start), `.plane`, `.check()`.
- `EnvironmentBusy`: raised by `start()`/`claim()` when another environment holds the
  machine (their pods would take the same addresses); `.holder` names it.
- `mlmodel(name, namespace, version=, model_file=, model=, **spec)`: the one MLModel
  builder; with `model_file` the model is served for real by the pod runner.
- `models`: iris models trained on the spot (`train_good`, `train_shuffled`) and the
  request body their load sends (`infer_body(sample_rows()[0])`).
- `LoadGenerator(url, body=, rate=, ...)`, `LoadResult`: inference load sent to a front
  door (`gateway_url(env.gateway_url, name)`, or `await service_url(plane, namespace,
  name)` for the `<name>` Service's ClusterIP), counted by the revision that answered;
  bounded by a count or a duration, or running until `stop()`. `await
  until_answering(url, body=)` waits for a new route or Service to carry requests.
- `gateway_traffic(hostname=None)`: the `spec.traffic` that attaches an MLModel to the
  gateway (for one hostname, sent as the requests' `Host`, or any).
- `pods_of(plane, namespace, revision)`, `infer(pod_ip, body)`, `labels_of(answer)`:
  a revision's pods and a request to one of them.
- `wait_for(probe, timeout=, what=)`: a bounded wait that says what it waited for.

Layout: `controlplane/` (the Go module, builder and launcher; `python -m
localenv.controlplane build|up|down|status`), `podrunner` with `node` and `kubeapi`
(the kubelet of node runner-0; `python -m localenv.podrunner`), `prometheus`,
`loadgen`, `models`, `operator_process`, `manifests`, `scenario`, `environment`,
`demo` (`python -m localenv.demo`, what `make demo` runs), `helm` (the Helm binary for
the chart's tests) and `chart` (`python -m localenv.chart`, the Helm chart's templates
from `manifests/`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localenv import models
    from localenv.environment import EnvironmentBusy, LocalEnvironment
    from localenv.gateway import gateway_traffic
    from localenv.loadgen import (
        LoadGenerator,
        LoadResult,
        gateway_url,
        service_url,
        until_answering,
    )
    from localenv.manifests import mlmodel
    from localenv.scenario import infer, labels_of, pods_of, wait_for

# Imported when first used: `python -m localenv.sandbox` and the builders run before any
# of this is needed (and the sandbox launcher must stay quick and small).
_EXPORTS = {
    "models": "localenv.models",
    "EnvironmentBusy": "localenv.environment",
    "LocalEnvironment": "localenv.environment",
    "LoadGenerator": "localenv.loadgen",
    "LoadResult": "localenv.loadgen",
    "gateway_url": "localenv.loadgen",
    "service_url": "localenv.loadgen",
    "until_answering": "localenv.loadgen",
    "gateway_traffic": "localenv.gateway",
    "mlmodel": "localenv.manifests",
    "infer": "localenv.scenario",
    "labels_of": "localenv.scenario",
    "pods_of": "localenv.scenario",
    "wait_for": "localenv.scenario",
}

__all__ = [
    "EnvironmentBusy",
    "LoadGenerator",
    "LoadResult",
    "LocalEnvironment",
    "gateway_traffic",
    "gateway_url",
    "infer",
    "labels_of",
    "mlmodel",
    "models",
    "pods_of",
    "service_url",
    "until_answering",
    "wait_for",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'localenv' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "models" else getattr(module, name)
