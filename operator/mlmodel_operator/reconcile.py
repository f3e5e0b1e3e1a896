"""The reconcile decision for one MLModel: desired objects, scales, deletions, status, events.

Pure: spec, annotations, current status, what was observed of each revision,
settings and the time come in; a Plan comes out, which `controller.py` carries
out. The first revision goes straight to stable. Every later revision is a
canary walked through the rollout steps by `rollout.advance`; on promotion it
becomes stable and the old stable is scaled away after `scaleDownDelaySeconds`.
A broken or aborted canary is rolled back and the stable keeps serving untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlmodel_operator import desired, naming, policy, rollout
from mlmodel_operator.analysis import loop as analysis_loop
from mlmodel_operator.analysis.judging import Continue, Pause, Rollback
from mlmodel_operator.analysis.spec import AnalysisSpec, parse_analysis
from mlmodel_operator.conditions import Condition, merge_conditions
from mlmodel_operator.errors import SpecError
from mlmodel_operator.health import RevisionHealth, assess
from mlmodel_operator.revision import revision_of
from mlmodel_operator.routers import Router, router_for
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import MLModelSpec

SETTLING_REQUEUE_S = 5.0
_KEPT_WHEN_BLOCKED = ("stable", "canary", "ready", "revision", "previous")


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
    scale: list[tuple[str, int]] = field(default_factory=list)  # (Deployment, replicas)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float = 30.0
    # What the analysis wants read for the next reconcile (None: no analysis is live).
    read: analysis_loop.ReadRequest | None = None


@dataclass(frozen=True)
class Inputs:
    ref: naming.ModelRef
    generation: int
    spec: MLModelSpec | SpecError  # parsed once, by the caller (`parse_or_error`)
    status: Mapping[str, Any]
    observed: Mapping[str, Observed]  # by revision
    settings: Settings
    now: str  # RFC 3339, for conditions
    now_s: float = 0.0  # Unix seconds, for the rollout clock
    annotations: Mapping[str, str] = field(default_factory=dict)
    router_available: bool = True
    # The router's object (HTTPRoute, VirtualService) as the API last returned it, if any:
    # the weight the cluster carries is read back from it, never assumed.
    route: Mapping[str, Any] | None = None
    disruption_budgets: frozenset[str] = frozenset()  # names that exist
    # What the metrics provider read this reconcile (None: analysis off or nothing read).
    metrics: analysis_loop.Reading | None = None
    # Names this MLModel would write that exist and belong to something else:
    # (kind, name) -> who holds it. Such a name is never taken over.
    taken: Mapping[tuple[str, str], str] = field(default_factory=dict)


def _ready_text(health: RevisionHealth) -> str:
    return f"{health.ready}/{health.desired}"


def _conditions(
    inputs: Inputs, *, ready: bool, progressing: bool, degraded: bool, reason: str, message: str
) -> list[dict[str, Any]]:
    return merge_conditions(
        inputs.status.get("conditions") or (),
        [
            Condition("Ready", ready, "Serving" if ready else reason, message),
            Condition("Progressing", progressing, reason if progressing else "Settled", message),
            Condition("Degraded", degraded, reason if degraded else "AsExpected", message),
        ],
        generation=inputs.generation,
        now=inputs.now,
    )


def _blocked(inputs: Inputs, reason: str, message: str) -> Plan:
    """Nothing can be done until people act: say why, change nothing else."""
    stable_ready = (inputs.status.get("stable") or {}).get("readyReplicas", 0) > 0
    status = {
        **{k: v for k, v in inputs.status.items() if k in _KEPT_WHEN_BLOCKED},
        "phase": "Failed" if reason == "InvalidSpec" else "Degraded",
        "observedGeneration": inputs.generation,
        "message": message,
        "conditions": _conditions(
            inputs,
            ready=stable_ready,
            progressing=False,
            degraded=True,
            reason=reason,
            message=message,
        ),
    }
    events = [] if inputs.status.get("message") == message else [Event("Warning", reason, message)]
    return Plan(status=status, events=events, requeue_after=inputs.settings.resync_seconds)


def plan(inputs: Inputs) -> Plan:
    spec = inputs.spec
    if isinstance(spec, SpecError):
        return _blocked(inputs, "InvalidSpec", f"invalid spec: {spec}")
    try:
        # Without an analysis section steps advance on time, health and people alone;
        # its interval is then still the length of a step without pause (default 30s).
        analysis = parse_analysis(spec.analysis) if spec.analysis else None
        interval = analysis.interval_s if analysis else parse_analysis({}).interval_s
        if analysis is not None and analysis.provider == "prometheus":
            analysis = replace(
                analysis, prometheus_url=analysis.prometheus_url or inputs.settings.prometheus_url
            )
            if not analysis.prometheus_url:
                raise SpecError(
                    "analysis.provider.prometheus has no url and the operator has no default "
                    "Prometheus (--prometheus-url)"
                )
    except SpecError as error:
        return _blocked(inputs, "InvalidSpec", f"invalid spec: {error}")
    refused = policy.violations(
        spec,
        namespace=inputs.ref.namespace,
        prometheus_url=analysis.prometheus_url if analysis else "",
        settings=inputs.settings,
    )
    if refused:
        return _blocked(
            inputs, "PolicyViolation", f"refused by the cluster's policy: {'; '.join(refused)}"
        )
    router = router_for(spec.traffic.router)
    if not inputs.router_available and router.api is not None:
        stable = (inputs.status.get("stable") or {}).get("revision")
        serving = f"revision {stable} keeps serving" if stable else "nothing is deployed"
        return _blocked(
            inputs,
            "RouterUnavailable",
            f"traffic router {router.name} needs the {router.api.kind} API "
            f"({router.api.crd}), which is not installed in this cluster; {serving}",
        )
    result = _Planner(inputs, spec, router, interval, analysis).plan()
    clashes = [
        f"{kind} {name} ({inputs.taken[(kind, name)]})"
        for kind, name in written(result)
        if (kind, name) in inputs.taken
    ]
    if clashes:
        return _blocked(
            inputs,
            "NameTaken",
            f"{'; '.join(clashes)} already exist{'s' if len(clashes) == 1 else ''} and "
            "the operator never takes over an object it did not create; rename the MLModel "
            "or remove the object. Nothing was changed",
        )
    return result


def written(result: Plan) -> list[tuple[str, str]]:
    """(kind, name) of every object a plan would create or change."""
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in result.apply]
    names.extend(("Deployment", name) for name, _ in result.scale)
    return names


class _Planner:
    """One reconcile's arithmetic, split into steps; holds no state beyond the call."""

    def __init__(
        self,
        inputs: Inputs,
        spec: MLModelSpec,
        router: Router,
        interval: float,
        analysis: AnalysisSpec | None,
    ) -> None:
        self.inputs, self.spec, self.router, self.interval = inputs, spec, router, interval
        self.analysis = analysis
        self.analysis_status: dict[str, Any] = dict(inputs.status.get("analysis") or {})
        self.analysis_due: float | None = None  # seconds until the next interval ends
        self.ref = inputs.ref
        self.revision = revision_of(spec, inputs.settings.runtime_image)
        self.version = spec.model.version or self.revision
        self.events: list[Event] = []
        self.read: analysis_loop.ReadRequest | None = None

    def health(self, revision: str) -> RevisionHealth:
        seen = self.inputs.observed.get(revision, Observed(None))
        return assess(seen.deployment, seen.pods)

    def plan(self) -> Plan:
        stable, candidate, decision, previous = self._revisions()
        aborted = decision is not None and decision.state.aborted
        weight = decision.state.weight if decision and candidate and not aborted else 0
        stable_replicas, canary_replicas = self._replicas(candidate, decision)
        # A canary being rolled back, or replaced mid-rollout, keeps its pods until the
        # stable has the replicas to take its traffic: scaling it away at once would
        # leave most of a 90% canary's requests without a pod while the stable's new
        # pods still fetch and convert.
        covered = self.health(stable).ready >= stable_replicas
        if aborted and candidate and not covered:
            canary_replicas = self._observed_replicas(candidate) or 0
        apply, scale = self._objects(
            stable, candidate, stable_replicas, canary_replicas, weight, aborted=aborted
        )
        if previous and self.inputs.now_s >= float(previous.get("deleteAfter", 0)):
            previous = {}
        new_status = self.status(stable, candidate, decision, previous)
        self.events.extend(_phase_event(self.inputs.status, new_status))
        return Plan(
            apply=apply,
            scale=scale,
            delete=self._deletions(stable, candidate, previous, stable_covered=covered),
            status=new_status,
            events=self.events,
            requeue_after=self._requeue(new_status, candidate, decision, previous),
            read=self.read if candidate else None,
        )

    def _revisions(
        self,
    ) -> tuple[str, str | None, rollout.Decision | None, dict[str, Any]]:
        """(stable, candidate, the rollout's decision, previous): which revision serves,
        which one is rolling out (None: none), and the stable replaced by a promotion
        (kept until deleteAfter), after this reconcile's rollout step."""
        status = self.inputs.status
        stable = (status.get("stable") or {}).get("revision") or self.revision
        previous: dict[str, Any] = dict(status.get("previous") or {})
        candidate = self.revision if self.revision != stable else None
        if candidate and self._never_served(stable):
            # Nothing to protect: a first revision that never became ready is replaced
            # outright, as if it had never been there.
            self.events.append(
                Event(
                    "Normal",
                    "Replaced",
                    f"revision {stable} never served; {candidate} replaces it without a canary",
                )
            )
            stable, candidate = candidate, None
        decision: rollout.Decision | None = None
        if candidate:
            decision = self.advance(candidate, stable)
            live = decision.state.step >= 0 and not decision.state.aborted
            if live and self.analysis is not None and self.read is None:
                # The canary takes traffic from this reconcile on: read at once, so the
                # first window starts with the step rather than a reconcile later.
                self.read = self._read_target(self.analysis, stable, candidate)
            if decision.promoted:
                delay = self.spec.rollout.scale_down_delay_seconds
                previous = {"revision": stable, "deleteAfter": self.inputs.now_s + delay}
                stable, candidate = candidate, None
        return stable, candidate, decision, previous

    def _replicas(
        self, candidate: str | None, decision: rollout.Decision | None
    ) -> tuple[int, int]:
        """(stable, canary) replicas: a replica split for the `replicas` router, else
        the stable keeps them all and the canary gets its weight's share (at least 1)."""
        total = self.spec.serving.replicas
        if not candidate or decision is None or decision.state.aborted:
            return total, 0
        step = decision.state.step
        target = decision.state.weight if step >= 0 else self.spec.rollout.steps[0].weight
        stable_replicas, canary_replicas = self.router.replicas(total, target)
        # Stable keeps all its replicas until the canary is ready (a surge).
        return (stable_replicas if step >= 0 else total), canary_replicas

    def _objects(
        self,
        stable: str,
        candidate: str | None,
        stable_replicas: int,
        canary_replicas: int,
        weight: int,
        *,
        aborted: bool,
    ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
        """What to apply (Deployments, Services, the router's objects, the PDB) and which
        Deployments of an earlier spec only to scale (their pod template is theirs)."""
        apply: list[dict[str, Any]] = []
        scale: list[tuple[str, int]] = []
        observed_stable = self._observed_replicas(stable)
        if stable == self.revision:
            apply.append(self.deployment(stable, "stable", stable_replicas))
        elif observed_stable is not None and observed_stable != stable_replicas:
            # A stable of an earlier spec can only be scaled; if someone deleted it there
            # is nothing to scale (its pod template is gone with it) and status says so.
            scale.append((naming.deployment_name(self.ref.name, stable), stable_replicas))
        if candidate:
            apply.append(self.deployment(candidate, "canary", canary_replicas))
        live_canary = candidate if candidate and not aborted else None
        apply.extend(desired.services(self.ref, stable=stable, canary=live_canary))
        apply.extend(
            self.router.desired(self.ref, self.spec.traffic.settings, canary_weight=weight)
        )
        if self.spec.serving.replicas > 1:
            apply.append(desired.disruption_budget(self.ref, stable))
        return apply, scale

    def _deletions(
        self,
        stable: str,
        candidate: str | None,
        previous: Mapping[str, Any],
        *,
        stable_covered: bool,
    ) -> list[tuple[str, str]]:
        """Deployments of revisions no longer kept, once the stable can take their
        traffic (a canary replaced mid-rollout still serves until then), and PDBs other
        than the stable's."""
        keep = {stable, *([candidate] if candidate else []), previous.get("revision")}
        deletions = [
            ("Deployment", naming.deployment_name(self.ref.name, rev))
            for rev, seen in self.inputs.observed.items()
            if rev not in keep and seen.deployment is not None and stable_covered
        ]
        stable_pdb = naming.deployment_name(self.ref.name, stable)
        deletions.extend(
            ("PodDisruptionBudget", name)
            for name in sorted(self.inputs.disruption_budgets)
            if name != stable_pdb or self.spec.serving.replicas <= 1
        )
        return deletions

    def _requeue(
        self,
        new_status: Mapping[str, Any],
        candidate: str | None,
        decision: rollout.Decision | None,
        previous: Mapping[str, Any],
    ) -> float:
        """Seconds until the next reconcile: soon while anything is moving (a rollout
        step, an analysis interval, a previous stable to delete), else the resync."""
        now = self.inputs.now_s
        settled = new_status["phase"] in ("Healthy", "Failed", "RolledBack") and not previous
        requeue = self.inputs.settings.resync_seconds if settled else SETTLING_REQUEUE_S
        if decision is not None:
            requeue = min(requeue, decision.requeue_after)
        if self.analysis_due is not None and candidate:
            requeue = min(requeue, max(0.2, self.analysis_due))
        if previous:
            requeue = min(requeue, max(0.5, float(previous["deleteAfter"]) - now))
        return requeue

    def _never_served(self, stable: str) -> bool:
        phase = self.inputs.status.get("phase")
        return phase in (None, "Pending", "Deploying", "Failed") and self.health(stable).ready == 0

    def _observed_replicas(self, revision: str) -> int | None:
        seen = self.inputs.observed.get(revision)
        if seen is None or seen.deployment is None:
            return None
        return int((seen.deployment.get("spec") or {}).get("replicas", 1))

    def deployment(self, revision: str, variant: str, replicas: int) -> dict[str, Any]:
        return desired.deployment(
            self.ref,
            self.spec,
            revision=revision,
            variant=variant,
            replicas=replicas,
            settings=self.inputs.settings,
        )

    def advance(self, candidate: str, stable: str) -> rollout.Decision:
        inputs, spec = self.inputs, self.spec
        state = rollout.state_from_status(inputs.status.get("canary") or {})
        if state is None or state.revision != candidate:
            if state is not None and not state.aborted:
                self.events.append(
                    Event(
                        "Normal",
                        "Restarted",
                        f"revision {candidate} replaces canary {state.revision} mid-rollout; "
                        f"starting again against stable {stable}",
                    )
                )
            state = rollout.start(candidate, self.version, inputs.now_s)
        canary, stable_health = self.health(candidate), self.health(stable)
        failure = canary.failure.message if canary.failure else ""
        if not failure and canary.deadline_exceeded:
            failure = (
                f"canary not ready within {spec.rollout.progress_deadline_seconds}s "
                f"({_ready_text(canary)} ready)"
            )
        outcome = self.analyse(state, stable)
        observation = rollout.Observation(
            canary_ready=canary.fully_ready and canary.desired > 0,
            canary_ready_text=_ready_text(canary),
            canary_failure=failure,
            stable_problem=_stable_problem(stable, stable_health),
            analysis_failure=outcome.reason if isinstance(outcome, Rollback) else "",
            analysis_hold=outcome.reason if isinstance(outcome, Pause) else "",
            analysis_pending=self.analysis is not None and not isinstance(outcome, Continue),
        )
        return rollout.advance(
            steps=spec.rollout.steps,
            progress_deadline_s=spec.rollout.progress_deadline_seconds,
            interval_s=self.interval,
            state=state,
            observed=observation,
            actions=rollout.Actions.from_annotations(inputs.annotations),
            now=inputs.now_s,
        )

    def _read_target(
        self, analysis: AnalysisSpec, stable: str, canary: str
    ) -> analysis_loop.ReadRequest:
        """What to read for this canary, wanted now (`analyse` moves `due` on)."""
        return analysis_loop.ReadRequest(
            provider=analysis.provider,
            prometheus_url=analysis.prometheus_url,
            stable=stable,
            canary=canary,
            due=self.inputs.now_s,
            interval_s=analysis.interval_s,
            custom=tuple(m for m in analysis.metrics if m.query),
            series=analysis.series,
        )

    def analyse(
        self, state: rollout.CanaryState, stable: str
    ) -> Continue | Pause | Rollback | None:
        """Judge an analysis interval when one has ended; the outcome holds until the next.
        Analysis runs only while the canary takes traffic (from step 1 until it is rolled
        back or promoted)."""
        if self.analysis is None or state.step < 0 or state.aborted:
            return None
        target = self._read_target(self.analysis, stable, state.revision)
        reading = self.inputs.metrics
        if reading is not None and reading.target not in ((), target.target):
            reading = None  # taken for other revisions (a new canary, say)
        result = analysis_loop.step(
            spec=self.analysis,
            previous=self.analysis_status,
            attempt_key=state.key,
            reading=reading,
            now=self.inputs.now_s,
            baseline=state.weight < 100,
            read_deadline_s=self.inputs.settings.metrics_timeout_seconds,
        )
        self.analysis_status = result.status
        self.analysis_due = result.due_in
        self.read = replace(target, due=result.read_due)
        if result.judged and not isinstance(result.outcome, Continue) and result.outcome:
            verdict = self.analysis_status.get("verdict", "")
            self.events.append(Event("Warning", f"Analysis{verdict}", result.outcome.reason))
        return result.outcome

    def status(
        self,
        stable: str,
        candidate: str | None,
        decision: rollout.Decision | None,
        previous: Mapping[str, Any],
    ) -> dict[str, Any]:
        inputs, spec = self.inputs, self.spec
        stable_health = self.health(stable)
        old_stable = inputs.status.get("stable") or {}
        if stable == self.revision:
            stable_version = self.version
        elif old_stable.get("revision") == stable:
            stable_version = old_stable.get("version", stable)
        else:
            stable_version = stable
        phase, reason, message = _stable_phase(inputs, stable, stable_version, stable_health)
        if decision is not None:
            self.events.extend(Event(t, r, m) for t, r, m in decision.events)
            if decision.promoted:
                message = f"{decision.message}; {message}"
            else:
                phase, message = decision.phase, decision.message
                reason = decision.phase
                if phase == "RolledBack":
                    message += f"; revision {stable} ({stable_version}) keeps serving"
        stable_status: dict[str, Any] = {
            "revision": stable,
            "version": stable_version,
            "replicas": stable_health.desired,
            "readyReplicas": stable_health.ready,
        }
        conversion = stable_health.conversion or (
            old_stable.get("conversion") if old_stable.get("revision") == stable else None
        )
        if stable_health.failure is not None and stable_health.failure.report:
            conversion = stable_health.failure.report
        if conversion:
            stable_status["conversion"] = dict(conversion)
        status: dict[str, Any] = {
            "phase": phase,
            "observedGeneration": inputs.generation,
            "message": message,
            "ready": _ready_text(stable_health),
            "revision": self.revision,
            "stable": stable_status,
            "conditions": _conditions(
                inputs,
                ready=stable_health.ready > 0,
                progressing=phase in ("Deploying", "Progressing", "Paused"),
                degraded=phase in ("Degraded", "Failed", "RolledBack"),
                reason=reason,
                message=message,
            ),
        }
        if candidate and decision is not None:
            canary = self.health(candidate)
            canary_status = rollout.state_to_status(decision.state, len(spec.rollout.steps))
            canary_status["replicas"] = canary.desired
            canary_status["readyReplicas"] = canary.ready
            effective = self.router.effective_weight(
                applied=self.inputs.route,
                stable_ready=stable_health.ready,
                canary_ready=canary.ready,
            )
            canary_status["effectiveWeight"] = 0 if effective is None else effective
            report = canary.conversion or (canary.failure.report if canary.failure else {})
            if report:
                canary_status["conversion"] = dict(report)
            status["canary"] = canary_status
        if previous:
            status["previous"] = dict(previous)
        if self.analysis_status and (candidate or decision is not None):
            status["analysis"] = self.analysis_status
        return status


def _stable_problem(stable: str, health: RevisionHealth) -> str:
    if not health.exists:
        return f"the Deployment of stable revision {stable} is missing (deleted by hand?)"
    if health.failure is not None:
        return f"the stable revision {stable} is unhealthy: {health.failure.message}"
    return ""


def _stable_phase(
    inputs: Inputs, stable: str, version: str, health: RevisionHealth
) -> tuple[str, str, str]:
    previous_phase = inputs.status.get("phase")
    was_serving = previous_phase in ("Healthy", "Degraded", "Progressing", "Paused", "RolledBack")
    failure = health.failure
    ready = _ready_text(health)
    if health.fully_ready and failure is None:
        return "Healthy", "Serving", f"revision {stable} ({version}) serving, {ready} ready"
    if failure is not None and health.ready == 0 and not was_serving:
        return "Failed", failure.reason, failure.message
    if failure is not None or health.deadline_exceeded or was_serving:
        reason = failure.reason if failure else "NotReady"
        detail = failure.message if failure else f"only {ready} replicas ready"
        return "Degraded", reason, f"revision {stable} ({version}): {detail}"
    return "Deploying", "Deploying", f"revision {stable} ({version}): {ready} ready"


def _phase_event(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    if old.get("phase") == new["phase"]:
        return []
    kind = "Warning" if new["phase"] in ("Failed", "Degraded", "RolledBack") else "Normal"
    return [Event(kind, new["phase"], new.get("message", ""))]
