"""Monitoring after promotion: the stable judged against absolute limits every interval;
a breach sets Drifting (naming the metric, feature and figure) with a Warning Event and
never touches the rollout; back within limits clears it; too little data changes
nothing; a rollout pauses it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.loop import Reading
from mlmodel_operator.errors import SpecError
from mlmodel_operator.monitoring import parse_monitoring
from mlmodel_operator.operator_metrics import OperatorMetrics
from mlmodel_operator.reconcile import Observed, Plan
from tests.unit.operator.test_reconcile import (
    R1,
    R2,
    T0,
    condition,
    conversion_failed_pod,
    deployment,
    model_spec,
    run,
)

pytestmark = pytest.mark.unit

TRAINED = {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}
BASELINE = {"input[0]": TRAINED, "input[1]": TRAINED}
LIKE_TRAINING = {"0": 50.0, "1": 50.0, "2": 50.0, "3": 50.0}
SHIFTED = {"0": 0.0, "1": 0.0, "2": 20.0, "3": 180.0}


def monitored(version: str = "v1", **monitoring: Any) -> dict[str, Any]:
    """With input-drift only: these models serve no output baseline."""
    spec = model_spec(version)
    spec["monitoring"] = {"interval": "1m", "metrics": [{"name": "input-drift"}], **monitoring}
    return spec


def snapshot(requests: float, second: Mapping[str, float]) -> Snapshot:
    """The stable's cumulative counters: `requests` rows, input[1] spread as `second`."""
    return Snapshot(
        requests={"200": requests},
        inputs={"input[0]": {b: requests / 4 for b in TRAINED}, "input[1]": dict(second)},
        input_baseline=BASELINE,
    )


def add(a: Snapshot, b: Snapshot) -> Snapshot:
    return a.merge(b)


