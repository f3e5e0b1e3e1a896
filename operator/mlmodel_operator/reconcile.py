"""The reconcile decision for one MLModel: desired objects, status and events.

Pure: spec, current status, what was observed of each revision, settings and
the time come in; a Plan comes out, which `controller.py` carries out. The
first revision goes straight to stable. A later revision is brought up beside
the serving stable and replaces it once fully ready; if it fails (conversion,
crash loop, progress deadline) the stable is left serving untouched, and the
failed revision is scaled to zero until the spec changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator import desired
from mlmodel_operator.conditions import Condition, merge_conditions
from mlmodel_operator.health import RevisionHealth, assess
from mlmodel_operator.revision import revision_of
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import MLModelSpec, SpecError, parse_spec

SETTLING_REQUEUE_S = 5.0
_KEPT_WHEN_INVALID = ("stable", "canary", "ready", "revision")


@dataclass(frozen=True)
class Observed:
    """A revision's Deployment (None if absent) and its Pods."""

    deployment: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float = 30.0


@dataclass(frozen=True)
class Inputs:
    ref: desired.ModelRef
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    observed: Mapping[str, Observed]  # by revision
    settings: Settings
    now: str  # RFC 3339, for conditions


def _ready_text(health: RevisionHealth) -> str:
    return f"{health.ready}/{health.desired}"


def _with_phase_event(
    inputs: Inputs, status: dict[str, Any], extra: Sequence[Event] = ()
) -> list[Event]:
    events = list(extra)
    old_phase = inputs.status.get("phase")
    new_phase = status["phase"]
    if old_phase != new_phase:
        kind = "Warning" if new_phase in ("Failed", "Degraded", "RolledBack") else "Normal"
        events.append(Event(kind, new_phase, status.get("message", "")))
    return events


def _conditions(
    inputs: Inputs, *, ready: bool, progressing: bool, degraded: bool, reason: str, message: str
) -> list[dict[str, Any]]:
    return merge_conditions(
        inputs.status.get("conditions") or (),
        [
            Condition("Ready", ready, reason if not ready else "Serving", message),
            Condition("Progressing", progressing, reason if progressing else "Settled", message),
            Condition("Degraded", degraded, reason if degraded else "AsExpected", message),
        ],
        generation=inputs.generation,
        now=inputs.now,
    )


def _invalid(inputs: Inputs, error: SpecError) -> Plan:
    message = f"invalid spec: {error}"
    status = {
        **{
            k: v for k, v in inputs.status.items() if k in ("stable", "canary", "ready", "revision")
        },
        "phase": "Failed",
        "observedGeneration": inputs.generation,
        "message": message,
        "conditions": _conditions(
            inputs,
            ready=False,
            progressing=False,
            degraded=True,
            reason="InvalidSpec",
            message=message,
        ),
    }
    events = (
        []
        if inputs.status.get("message") == message
        else [Event("Warning", "InvalidSpec", message)]
    )
    return Plan(status=status, events=events, requeue_after=inputs.settings.resync_seconds)


def plan(inputs: Inputs) -> Plan:
    try:
        spec = parse_spec(inputs.spec)
    except SpecError as error:
        return _invalid(inputs, error)
    settings, ref = inputs.settings, inputs.ref
    revision = revision_of(spec, settings.runtime_image)
    previous_stable = (inputs.status.get("stable") or {}).get("revision")
    stable = previous_stable or revision
    candidate = revision if revision != stable else None
    previous_canary = inputs.status.get("canary") or {}
    candidate_failed = bool(
        candidate and previous_canary.get("revision") == candidate and previous_canary.get("failed")
    )

    def health(rev: str) -> RevisionHealth:
        seen = inputs.observed.get(rev, Observed(None))
        return assess(seen.deployment, seen.pods)

    stable_health = health(stable)
    events: list[Event] = []
    canary_status: dict[str, Any] = {}

    if candidate and not candidate_failed:
        candidate_health = health(candidate)
        failure = candidate_health.failure
        if failure is None and candidate_health.deadline_exceeded:
            failure_message = (
                f"revision {candidate} not ready within {spec.rollout.progress_deadline_seconds}s"
            )
        else:
            failure_message = failure.message if failure else ""
        if failure_message:
            candidate_failed = True
            events.append(Event("Warning", "RevisionFailed", failure_message))
            canary_status = {
                "revision": candidate,
                "version": spec.model.version or candidate,
                "failed": True,
                "message": failure_message,
                "conversion": dict(failure.report) if failure else {},
            }
        elif candidate_health.fully_ready:
            events.append(
                Event("Normal", "Promoted", f"revision {candidate} is ready and now stable")
            )
            stable, candidate, stable_health = candidate, None, candidate_health
        else:
            canary_status = {
                "revision": candidate,
                "version": spec.model.version or candidate,
                "replicas": candidate_health.desired,
                "readyReplicas": candidate_health.ready,
            }
    elif candidate_failed:
        canary_status = dict(previous_canary)

    objects: list[dict[str, Any]] = []
    objects.extend(
        _revision_objects(
            inputs, spec if stable == revision else None, stable, "stable", spec.serving.replicas
        )
    )
    if candidate:
        replicas = 0 if candidate_failed else spec.serving.replicas
        objects.extend(_revision_objects(inputs, spec, candidate, "canary", replicas))
    objects.extend(
        desired.services(ref, stable=stable, canary=None if candidate_failed else candidate)
    )
    keep = {stable, *([candidate] if candidate else [])}
    delete = [
        ("Deployment", desired.deployment_name(ref.name, rev))
        for rev, seen in inputs.observed.items()
        if rev not in keep and seen.deployment is not None
    ]
    if spec.serving.replicas <= 1:
        delete.append(("PodDisruptionBudget", desired.deployment_name(ref.name, stable)))

    status = _status(inputs, spec, revision, stable, stable_health, canary_status)
    settled = status["phase"] in ("Healthy", "Failed") and not (candidate and not candidate_failed)
    return Plan(
        apply=objects,
        delete=delete,
        status=status,
        events=_with_phase_event(inputs, status, events),
        requeue_after=settings.resync_seconds if settled else SETTLING_REQUEUE_S,
    )


