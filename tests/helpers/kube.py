"""Applying manifests and reading what the operator made, through the real kubectl."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from localenv.controlplane.cluster import ControlPlane
from localenv.manifests import mlmodel
from localenv.scenario import get_json, wait_for


def apply(cluster: ControlPlane, manifest: Mapping[str, Any]) -> None:
    """`kubectl apply` one object, e.g. from `localenv.mlmodel`."""
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(dict(manifest)))


def model_status(cluster: ControlPlane, namespace: str, name: str = "iris") -> dict[str, Any]:
    status: dict[str, Any] = get_json(cluster, "mlmodel", name, "-n", namespace).get("status", {})
    return status


def wait_phase(
    cluster: ControlPlane, namespace: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    """The MLModel's status once its phase is `phase`. On a timeout the failure shows the
    last status seen, so a model stuck elsewhere says where (its phase and conditions)."""
    seen: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        seen.clear()
        seen.update(model_status(cluster, namespace, name))
        return dict(seen) if seen.get("phase") == phase else None

    try:
        status: dict[str, Any] = wait_for(probe, timeout=timeout, what=f"{name} to be {phase}")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; its status then: {seen}") from None
    return status


def wait_healthy(
    cluster: ControlPlane,
    namespace: str,
    version: str,
    *,
    name: str = "iris",
    timeout: float = 90,
    interval: float = 0.25,
) -> dict[str, Any]:
    """The status once `version` is the Healthy stable and no canary is left."""
    status: dict[str, Any] = wait_for(
        lambda: (
            (s := model_status(cluster, namespace, name)).get("phase") == "Healthy"
            and (s.get("stable") or {}).get("version") == version
            and "canary" not in s
            and s
        ),
        timeout=timeout,
        interval=interval,
        what=f"{version} to be the healthy stable",
    )
    return status


def deployments(cluster: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(cluster, "deployments", "-n", namespace)["items"]
    return items


def events_for(cluster: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(
        cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return items


def v2_paused_over_v1(
    cluster: ControlPlane, namespace: str, spec: Mapping[str, Any]
) -> tuple[str, str]:
    """MLModel iris v1 (with `spec`) serving, then v2 paused at its first step (the spec's
    first step must pause); (v1's revision, v2's)."""
    apply(cluster, mlmodel("iris", namespace, version="v1", **spec))
    v1 = str(wait_healthy(cluster, namespace, "v1")["stable"]["revision"])
    apply(cluster, mlmodel("iris", namespace, version="v2", **spec))
    paused: dict[str, Any] = wait_for(
        lambda: (s := model_status(cluster, namespace)).get("phase") == "Paused" and s,
        what="the canary paused at its first step",
    )
    return v1, str(paused["canary"]["revision"])