class Stable:
    """A healthy v1 with monitoring, reconciled again and again with its readings."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.observed = {R1: Observed(deployment(4))}
        first = run(spec, now_s=T0 - 120)
        self.status: Mapping[str, Any] = first.status
        self.served = Snapshot(requests={"200": 0.0}, input_baseline=BASELINE)

    def at(
        self, now_s: float, *, serve: Mapping[str, float] | None = None, rows: float = 200
    ) -> Plan:
        """Reconcile at `now_s` with a reading taken then, after serving `rows` more rows
        with input[1] spread as `serve` (None: no reading)."""
        reading = None
        if serve is not None:
            self.served = add(
                self.served, snapshot(rows, {b: v * rows / 200 for b, v in serve.items()})
            )
            reading = Reading(canary=self.served, taken_at=now_s)
        result = run(self.spec, self.status, observed=self.observed, now_s=now_s, metrics=reading)
        self.status = result.status
        return result


def test_monitoring_defaults_to_input_and_output_drift_with_absolute_limits() -> None:
    spec = parse_monitoring({})
    assert spec is not None
    assert [(m.name, m.max, m.max_increase) for m in spec.metrics] == [
        ("input-drift", 0.1, None),
        ("output-drift", 0.1, None),
    ]
    assert spec.interval_s == 60.0
    assert parse_monitoring(None) is None


@pytest.mark.parametrize(
    ("metric", "says"),
    [
        ({"name": "input-drift", "maxIncrease": 0.05}, "give absolute limits"),
        ({"name": "error-rate"}, "give absolute limits"),  # its defaults compare
        ({"name": "prediction-divergence"}, "give absolute limits"),
        ({"name": "latency-p99", "maxRatio": 2}, "give absolute limits"),
        ({"name": "request-rate"}, "needs min or max"),
        ({"name": "nonsense"}, "monitoring metric 'nonsense' is not one of"),
    ],
)
def test_a_monitoring_metric_that_compares_or_has_no_limit_is_refused(
    metric: dict[str, Any], says: str
) -> None:
    with pytest.raises(SpecError, match=says):
        parse_monitoring({"metrics": [metric]})


def test_the_stable_is_read_alone_in_the_judged_slot_and_each_interval_brings_a_reconcile() -> None:
    stable = Stable(monitored())
    first = stable.at(T0)
    assert first.read is not None
    assert (first.read.stable, first.read.canary) == ("", R1)
    assert condition(first.status, "Drifting")["reason"] == "NotJudged"
    started = stable.at(T0 + 1, serve=LIKE_TRAINING)
    assert started.read is not None
    assert started.read.due == pytest.approx(T0 + 61)
    assert started.requeue_after <= 60


def test_a_shift_sets_drifting_naming_the_feature_then_clears_and_never_rolls_back() -> None:
    stable = Stable(monitored())
    stable.at(T0)
    stable.at(T0 + 1, serve=LIKE_TRAINING)
    within = stable.at(T0 + 62, serve=LIKE_TRAINING)
    drifting = condition(within.status, "Drifting")
    assert (drifting["status"], drifting["reason"]) == ("False", "WithinLimits")
    assert within.status["monitoring"]["drifting"] is False

    shifted = stable.at(T0 + 123, serve=SHIFTED)
    drifting = condition(shifted.status, "Drifting")
    assert (drifting["status"], drifting["reason"]) == ("True", "InputDrift")
    assert "on input[1] > max 0.1" in drifting["message"]
    [event] = [e for e in shifted.events if e.reason == "Drifting"]
    assert event.type == "Warning"
    assert "never rolls back" in event.message
    # The stable serves on, untouched: same phase, same Deployment, nothing deleted.
    assert shifted.status["phase"] == "Healthy"
    assert not shifted.delete
    assert not shifted.scale
    assert shifted.status["stable"]["revision"] == R1

    still = stable.at(T0 + 184, serve=SHIFTED)
    assert condition(still.status, "Drifting")["status"] == "True"
    assert not [e for e in still.events if e.reason == "Drifting"]  # said once

    back = stable.at(T0 + 245, serve=LIKE_TRAINING)
    drifting = condition(back.status, "Drifting")
    assert (drifting["status"], drifting["reason"]) == ("False", "WithinLimits")
    assert [e.reason for e in back.events] == ["DriftResolved"]


def test_too_few_requests_change_nothing() -> None:
    stable = Stable(monitored())
    stable.at(T0)
    stable.at(T0 + 1, serve=LIKE_TRAINING)
    stable.at(T0 + 62, serve=SHIFTED)
    quiet = stable.at(T0 + 123, serve=LIKE_TRAINING, rows=10)
    drifting = condition(quiet.status, "Drifting")
    assert drifting["status"] == "True"  # too little traffic is no evidence of health
    assert quiet.status["monitoring"]["verdict"] == "Inconclusive"
    assert "fewer than minSamples 100 stable rows" in str(quiet.status["monitoring"]["metrics"])


def test_a_rollout_pauses_monitoring_and_the_new_stable_starts_afresh() -> None:
    stable = Stable(monitored())
    stable.at(T0)
    stable.at(T0 + 1, serve=LIKE_TRAINING)
    stable.at(T0 + 62, serve=SHIFTED)
    canary = run(monitored("v2"), stable.status, observed=stable.observed, now_s=T0 + 70)
    assert canary.status["canary"]["revision"] == R2
    assert canary.read is None  # no analysis in this spec: nothing is read
    assert condition(canary.status, "Drifting")["status"] == "True"  # kept from R1
    # R2 promoted: a new record, not judged yet.
    promoted = {**stable.status, "stable": {"revision": R2, "version": "v2"}, "canary": None}
    observed = {R2: Observed(deployment(4))}
    fresh = run(monitored("v2"), promoted, observed=observed, now_s=T0 + 500)
    assert fresh.status["monitoring"]["revision"] == R2
    assert condition(fresh.status, "Drifting")["reason"] == "NotJudged"


def test_the_stable_a_rolled_back_canary_left_serving_is_monitored() -> None:
    stable = Stable(monitored())
    stable.at(T0)
    broken = {**stable.observed, R2: Observed(deployment(1, ready=0), [conversion_failed_pod()])}
    rolled = run(monitored("v2"), stable.status, observed=broken, now_s=T0 + 5)
    assert rolled.status["phase"] == "RolledBack"
    assert rolled.read is not None
    assert (rolled.read.stable, rolled.read.canary) == ("", R1)


def test_a_metric_that_cannot_be_judged_says_why_before_any_verdict() -> None:
    stable = Stable(monitored(metrics=[{"name": "output-drift"}]))
    stable.at(T0)
    stable.at(T0 + 1, serve=LIKE_TRAINING)
    unjudged = stable.at(T0 + 62, serve=LIKE_TRAINING)
    drifting = condition(unjudged.status, "Drifting")
    assert (drifting["status"], drifting["reason"]) == ("False", "NotJudged")
    assert "serves no training baseline" in drifting["message"]


def test_without_monitoring_there_is_no_drifting_condition_or_record() -> None:
    stable = Stable(model_spec("v1"))
    result = stable.at(T0)
    assert "monitoring" not in result.status
    assert "Drifting" not in {c["type"] for c in result.status["conditions"]}
    assert result.read is None


def test_the_operator_metric_follows_the_condition_and_is_dropped_with_the_model() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    stable = Stable(monitored())
    stable.at(T0)
    stable.at(T0 + 1, serve=LIKE_TRAINING)
    old = stable.status
    shifted = stable.at(T0 + 62, serve=SHIFTED)
    metrics.observe("models", "iris", old, shifted.status, [])
    labels = {"namespace": "models", "name": "iris"}
    assert metrics.registry.get_sample_value("mlmodel_operator_drifting", labels) == 1.0
    value = metrics.registry.get_sample_value(
        "mlmodel_operator_monitoring_value", {**labels, "metric": "input-drift"}
    )
    assert value is not None
    assert value > 0.1
    metrics.forget("models", "iris")
    assert metrics.registry.get_sample_value("mlmodel_operator_drifting", labels) is None
