"""The local environment: a Kubernetes control plane, the operator, a pod runner,
Prometheus and a load generator, all as processes on this machine's loopback.

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
- `LoadGenerator(...)`, `LoadResult`: inference load split as a gateway would, bounded
  by a count or a duration, or running until `stop()`.
- `pods_of(plane, namespace, revision)`, `infer(pod_ip, body)`, `labels_of(answer)`:
  a revision's pods and a request to one of them.
- `wait_for(probe, timeout=, what=)`: a bounded wait that says what it waited for.

Layout: `controlplane/` (the Go module, builder and launcher; `python -m
localenv.controlplane build|up|down|status`), `podrunner` with `node` and `kubeapi`
(the kubelet of node runner-0; `python -m localenv.podrunner`), `prometheus`,
`loadgen`, `models`, `operator_process`, `manifests`, `scenario`, `environment`, and
`demo` (`python -m localenv.demo`, what `make demo` runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localenv import models
    from localenv.environment import EnvironmentBusy, LocalEnvironment
    from localenv.loadgen import LoadGenerator, LoadResult
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
    "infer",
    "labels_of",
    "mlmodel",
    "models",
    "pods_of",
    "wait_for",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'localenv' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "models" else getattr(module, name)
