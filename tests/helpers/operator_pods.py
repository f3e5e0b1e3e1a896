"""What every installation of the operator on the real node must show of its pods,
however it was installed (`kubectl apply -k manifests/` or the Helm chart)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localenv.realnode import NODE_NAME


def assert_operator_pods_run(pods: Sequence[Mapping[str, Any]], leader: str) -> None:
    """Two ready operator pods on the real node, from the project's image, run by
    containerd, one of them holding the Lease (by its own name, POD_NAME from the
    downward API)."""
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    assert leader in {p["metadata"]["name"] for p in pods}, leader
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] is True, status
        assert status["containerID"].startswith("containerd://"), status
        assert status["image"].endswith("mlmodel-operator:0.1.0"), status
