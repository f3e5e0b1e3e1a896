"""The operator's own metrics follow what each reconcile wrote."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mlmodel_operator.kube import resource_of
from mlmodel_operator.operator_metrics import OperatorMetrics

pytestmark = pytest.mark.unit


def value(registry: CollectorRegistry, series: str, **labels: str) -> float | None:
    return registry.get_sample_value(series, labels)


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


def test_revisions_carry_their_role_and_leave_when_they_stop_serving() -> None:
    """The join series a dashboard splits the runtime's series by: a promoted canary is
    the stable at once, and its canary series is gone rather than 0."""
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    canary = {"phase": "Progressing", "stable": {"revision": "a1"}, "canary": {"revision": "b2"}}
    metrics.observe("ns", "iris", {}, canary, [])
    labels = {"namespace": "ns", "name": "iris"}
    assert value(registry, "mlmodel_operator_revision", **labels, revision="a1", role="stable") == 1
    assert value(registry, "mlmodel_operator_revision", **labels, revision="b2", role="canary") == 1
    promoted = {"phase": "Healthy", "stable": {"revision": "b2"}}
    metrics.observe("ns", "iris", canary, promoted, ["Promoted"])
    assert value(registry, "mlmodel_operator_revision", **labels, revision="b2", role="stable") == 1
    exposition = generate_latest(registry).decode()
    assert 'revision="a1"' not in exposition
    assert 'role="canary"' not in exposition


def test_the_last_judged_figures_are_exported_by_metric_and_side() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    judged = {
        "phase": "Progressing",
        "analysis": {
            "interval": 3,
            "verdict": "Pass",
            "metrics": [
                {"name": "error-rate", "stable": 0.0, "canary": 0.02, "verdict": "Pass"},
                {"name": "prediction-divergence", "stable": None, "canary": 0.31},
            ],
        },
    }
    metrics.observe("ns", "iris", {}, judged, [])
    labels = {"namespace": "ns", "name": "iris"}
    get = "mlmodel_operator_analysis_value"
    assert value(registry, get, **labels, metric="error-rate", side="canary") == 0.02
    assert value(registry, get, **labels, metric="error-rate", side="stable") == 0.0
    assert value(registry, get, **labels, metric="prediction-divergence", side="canary") == 0.31
    # A side with no figure is no series (not a 0 that would read as "no divergence").
    assert value(registry, get, **labels, metric="prediction-divergence", side="stable") is None
    # A status without analysis (a new rollout, a deleted block) leaves no stale figure.
    metrics.observe("ns", "iris", judged, {"phase": "Healthy"}, [])
    assert value(registry, get, **labels, metric="error-rate", side="canary") is None
    assert value(registry, get, **labels, metric="prediction-divergence", side="canary") is None


def test_outcome_and_verdict_counters_start_at_zero_for_increase() -> None:
    """`increase()` over a window needs the series before its first step: every outcome
    and verdict exists at 0 from the first reconcile of a model on."""
    registry = CollectorRegistry()
    OperatorMetrics(registry).observe("ns", "iris", {}, {"phase": "Healthy"}, [])
    labels = {"namespace": "ns", "name": "iris"}
    for outcome in ("Promoted", "RolledBack"):
        assert value(registry, "mlmodel_operator_rollouts_total", **labels, outcome=outcome) == 0
    for verdict in ("Pass", "Fail", "Inconclusive"):
        assert (
            value(registry, "mlmodel_operator_analysis_verdicts_total", **labels, verdict=verdict)
            == 0
        )


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/apps/v1/namespaces/ns/deployments/iris-abc", "deployments"),
        ("/apis/mlops.dev/v1alpha1/namespaces/ns/mlmodels/iris/status", "mlmodels"),
        ("/api/v1/namespaces/ns/events", "events"),
        ("/api/v1/namespaces/ns/pods?labelSelector=a%3Db", "pods"),
        (
            "/apis/mlops.dev/v1alpha1/clustermlmodelanalysistemplates/standard",
            "clustermlmodelanalysistemplates",
        ),
        ("/api/v1/namespaces/ns", "namespaces"),
    ],
)
def test_api_requests_are_counted_by_resource_not_by_object(path: str, resource: str) -> None:
    """The counter's labels stay a small set: a request names its resource, never the
    object or its namespace."""
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.api_request("PATCH", resource_of(path), 200)
    metrics.api_request("PATCH", resource_of(path), 200)
    assert (
        value(
            registry,
            "mlmodel_operator_api_requests_total",
            method="PATCH",
            resource=resource,
            code="200",
        )
        == 2
    )
