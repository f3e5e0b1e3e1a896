"""The operator's own metrics follow what each reconcile wrote."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mlmodel_operator.operator_metrics import OperatorMetrics

pytestmark = pytest.mark.unit


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def test_rollouts_weights_verdicts_and_phases_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    progressing = {
        "phase": "Progressing",
        "canary": {"weight": 25},
        "analysis": {"interval": 1, "verdict": "Pass"},
    }
    metrics.observe("ns", "iris", {"phase": "Healthy"}, progressing, ["StepStarted"])
    assert value(registry, "mlmodel_operator_canary_weight", namespace="ns", name="iris") == 25
    assert (
        value(
            registry,
            "mlmodel_operator_analysis_verdicts_total",
            namespace="ns",
            name="iris",
            verdict="Pass",
        )
        == 1
    )
    # The same interval seen again is not counted twice.
    metrics.observe("ns", "iris", progressing, progressing, [])
    assert (
        value(
            registry,
            "mlmodel_operator_analysis_verdicts_total",
            namespace="ns",
            name="iris",
            verdict="Pass",
        )
        == 1
    )

    rolled_back = {"phase": "RolledBack", "canary": {"weight": 0, "aborted": True}}
    metrics.observe("ns", "iris", progressing, rolled_back, ["AnalysisFailed", "RolledBack"])
    assert (
        value(
            registry,
            "mlmodel_operator_rollouts_total",
            namespace="ns",
            name="iris",
            outcome="RolledBack",
        )
        == 1
    )
    assert value(registry, "mlmodel_operator_canary_weight", namespace="ns", name="iris") == 0
    assert (
        value(registry, "mlmodel_operator_phase", namespace="ns", name="iris", phase="RolledBack")
        == 1
    )
    assert (
        value(registry, "mlmodel_operator_phase", namespace="ns", name="iris", phase="Progressing")
        == 0
    )


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    OperatorMetrics(first).observe("ns", "a", {}, {"phase": "Healthy"}, ["Promoted"])
    OperatorMetrics(second)
    assert (
        value(
            second, "mlmodel_operator_rollouts_total", namespace="ns", name="a", outcome="Promoted"
        )
        is None
    )


def test_a_new_leader_reports_the_phase_it_finds_without_a_change() -> None:
    """After a failover the new leader's registry is empty; status already says Healthy."""
    registry = CollectorRegistry()
    OperatorMetrics(registry).observe("ns", "iris", {"phase": "Healthy"}, {"phase": "Healthy"}, [])
    labels = {"namespace": "ns", "name": "iris", "phase": "Healthy"}
    assert value(registry, "mlmodel_operator_phase", **labels) == 1


def test_a_deleted_models_series_are_dropped() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    progressing = {"phase": "Progressing", "canary": {"weight": 25}}
    metrics.observe("ns", "iris", {"phase": "Healthy"}, progressing, ["Promoted"])
    metrics.observe("ns", "other", {}, {"phase": "Healthy"}, [])
    metrics.forget("ns", "iris")
    exposition = generate_latest(registry).decode()
    assert 'name="iris"' not in exposition
    assert 'name="other"' in exposition
    metrics.forget("ns", "never-seen")  # nothing to drop is fine