def _revision_objects(
    inputs: Inputs, spec: MLModelSpec | None, revision: str, variant: str, replicas: int
) -> list[dict[str, Any]]:
    """The Deployment (and PDB) of a revision. An older stable revision, whose spec is
    no longer at hand, is left as it was applied when it was current."""
    ref = inputs.ref
    if spec is None:
        return []
    objects = [
        desired.deployment(
            ref,
            spec,
            revision=revision,
            variant=variant,
            replicas=replicas,
            settings=inputs.settings,
        )
    ]
    if replicas > 1:
        objects.append(desired.disruption_budget(ref, revision))
    return objects


def _status(
    inputs: Inputs,
    spec: MLModelSpec,
    revision: str,
    stable: str,
    stable_health: RevisionHealth,
    canary: Mapping[str, Any],
) -> dict[str, Any]:
    previous_phase = inputs.status.get("phase")
    was_serving = previous_phase in ("Healthy", "Degraded", "Progressing", "Paused", "RolledBack")
    failure = stable_health.failure
    stable_version = (
        spec.model.version or stable
        if stable == revision
        else (inputs.status.get("stable") or {}).get("version", stable)
    )
    if stable_health.fully_ready and failure is None:
        phase, reason = "Healthy", "Serving"
        message = (
            f"revision {stable} ({stable_version}) serving, {_ready_text(stable_health)} ready"
        )
    elif failure is not None and (stable_health.ready == 0 and not was_serving):
        phase, reason, message = "Failed", failure.reason, failure.message
    elif failure is not None or stable_health.deadline_exceeded or was_serving:
        phase = "Degraded"
        reason = failure.reason if failure else "NotReady"
        message = (
            failure.message
            if failure
            else (f"revision {stable}: only {_ready_text(stable_health)} replicas ready")
        )
    else:
        phase, reason = "Deploying", "Deploying"
        message = f"revision {stable} ({stable_version}): {_ready_text(stable_health)} ready"
    if canary.get("failed"):
        phase, reason = "Failed", "RevisionFailed"
        message = f"{canary.get('message')}; revision {stable} ({stable_version}) keeps serving"
    elif canary:
        phase, reason = "Progressing", "Deploying"
        message = (
            f"revision {canary['revision']} ({canary['version']}): "
            f"{canary.get('readyReplicas', 0)}/{canary.get('replicas', 0)} ready; "
            f"revision {stable} keeps serving"
        )
    stable_status: dict[str, Any] = {
        "revision": stable,
        "version": stable_version,
        "replicas": stable_health.desired,
        "readyReplicas": stable_health.ready,
    }
    previous_stable = inputs.status.get("stable") or {}
    conversion = stable_health.conversion or (
        previous_stable.get("conversion") if previous_stable.get("revision") == stable else None
    )
    if conversion:
        stable_status["conversion"] = dict(conversion)
    if failure is not None and failure.report:
        stable_status["conversion"] = dict(failure.report)
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": inputs.generation,
        "message": message,
        "ready": _ready_text(stable_health),
        "revision": revision,
        "stable": stable_status,
        "conditions": _conditions(
            inputs,
            ready=stable_health.ready > 0 and (stable_health.fully_ready or phase != "Failed"),
            progressing=phase in ("Deploying", "Progressing"),
            degraded=phase in ("Degraded", "Failed"),
            reason=reason,
            message=message,
        ),
    }
    if canary:
        status["canary"] = dict(canary)
    return status
