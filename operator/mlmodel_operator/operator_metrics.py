"""The operator's own Prometheus metrics, served on /metrics beside /healthz.

A registry made by the caller (no global registry mutated at import time). The
controller records each reconcile through `observe`, from the status it wrote.

Two series exist for dashboards (examples/grafana/) rather than for alerts:
`mlmodel_operator_revision` says which revision is the stable and which the canary, so
the runtime's series (labelled by revision only) can be split by role in PromQL; and
`mlmodel_operator_analysis_value` carries the figures the last judged interval compared,
so a dashboard shows what the operator decided on rather than a recomputation of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("Promoted", "RolledBack")
VERDICTS = ("Pass", "Fail", "Inconclusive")
PRIORITIES = ("urgent", "normal", "resync")  # controller.Priority, lower-cased
STAGES = ("read", "decide", "write")
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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
        # Where a reconcile's time goes, for a person deciding what to raise
        # (docs/operations.md): the wait for a worker (more --workers), the event loop
        # (CPU), or the API server's answers (the read and write stages).
        self.queue_wait = Histogram(
            "mlmodel_operator_queue_wait_seconds",
            "Time from a model being due (a change seen, a requeue's timer) to a worker "
            "starting its reconcile, by priority (urgent, normal, resync)",
            ["priority"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.requeue_lateness = Histogram(
            "mlmodel_operator_requeue_lateness_seconds",
            "How late a requeue's timer fired after it was due (the event loop busy)",
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.reconcile_stage = Histogram(
            "mlmodel_operator_reconcile_stage_seconds",
            "Time of one stage of a reconcile: read (the model and its children, up to "
            "the decision), decide (the pure plan), write (applies, deletes, status, Events)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        # Every series from the start, so that a rate over them reads 0, not nothing.
        for priority in PRIORITIES:
            self.queue_wait.labels(priority)
        for stage in STAGES:
            self.reconcile_stage.labels(stage)
        self.phase = Gauge(
            "mlmodel_operator_phase",
            "1 for the MLModel's current phase",
            ["namespace", "name", "phase"],
            registry=registry,
        )
        self.revision = Gauge(
            "mlmodel_operator_revision",
            "1 for each revision serving the MLModel, by role (stable, canary)",
            ["namespace", "name", "revision", "role"],
            registry=registry,
        )
        self.analysis_value = Gauge(
            "mlmodel_operator_analysis_value",
            "A figure the last judged analysis interval compared, by metric and side",
            ["namespace", "name", "metric", "side"],
            registry=registry,
        )
        self.drifting = Gauge(
            "mlmodel_operator_drifting",
            "1 while monitoring finds the stable outside its limits (the Drifting "
            "condition), 0 within them; absent without spec.monitoring",
            ["namespace", "name"],
            registry=registry,
        )
        self.monitoring_value = Gauge(
            "mlmodel_operator_monitoring_value",
            "The stable's figure in the last judged monitoring interval, by metric",
            ["namespace", "name", "metric"],
            registry=registry,
        )
        self.api_requests = Counter(
            "mlmodel_operator_api_requests_total",
            "Requests the operator's client sent to the Kubernetes API, by method, "
            "resource and status code (kopf's watch streams are not counted)",
            ["method", "resource", "code"],
            registry=registry,
        )
        self.watch_expired = Counter(
            "mlmodel_operator_watch_expired_total",
            "Watches the API server ended with 410 Gone (their resource version was too "
            "old), each followed by a list of every object, by resource",
            ["resource"],
            registry=registry,
        )
        # Per model, the label values each gauge holds now: what a change must zero or
        # drop, and what `forget` removes.
        self._phases: dict[tuple[str, str], set[str]] = {}
        self._revisions: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._values: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._monitored: dict[tuple[str, str], set[str]] = {}

    def observe(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        reasons: list[str],
    ) -> None:
        """Record what one reconcile changed: its events' reasons and the new status."""
        if (namespace, name) not in self._phases:
            self._create_counters(namespace, name)
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
        self._set_revisions(namespace, name, new)
        self._set_values(namespace, name, analysis)
        self._set_monitoring(namespace, name, new.get("monitoring") or {})

    def api_request(self, method: str, resource: str, status: int) -> None:
        self.api_requests.labels(method, resource, str(status)).inc()

    def watch_expiry(self, resource: str) -> None:
        self.watch_expired.labels(resource).inc()

    def _create_counters(self, namespace: str, name: str) -> None:
        """Every outcome and verdict at 0 from the first sight of a model: `increase()`
        cannot see a counter's first step if the series starts at 1, so a dashboard's
        first promotion would read 0."""
        for outcome in OUTCOMES:
            self.rollouts.labels(namespace, name, outcome)
        for verdict in VERDICTS:
            self.verdicts.labels(namespace, name, verdict)

    def _set_revisions(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        now: set[tuple[str, str]] = set()
        for role in ("stable", "canary"):
            revision = (status.get(role) or {}).get("revision")
            if revision:
                now.add((str(revision), role))
        held = self._revisions.setdefault((namespace, name), set())
        # Dropped rather than zeroed: a revision that is no longer the canary must leave
        # PromQL joins on it, not stay in them with a 0.
        for revision, role in held - now:
            _remove(self.revision, namespace, name, revision, role)
        for revision, role in now:
            self.revision.labels(namespace, name, revision, role).set(1)
        self._revisions[(namespace, name)] = now

    def _set_values(self, namespace: str, name: str, analysis: Mapping[str, Any]) -> None:
        now: dict[tuple[str, str], float] = {}
        for result in analysis.get("metrics") or ():
            for side in ("stable", "canary"):
                figure = result.get(side)
                if isinstance(figure, (int, float)):
                    now[(str(result.get("name", "")), side)] = float(figure)
        held = self._values.setdefault((namespace, name), set())
        for metric, side in held - set(now):
            _remove(self.analysis_value, namespace, name, metric, side)
        for (metric, side), figure in now.items():
            self.analysis_value.labels(namespace, name, metric, side).set(figure)
        self._values[(namespace, name)] = set(now)

    def _set_monitoring(self, namespace: str, name: str, monitoring: Mapping[str, Any]) -> None:
        """An alert on drift is `mlmodel_operator_drifting == 1`: set from the condition's
        state in status, and dropped (not zeroed) when monitoring is off or not judged."""
        drifting = monitoring.get("drifting")
        if isinstance(drifting, bool):
            self.drifting.labels(namespace, name).set(1 if drifting else 0)
        else:
            _remove(self.drifting, namespace, name)
        now: dict[str, float] = {}
        for result in monitoring.get("metrics") or ():
            figure = result.get("canary")  # the judged side, which monitoring fills
            if isinstance(figure, (int, float)):
                now[str(result.get("name", ""))] = float(figure)
        held = self._monitored.setdefault((namespace, name), set())
        for metric in held - set(now):
            _remove(self.monitoring_value, namespace, name, metric)
        for metric, figure in now.items():
            self.monitoring_value.labels(namespace, name, metric).set(figure)
        self._monitored[(namespace, name)] = set(now)

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
        for revision, role in self._revisions.pop((namespace, name), set()):
            _remove(self.revision, namespace, name, revision, role)
        for metric, side in self._values.pop((namespace, name), set()):
            _remove(self.analysis_value, namespace, name, metric, side)
        _remove(self.drifting, namespace, name)
        for metric in self._monitored.pop((namespace, name), set()):
            _remove(self.monitoring_value, namespace, name, metric)
        for outcome in OUTCOMES:
            _remove(self.rollouts, namespace, name, outcome)
        for verdict in VERDICTS:
            _remove(self.verdicts, namespace, name, verdict)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never recorded: nothing to drop
        metric.remove(*labels)
