"""Status wiped (a restore from a backup, a hand-edited object): the plan rebuilds the
stable from its Deployment's labels and never promotes a canary, or deletes the serving
revision, because what status said was lost."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.reconcile import Observed
from tests.unit.operator.test_reconcile import (
    R1,
    R2,
    T0,
    V1,
    V2,
    canary_at_first_step,
    deployment,
    deployments,
    run,
)

pytestmark = pytest.mark.unit


def labelled(variant: str, replicas: int, *, ready: int | None = None) -> dict[str, Any]:
    """A Deployment as the operator writes it: its variant in its labels."""
    built = deployment(replicas, ready=ready)
    built["metadata"]["labels"] = {"mlops.dev/variant": variant}
    return built


def test_a_canary_mid_rollout_starts_again_against_the_labelled_stable() -> None:
    first_step, _ = canary_at_first_step()
    assert first_step.status["canary"]["step"] == 0
    observed = {R1: Observed(labelled("stable", 3)), R2: Observed(labelled("canary", 1))}
    rebuilt = run(V2, {}, observed=observed, now_s=T0 + 30)
    assert rebuilt.status["stable"]["revision"] == R1
    assert rebuilt.status["canary"]["revision"] == R2
    assert rebuilt.status["canary"]["step"] == 0  # its steps again, from the first
    assert rebuilt.status["phase"] == "Progressing"
    assert ("Deployment", f"iris-{R1}") not in rebuilt.delete
    assert deployments(rebuilt)[f"iris-{R2}"]["metadata"]["labels"]["mlops.dev/variant"] == "canary"
    assert "Promoted" not in [e.reason for e in rebuilt.events]
    [warning] = [e for e in rebuilt.events if e.reason == "StatusRebuilt"]
    assert R1 in warning.message


def test_a_rolled_back_canary_without_pods_stays_rolled_back() -> None:
    observed = {R1: Observed(labelled("stable", 4)), R2: Observed(labelled("canary", 0))}
    rebuilt = run(V2, {}, observed=observed, now_s=T0)
    assert rebuilt.status["stable"]["revision"] == R1
    assert rebuilt.status["canary"]["aborted"] is True
    assert rebuilt.status["phase"] == "RolledBack"
    assert "retry" in rebuilt.status["message"]
    assert deployments(rebuilt)[f"iris-{R2}"]["spec"]["replicas"] == 0
    assert ("Deployment", f"iris-{R1}") not in rebuilt.delete


def test_a_serving_stable_whose_status_was_lost_just_serves() -> None:
    rebuilt = run(V1, {}, observed={R1: Observed(labelled("stable", 4))}, now_s=T0)
    assert rebuilt.status["stable"]["revision"] == R1
    assert rebuilt.status["phase"] == "Healthy"
    # Nothing was decided differently: no warning.
    assert "StatusRebuilt" not in [e.reason for e in rebuilt.events]


def test_a_labelled_stable_without_ready_pods_is_not_replaced_outright() -> None:
    """A first revision that never served is replaced without a canary; with status lost
    that cannot be known of the labelled stable (its pods may be restarting), so the new
    revision still rolls out as a canary against it."""
    observed = {R1: Observed(labelled("stable", 4, ready=0)), R2: Observed(labelled("canary", 1))}
    rebuilt = run(V2, {}, observed=observed, now_s=T0)
    assert rebuilt.status["stable"]["revision"] == R1
    assert rebuilt.status["canary"]["revision"] == R2
    assert "Replaced" not in [e.reason for e in rebuilt.events]
    assert ("Deployment", f"iris-{R1}") not in rebuilt.delete
