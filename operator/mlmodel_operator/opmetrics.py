"""The operator's own Prometheus metrics, served on /metrics beside /healthz.

A registry made by the caller (no global registry mutated at import time). The
controller records each reconcile through `observe`, from the status it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rollouts = Counter(
            "mlmodel_operator_rollouts_total",
            "Finished rollouts by outcome (Promoted, RolledBack)",
            ["namespace", "name", "outcome"],
            registry=registry,
        )
        self.canary_weight = Gauge(
            "mlmodel_operator_canary_weight",
            "Canary traffic weight in percent as last written (0 without a rollout)",
            ["namespace", "name"],
            registry=registry,
        )
        self.verdicts = Counter(
            "mlmodel_operator_analysis_verdicts_total",
            "Judged analysis intervals by verdict (Pass, Fail, Inconclusive)",
            ["namespace", "name", "verdict"],
            registry=registry,
        )
        self.reconcile = Histogram(
            "mlmodel_operator_reconcile_duration_seconds",
            "Time of one reconcile of one MLModel",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.phase = Gauge(
            "mlmodel_operator_phase",
            "1 for the MLModel's current phase",
            ["namespace", "name", "phase"],
            registry=registry,
        )

    def observe(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        reasons: list[str],
    ) -> None:
        """Record what one reconcile changed: its events' reasons and the new status."""
        for reason in reasons:
            if reason in ("Promoted", "RolledBack"):
                self.rollouts.labels(namespace, name, reason).inc()
        canary = new.get("canary") or {}
        weight = 0 if canary.get("aborted") else int(canary.get("weight", 0))
        self.canary_weight.labels(namespace, name).set(weight)
        before = int((old.get("analysis") or {}).get("interval", 0))
        analysis = new.get("analysis") or {}
        if int(analysis.get("interval", 0)) > before and analysis.get("verdict"):
            self.verdicts.labels(namespace, name, analysis["verdict"]).inc()
        if old.get("phase") != new.get("phase"):
            if old.get("phase"):
                self.phase.labels(namespace, name, old["phase"]).set(0)
            self.phase.labels(namespace, name, new.get("phase", "")).set(1)
