"""The revision of an MLModel: a short hash of everything in the MLModel that changes
its serving pods, plus the runtime image.

Pure. Replicas and autoscaling are left out (scaling is not a new version); the runtime image is
in (an operator upgrade that changes the image rolls out like any new version).
Operator-wide pod defaults (`--image-pull-policy`, `--default-resources`) are not:
changing them updates every revision's pods in place, without a canary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from mlmodel_operator.spec import MLModelSpec

REVISION_LENGTH = 10


def revision_of(spec: MLModelSpec, runtime_image: str) -> str:
    serving = dataclasses.asdict(spec.serving)
    serving.pop("replicas")
    serving.pop("autoscaling")  # sizing, like replicas
    for added in ("grpc", "max_loop_lag_ms"):
        if not serving[added]:
            # Added after models were deployed: unset, the material is what it was, so
            # an operator upgrade does not roll every model out again.
            serving.pop(added)
    material: dict[str, Any] = {
        "model": dataclasses.asdict(spec.model),
        "conversion": dataclasses.asdict(spec.conversion),
        "serving": serving,
        "image": runtime_image,
    }
    if spec.rollout.evaluation is not None:
        # Its pods' init container computes the score: part of what they run.
        material["evaluation"] = dataclasses.asdict(spec.rollout.evaluation)
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]
