"""The one MLModel builder, for every test layer, the demo and the benchmarks.

    mlmodel("iris", "models", version="v2", rollout={...})       # a model kwok "runs"
    mlmodel("iris", "demo", model_file=path, traffic={...})      # a real one, on runner-0

Without `model_file` the model is a URI nothing fetches (`s3://models/<name>/<version>/
model.skops`): right for the cluster tests, whose kwok pods never run a container.
With `model_file`, a model on this machine that the pod runner converts and serves for
real, the pods must land on the runner's node: the builder adds its nodeSelector and
toleration, one replica, small batches without delay and a 32-row parity check (a
conversion then takes seconds, not a minute, on a busy machine).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localenv.node import RUNNER_LABEL

API_VERSION = "mlops.dev/v1alpha1"
RUNNER_SERVING: Mapping[str, Any] = {
    "replicas": 1,
    "batching": {"maxBatchSize": 8, "maxDelayMs": 0},
    "nodeSelector": {RUNNER_LABEL: "true"},
    "tolerations": [{"key": RUNNER_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}
RUNNER_CONVERSION: Mapping[str, Any] = {"parity": {"samples": 32}}


def mlmodel(
    name: str = "iris",
    namespace: str | None = None,
    *,
    version: str = "v1",
    model_file: Path | None = None,
    model: Mapping[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An MLModel manifest (a dict; `yaml.safe_dump` it for kubectl).

    `model` is merged into `spec.model` (format, sha256, credentialsSecret, or another
    uri); every other keyword is a section of `spec` as given (`serving`, `rollout`,
    `traffic`, `conversion`), except that with `model_file` a given `serving` is merged
    over the runner's placement and sizes. No namespace: the one kubectl is given."""
    source: dict[str, Any] = {"uri": f"s3://models/{name}/{version}/model.skops"}
    if model_file is not None:
        source = {"uri": f"file://{model_file.resolve()}", "format": "skops"}
        spec["serving"] = {**RUNNER_SERVING, **(spec.get("serving") or {})}
        spec.setdefault("conversion", RUNNER_CONVERSION)
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    # A copy: a test that edits its manifest must not edit the next one's defaults.
    return copy.deepcopy(
        {
            "apiVersion": API_VERSION,
            "kind": "MLModel",
            "metadata": metadata,
            "spec": {"model": {**source, "version": version, **(model or {})}, **spec},
        }
    )
