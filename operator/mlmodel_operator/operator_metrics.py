"""The operator's own Prometheus metrics, served on /metrics beside /healthz.

A registry made by the caller (no global registry mutated at import time). The
controller records each reconcile through `observe`, from the status it wrote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("Promoted", "RolledBack")
VERDICTS = ("Pass", "Fail", "Inconclusive")


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
        self._phases: dict[tuple[str, str], set[str]] = {}

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
            if reason in OUTCOMES:
                self.rollouts.labels(namespace, name, reason).inc()
        canary = new.get("canary") or {}
        weight = 0 if canary.get("aborted") else int(canary.get("weight", 0))
        self.canary_weight.labels(namespace, name).set(weight)
        before = int((old.get("analysis") or {}).get("interval", 0))
        analysis = new.get("analysis") or {}
        if int(analysis.get("interval", 0)) > before and analysis.get("verdict"):
            self.verdicts.labels(namespace, name, analysis["verdict"]).inc()
        # Every reconcile sets the phase, not only a change of it: a new leader starts
        # with an empty registry and must report the phases it finds.
        self._set_phase(namespace, name, str(new.get("phase", "")))

    def _set_phase(self, namespace: str, name: str, phase: str) -> None:
        seen = self._phases.setdefault((namespace, name), set())
        for other in seen - {phase}:
            self.phase.labels(namespace, name, other).set(0)
        self.phase.labels(namespace, name, phase).set(1)
        seen.add(phase)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted MLModel, so an operator that has seen thousands
        come and go does not export (and keep in memory) series for each of them."""
        for phase in self._phases.pop((namespace, name), set()):
            _remove(self.phase, namespace, name, phase)
        _remove(self.canary_weight, namespace, name)
        for outcome in OUTCOMES:
            _remove(self.rollouts, namespace, name, outcome)
        for verdict in VERDICTS:
            _remove(self.verdicts, namespace, name, verdict)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never recorded: nothing to drop
        metric.remove(*labels)
