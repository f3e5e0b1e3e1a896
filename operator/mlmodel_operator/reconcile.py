"""The reconcile decision for one MLModel: desired objects, scales, deletions, status, events,
when to look again and what to read before then.

Pure: the parsed spec, annotations, the status an earlier reconcile wrote, what was
observed of each revision and of the router's object, the latest metrics reading,
settings and the time come in; a `Plan` comes out whole, and `controller.py` carries it
out as it is. The decision is a pipeline of small functions passing values along (no
object collects state on the side):

    _context        the spec checked against policies and the cluster (or a blocked plan)
    _revisions      which revision is stable, which one rolls out, which one is kept
                    after a promotion; the canary's step (`rollout.advance`) and its
                    analysis (`analysis.loop.step`) happen here
    _replicas       how many pods each revision runs
    _deletions      Deployments and PDBs no longer wanted, once the stable can serve
    _objects        Deployments, Services, the router's objects (over `_backends`), the
                    PDB, the HPA; scales and replicas handed over to the HPA
    _monitor        the stable judged against `spec.monitoring` while no canary rolls out
    _status         the typed `Status` (serialised once, in `Status.to_dict`)
    _requeue        seconds until the next reconcile

The first revision goes straight to stable. Every later revision is a canary walked
through the rollout steps; on promotion it becomes stable and the old stable is
scaled away `scaleDownDelaySeconds` after the data plane let go of it (the gateway
reported the route as written, the `-stable` and `-canary` Services' EndpointSlices no
longer list its pods: `_still_routed`). A broken or aborted canary is rolled back and
the stable keeps serving untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlmodel_operator import (
    desired,
    gates,
    history,
    monitoring,
    naming,
    ownership,
    policy,
    quality,
    rollout,
)
from mlmodel_operator.analysis.judging import Continue, Pause, Rollback
from mlmodel_operator.analysis.loop import AnalysisRecord, Reading, ReadRequest, step
from mlmodel_operator.analysis.spec import AnalysisSpec
from mlmodel_operator.conditions import Condition, merge_conditions
from mlmodel_operator.errors import SpecError
from mlmodel_operator.gates import Call as WebhookCall
from mlmodel_operator.health import RevisionHealth, assess
from mlmodel_operator.revision import revision_of
from mlmodel_operator.routers import Backends, Router, apis_of, gatewayapi, router_for
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import Autoscaling, MLModelSpec
from mlmodel_operator.status import (
    CanaryStatus,
    ConditionType,
    Phase,
    PreviousStable,
    RevisionStatus,
    Status,
)
from mlmodel_operator.webhooks import Answer

SETTLING_REQUEUE_S = 5.0
# A revision traffic left keeps its pods past `scaleDownDelaySeconds` while it may still be
# routed (`_still_routed`), looked at again this often, for at most this long.
ROUTED_RECHECK_S = 2.0
ROUTED_HOLD_MAX_S = 300.0
DEFAULT_STEP_INTERVAL_S = AnalysisSpec().interval_s  # a step without pause, without analysis


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
    # Autoscaled Deployments whose replicas the operator's apply owns, with the count to
    # hand over to the HPA (`desired.replicas_handover`), before `apply` lets go of them.
    handover: list[tuple[str, int]] = field(default_factory=list)  # (revision, replicas)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: float = 30.0
    # What the analysis wants read for the next reconcile (None: no analysis is live).
    read: ReadRequest | None = None
    # Webhook gates asked (answers awaited) and notifications to send once.
    gates: tuple[WebhookCall, ...] = ()
    notifications: tuple[WebhookCall, ...] = ()


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
    autoscalers: frozenset[str] = frozenset()  # HorizontalPodAutoscalers' names that exist
    # The router's objects this MLModel controls, (kind, name), as listed.
    routes: frozenset[tuple[str, str]] = frozenset()
    # The latest reading of the metrics reader (None: analysis off or nothing read yet).
    metrics: Reading | None = None
    # Names this MLModel would write that exist and belong to something else:
    # (kind, name) -> who holds it. Such a name is never taken over.
    taken: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # The controllerName of the GatewayClass of each parent Gateway the gatewayAPI router
    # attaches to, as far as readable (read only when the rollout has mirror steps).
    gateway_controllers: tuple[str, ...] = ()
    # Why the analysis the spec names cannot be had (its template is missing or
    # unreadable; `analysis.templates.missing`), or "": a canary then holds, unpromoted.
    analysis_problem: str = ""
    # The webhook caller's answers to this model's gate calls, by key (`gates.key_of`).
    webhook_answers: Mapping[str, Answer] = field(default_factory=dict)
    # Pods the `<name>-stable` and `<name>-canary` Services' EndpointSlices list (None:
    # not read, when no revision is being retired).
    routed_pods: frozenset[str] | None = None
    # The Services this MLModel controls, by name, as listed.
    services: frozenset[str] = frozenset()
    # The per-revision Services (`<name>-<revision>`) whose EndpointSlices list a ready
    # pod (None: not read, with a router that does not split by revision).
    ready_backends: frozenset[str] | None = None


# --- the context every step reads ----------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What every step of one plan reads; nothing in it changes during the plan."""

    inputs: Inputs
    spec: MLModelSpec
    router: Router
    analysis: AnalysisSpec | None  # with its Prometheus URL resolved
    monitoring: monitoring.MonitoringSpec | None  # the same
    before: Status  # what an earlier reconcile wrote
    revision: str  # the revision the spec asks for
    version: str

    @property
    def ref(self) -> naming.ModelRef:
        return self.inputs.ref

    @property
    def now(self) -> float:
        return self.inputs.now_s

    @property
    def step_interval_s(self) -> float:
        """How long a step without pause lasts: one analysis interval."""
        return self.analysis.interval_s if self.analysis else DEFAULT_STEP_INTERVAL_S

    def health(self, revision: str) -> RevisionHealth:
        seen = self.inputs.observed.get(revision, Observed(None))
        return assess(seen.deployment, seen.pods)

    def observed_replicas(self, revision: str) -> int | None:
        seen = self.inputs.observed.get(revision)
        if seen is None or seen.deployment is None:
            return None
        return int((seen.deployment.get("spec") or {}).get("replicas", 1))

    @property
    def autoscaling(self) -> Autoscaling | None:
        return self.spec.serving.autoscaling

    @property
    def disruption_budget_wanted(self) -> bool:
        """A PDB of maxUnavailable 1 protects a revision that can run more than one pod
        (one pod alone would make a drain wait forever)."""
        serving = self.spec.serving
        most = serving.autoscaling.max_replicas if serving.autoscaling else serving.replicas
        return most > 1


def _context(inputs: Inputs) -> _Context | Plan:
    """The spec checked against what can be known before any decision: a spec error, the
    administrator's policies, the router's API. Any of them blocks the plan."""
    spec = inputs.spec
    if isinstance(spec, SpecError):
        return _blocked(inputs, "InvalidSpec", f"invalid spec: {spec}")
    # A Prometheus provider without a url reads the operator's own (--prometheus-url).
    default_url = inputs.settings.prometheus_url
    analysis, monitor = spec.analysis, spec.monitoring
    if analysis is not None and analysis.provider == "prometheus" and not analysis.prometheus_url:
        analysis = replace(analysis, prometheus_url=default_url)
    if monitor is not None and monitor.provider == "prometheus" and not monitor.prometheus_url:
        monitor = replace(monitor, prometheus_url=default_url)
    for where, wanted in (("rollout.analysis", analysis), ("monitoring", monitor)):
        if wanted is not None and wanted.provider == "prometheus" and not wanted.prometheus_url:
            return _blocked(
                inputs,
                "InvalidSpec",
                f"invalid spec: {where}.provider.prometheus has no url and the operator "
                "has no default Prometheus (--prometheus-url)",
            )
    scaling = spec.serving.autoscaling
    if scaling is not None and scaling.cpu_utilization is not None:
        requests = (spec.serving.resources or inputs.settings.default_resources).get("requests")
        if "cpu" not in (requests or {}):
            return _blocked(
                inputs,
                "InvalidSpec",
                "invalid spec: serving.autoscaling.cpuUtilization is a share of the serving "
                "pods' CPU request, and they request none: set serving.resources.requests.cpu",
            )
    refused = policy.violations(
        spec,
        namespace=inputs.ref.namespace,
        prometheus_urls=[m.prometheus_url for m in (analysis, monitor) if m is not None],
        settings=inputs.settings,
    )
    if refused:
        return _blocked(
            inputs, "PolicyViolation", f"refused by the cluster's policy: {'; '.join(refused)}"
        )
    before = Status.from_dict(inputs.status)
    router = router_for(spec.traffic.router)
    stable = before.stable.revision if before.stable else ""
    serving = f"revision {stable} keeps serving" if stable else "nothing is deployed"
    if not inputs.router_available and apis_of(router):
        needed = " and ".join(f"the {api.kind} API ({api.crd})" for api in apis_of(router))
        return _blocked(
            inputs,
            "RouterUnavailable",
            f"traffic router {router.name} needs {needed}, which this cluster does not "
            f"serve; {serving}",
        )
    mirrors = any(step.mirror for step in spec.rollout.steps)
    if mirrors and isinstance(router, gatewayapi.GatewayApiRouter):
        # Written anyway, the route would fail every request on such a Gateway.
        refusal = gatewayapi.mirror_refusal(inputs.gateway_controllers)
        if refusal:
            return _blocked(inputs, "RouterCannotMirror", f"{refusal}; {serving}")
    revision = revision_of(spec, inputs.settings.runtime_image)
    return _Context(
        inputs=inputs,
        spec=spec,
        router=router,
        analysis=analysis,
        monitoring=monitor,
        before=before,
        revision=revision,
        version=spec.model.version or revision,
    )


def plan(inputs: Inputs) -> Plan:
    ctx = _context(inputs)
    if isinstance(ctx, Plan):
        return ctx
    revisions = _revisions(ctx)
    stable_replicas, canary_replicas = _replicas(ctx, revisions)
    # A canary being rolled back, or replaced mid-rollout, keeps its pods until the
    # stable has the replicas to take its traffic: scaling it away at once would leave
    # most of a 90% canary's requests without a pod while the stable's new pods still
    # fetch and convert.
    covered = ctx.health(revisions.stable).ready >= stable_replicas
    draining = _draining_until(ctx, revisions)
    if revisions.aborted and revisions.candidate and (not covered or draining is not None):
        canary_replicas = ctx.observed_replicas(revisions.candidate) or 0
    deletions = _deletions(ctx, revisions, stable_covered=covered and draining is None)
    apply, scale, handover = _objects(
        ctx, revisions, stable_replicas, canary_replicas, _kept(ctx, revisions, deletions)
    )
    monitored = _monitor(ctx, revisions)
    status = _status(ctx, revisions, monitored)
    events = [*revisions.events, *_phase_event(ctx.before.phase, status)]
    read = revisions.canary.read if revisions.canary and revisions.candidate else None
    if monitored is not None:
        events.extend(Event(*event) for event in monitored.events)
        read = monitored.read
    requeue = _requeue(ctx, revisions, status, draining)
    if monitored is not None:
        requeue = min(requeue, max(0.5, monitored.due_in))
    result = Plan(
        apply=apply,
        scale=scale,
        handover=handover,
        delete=[
            *deletions,
            *_no_longer_written(
                inputs.routes | {("Service", name) for name in inputs.services}, apply
            ),
        ],
        status=status.to_dict(),
        events=events,
        requeue_after=requeue,
        read=read,
        gates=revisions.canary.gates if revisions.canary else (),
        notifications=revisions.canary.notifications if revisions.canary else (),
    )
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


# --- which revisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _CanaryStep:
    """The canary's rollout step this reconcile, and its analysis."""

    decision: rollout.Decision
    analysis: AnalysisRecord | None  # status.analysis after this reconcile
    analysis_due: float | None  # seconds until the current interval ends
    read: ReadRequest | None
    events: tuple[Event, ...]
    gates: tuple[WebhookCall, ...] = ()
    notifications: tuple[WebhookCall, ...] = ()


@dataclass(frozen=True)
class _Replaced:
    """A stable a promotion replaced, kept until its own `delete_after`; `held`: past
    its delay, or about to be, but still routed (`_still_routed`), so looked at again
    every ROUTED_RECHECK_S rather than at `delete_after`."""

    stable: PreviousStable
    held: bool = False


@dataclass(frozen=True)
class _Revisions:
    stable: str
    candidate: str | None  # rolling out (None: none, or just promoted)
    canary: _CanaryStep | None  # the step taken (also when it promoted the candidate)
    events: tuple[Event, ...]
    # The promoted-away stables still kept, newest first: status.previous is the first,
    # status.retiring the rest (each with the delay its own promotion gave it).
    replaced: tuple[_Replaced, ...] = ()

    @property
    def previous(self) -> PreviousStable | None:
        return self.replaced[0].stable if self.replaced else None

    @property
    def retiring(self) -> tuple[PreviousStable, ...]:
        return tuple(kept.stable for kept in self.replaced[1:])

    @property
    def aborted(self) -> bool:
        return self.canary is not None and self.canary.decision.state.aborted

    @property
    def weight(self) -> int:
        """The canary weight the route carries from now on."""
        if self.canary is None or self.candidate is None or self.aborted:
            return 0
        return self.canary.decision.state.weight

    @property
    def mirror(self) -> int:
        """The share of requests the route copies to the canary from now on."""
        if self.canary is None or self.candidate is None or self.aborted:
            return 0
        return self.canary.decision.state.mirror


def _never_served(ctx: _Context, stable: str) -> bool:
    phase = ctx.before.phase
    return phase in (None, Phase.PENDING, Phase.DEPLOYING, Phase.FAILED) and (
        ctx.health(stable).ready == 0
    )


def _revisions(ctx: _Context) -> _Revisions:
    """Which revision serves, which one is rolling out, and the stable replaced by a
    promotion, after this reconcile's rollout step."""
    before = ctx.before
    events: list[Event] = []
    labelled = _labelled_stable(ctx) if before.stable is None else None
    if before.stable is not None:
        stable = before.stable.revision
    elif labelled is not None:
        # Status was lost (a restore from a backup, a hand-edited object): the stable is
        # the one its Deployment's labels name, never the spec's revision by default,
        # which would promote a canary unjudged and delete the serving revision.
        stable = labelled
    else:
        stable = ctx.revision
    if labelled is not None and labelled != ctx.revision:
        events.append(
            Event(
                "Warning",
                "StatusRebuilt",
                f"status was lost; revision {stable} is the stable again, as its "
                "Deployment's labels say (a canary starts its steps again)",
            )
        )
    replaced = _replaced_kept(ctx, before.previous, before.retiring)
    candidate: str | None = ctx.revision if ctx.revision != stable else None
    if candidate and labelled is None and _never_served(ctx, stable):
        # Nothing to protect: a first revision that never became ready is replaced
        # outright, as if it had never been there. (With status lost, whether the
        # labelled stable ever served is unknown: it is protected.)
        events.append(
            Event(
                "Normal",
                "Replaced",
                f"revision {stable} never served; {candidate} replaces it without a canary",
            )
        )
        stable, candidate = candidate, None
    if candidate is None:
        return _Revisions(stable, None, None, tuple(events), replaced)
    canary = _advance(ctx, candidate, stable)
    events.extend(canary.events)
    if canary.decision.promoted:
        delay = ctx.spec.rollout.scale_down_delay_seconds
        # The stables replaced before keep their own delays behind the one replaced now
        # (less the revision promoted now: a revert to it).
        now_replaced = PreviousStable(
            revision=stable, delete_after=ctx.now + delay, replaced_at=ctx.now
        )
        older = tuple(r for r in replaced if r.stable.revision not in (stable, candidate))
        return _Revisions(candidate, None, canary, tuple(events), (_Replaced(now_replaced), *older))
    return _Revisions(stable, candidate, canary, tuple(events), replaced)


def _labelled_stable(ctx: _Context) -> str | None:
    """The revision whose Deployment is labelled the stable one (the one with most ready
    pods if, against the operator's own writes, several are), or None."""
    labelled = [
        revision
        for revision, seen in ctx.inputs.observed.items()
        if seen.deployment is not None
        and ((seen.deployment.get("metadata") or {}).get("labels") or {}).get(naming.VARIANT_LABEL)
        == "stable"
    ]
    if not labelled:
        return None
    return max(sorted(labelled), key=lambda revision: ctx.health(revision).ready)


def _rolled_back_before_status_was_lost(ctx: _Context, candidate: str) -> bool:
    """A canary Deployment without pods while status is lost: the operator runs a live
    canary with at least one pod, so it had been rolled back (or drained after it)."""
    seen = ctx.inputs.observed.get(candidate)
    if ctx.before.stable is not None or seen is None or seen.deployment is None:
        return False
    labels = (seen.deployment.get("metadata") or {}).get("labels") or {}
    replicas = (seen.deployment.get("spec") or {}).get("replicas", 1)
    return labels.get(naming.VARIANT_LABEL) == "canary" and replicas == 0


def _previous_kept(
    ctx: _Context, previous: PreviousStable | None
) -> tuple[PreviousStable | None, bool]:
    """The stable a promotion replaced, as this reconcile keeps it (None: its time is up),
    and whether it is held because it may still be routed.

    `scaleDownDelaySeconds` counts from when the data plane let go of it, not from the
    promotion: while it may still be routed (`_still_routed`), its `delete_after` moves
    to now plus the delay, so a gateway that takes the new route late still has the
    whole delay to drain its connections."""
    if previous is None:
        return None, False
    delay = ctx.spec.rollout.scale_down_delay_seconds
    replaced = previous.replaced_at
    if replaced is None:  # a status from before the field: fixed from now on
        replaced = previous.delete_after - delay
        previous = replace(previous, replaced_at=replaced)
    if _still_routed(ctx, previous.revision, replaced + delay + ROUTED_HOLD_MAX_S):
        return replace(previous, delete_after=max(previous.delete_after, ctx.now + delay)), True
    return (previous if ctx.now < previous.delete_after else None), False


def _replaced_kept(
    ctx: _Context, previous: PreviousStable | None, retiring: tuple[PreviousStable, ...]
) -> tuple[_Replaced, ...]:
    """`_previous_kept` for every stable a promotion replaced, newest first: each keeps
    the delay it was given, as Argo Rollouts keeps a scale-down deadline per ReplicaSet,
    and each is held for as long as it itself may still be routed."""
    kept = []
    for older in (*([previous] if previous is not None else []), *retiring):
        still, held = _previous_kept(ctx, older)
        if still is not None:
            kept.append(_Replaced(still, held))
    return tuple(kept)


def _still_routed(ctx: _Context, revision: str, hold_until: float) -> bool:
    """Whether a revision traffic has left may still be sent some: until `hold_until`,
    while the gateway has not reported the route as it now is (`gatewayapi.behind`), or
    the `-stable` or `-canary` Service's EndpointSlices still list one of its pods.

    The delay alone assumes the data plane follows the API within it. It does not after
    kube-apiserver restarts: kube-controller-manager and the gateway are refused (403)
    until the server's RBAC is loaded, and their reflectors back off, for up to a minute
    after restarts close together. A soak saw the stable Service's endpoints, and then
    the gateway's own view, name a deleted pod for a minute, and the gateway send the
    stable's share there. Pods still routed still serve, so nothing is lost by waiting;
    the wait is bounded so that a gateway or controller that never catches up cannot
    keep old revisions forever."""
    seen = ctx.inputs.observed.get(revision)
    if seen is None or not seen.pods or ctx.now >= hold_until:
        return False
    if gatewayapi.behind(ctx.inputs.route):
        return True
    routed = ctx.inputs.routed_pods
    if routed is None:
        return False
    return any((pod.get("metadata") or {}).get("name") in routed for pod in seen.pods)


def _draining_until(ctx: _Context, revisions: _Revisions) -> float | None:
    """Until when a canary that no longer takes traffic keeps its pods (None: it need
    not), with a router that moves traffic by a route (gatewayAPI, istio).

    A rolled-back canary, or one replaced by a newer revision, gets weight 0 and its
    pods are wanted no more; but the data plane follows the route a moment after the
    API does (Traefik reloads at most every 2 s, Envoy after istiod pushes), and a pod
    gone before then turns what the stale route still sends it into 503s. So its pods
    stay for `scaleDownDelaySeconds` after it left, as the old stable's do after a
    promotion, and longer while it may still be routed (`_still_routed`). With the
    replicas router scaling down is the traffic shift itself, and serve's shutdown delay
    covers the endpoints' lag."""
    if ctx.router.api is None or revisions.canary is None:
        return None
    state = revisions.canary.decision.state
    # A new canary's start is when the one it replaced (if any) left the route.
    left = state.aborted_at if state.aborted else state.started_at
    until = left + ctx.spec.rollout.scale_down_delay_seconds
    if ctx.now < until:
        return until
    retiring = [
        revision
        for revision in ctx.inputs.observed
        if revision != revisions.stable and (revision != revisions.candidate or revisions.aborted)
    ]
    if any(_still_routed(ctx, revision, until + ROUTED_HOLD_MAX_S) for revision in retiring):
        return ctx.now + ROUTED_RECHECK_S
    return None


def _ready_text(health: RevisionHealth) -> str:
    return f"{health.ready}/{health.desired}"


def _stable_problem(stable: str, health: RevisionHealth) -> str:
    if not health.exists:
        return f"the Deployment of stable revision {stable} is missing (deleted by hand?)"
    if health.failure is not None:
        return f"the stable revision {stable} is unhealthy: {health.failure.message}"
    return ""


def _advance(ctx: _Context, candidate: str, stable: str) -> _CanaryStep:
    """The canary's next rollout step, from its state in status, what was observed of it
    and the stable, its analysis, and people's actions."""
    spec = ctx.spec
    events: list[Event] = []
    state = ctx.before.canary.state if ctx.before.canary else None
    if state is None or state.revision != candidate:
        if state is not None and not state.aborted:
            events.append(
                Event(
                    "Normal",
                    "Restarted",
                    f"revision {candidate} replaces canary {state.revision} mid-rollout; "
                    f"starting again against stable {stable}",
                )
            )
        state = rollout.start(candidate, ctx.version, ctx.now)
        if _rolled_back_before_status_was_lost(ctx, candidate):
            state = replace(
                state,
                aborted=True,
                aborted_at=ctx.now,
                message="status was lost and the canary had no pods, as a rolled-back one "
                "has: it stays rolled back (kubectl mlmodel retry rolls it out again)",
            )
    canary, stable_health = ctx.health(candidate), ctx.health(stable)
    failure = canary.failure.message if canary.failure else ""
    if not failure and canary.deadline_exceeded:
        failure = (
            f"canary not ready within {spec.rollout.progress_deadline_seconds}s "
            f"({_ready_text(canary)} ready)"
        ) + (f"; {canary.retrying}" if canary.retrying else "")
    refused = quality.refusal(
        spec.rollout.evaluation,
        canary.conversion,
        stable_health.conversion or _kept_report(ctx, stable),
        canary_ready=canary.ready > 0,
    )
    analysis = _analyse(ctx, state, stable)
    outcome = analysis.record.outcome if analysis else None
    events.extend(analysis.events if analysis else ())
    unrouted = _not_yet_routable(ctx, candidate)
    observation = rollout.Observation(
        canary_ready=canary.fully_ready and canary.desired > 0 and not unrouted,
        canary_ready_text=_ready_text(canary),
        canary_waiting=canary.retrying or unrouted,
        canary_failure=failure,
        evaluation_failure=refused,
        stable_problem=_stable_problem(stable, stable_health),
        analysis_failure=outcome.reason if isinstance(outcome, Rollback) else "",
        # Without the analysis it names, a canary is held however its own fields judge
        # it: promoting it would skip the checks its authors chose.
        analysis_hold=ctx.inputs.analysis_problem
        or (outcome.reason if isinstance(outcome, Pause) else ""),
        analysis_pending=bool(ctx.inputs.analysis_problem)
        or (ctx.analysis is not None and not isinstance(outcome, Continue)),
    )
    actions = rollout.Actions.from_annotations(ctx.inputs.annotations)
    gated = gates.gate(
        rollout.advance(
            steps=spec.rollout.steps,
            progress_deadline_s=spec.rollout.progress_deadline_seconds,
            interval_s=ctx.step_interval_s,
            state=state,
            observed=observation,
            actions=actions,
            now=ctx.now,
        ),
        before=state,
        hooks=spec.rollout.webhooks,
        answers=ctx.inputs.webhook_answers,
        person_promoted=actions.promote in (f"{state.key}/full", f"{state.key}/{state.step}"),
        ctx=_hook_context(ctx, stable),
    )
    decision = gated.decision
    events.extend(Event(t, r, m) for t, r, m in decision.events)
    read = analysis.read if analysis else None
    live = decision.state.step >= 0 and not decision.state.aborted
    if live and ctx.analysis is not None and read is None:
        # The canary takes traffic from this reconcile on: read at once, so the first
        # window starts with the step rather than a reconcile later.
        read = _read_request(ctx.analysis, stable, candidate, due=ctx.now)
    return _CanaryStep(
        decision=decision,
        analysis=analysis.record if analysis else ctx.before.analysis,
        analysis_due=analysis.due_in if analysis else None,
        read=read,
        events=tuple(events),
        gates=gated.gates,
        notifications=gated.notifications,
    )


def _hook_context(ctx: _Context, stable: str) -> gates.Context:
    return gates.Context(
        name=ctx.ref.name,
        namespace=ctx.ref.namespace,
        stable=stable,
        steps=len(ctx.spec.rollout.steps),
        now=ctx.now,
    )


def _kept_report(ctx: _Context, revision: str) -> Mapping[str, Any] | None:
    """The conversion report status keeps for `revision` as the stable (its pods may be
    restarting, and a new pod's report is not read yet)."""
    before = ctx.before.stable
    return before.conversion if before is not None and before.revision == revision else None


@dataclass(frozen=True)
class _Analysed:
    record: AnalysisRecord
    due_in: float
    read: ReadRequest
    events: tuple[Event, ...]


def _read_request(analysis: AnalysisSpec, stable: str, canary: str, *, due: float) -> ReadRequest:
    return ReadRequest(
        provider=analysis.provider,
        prometheus_url=analysis.prometheus_url,
        stable=stable,
        canary=canary,
        due=due,
        interval_s=analysis.interval_s,
        custom=tuple(m for m in analysis.metrics if m.query),
        series=analysis.series,
    )


def _analyse(ctx: _Context, state: rollout.CanaryState, stable: str) -> _Analysed | None:
    """Judge an analysis interval when one has ended; the outcome holds until the next.
    Analysis runs only while the canary takes traffic (from step 1 until it is rolled
    back or promoted)."""
    if ctx.analysis is None or state.step < 0 or state.aborted:
        return None
    target = _read_request(ctx.analysis, stable, state.revision, due=ctx.now)
    reading = ctx.inputs.metrics
    if reading is not None and reading.target not in ((), target.target):
        reading = None  # taken for other revisions (a new canary, say)
    progress = step(
        spec=ctx.analysis,
        previous=ctx.before.analysis,
        attempt_key=state.key,
        reading=reading,
        now=ctx.now,
        baseline=state.weight < 100,
        read_deadline_s=ctx.inputs.settings.metrics_timeout_seconds,
    )
    events: tuple[Event, ...] = ()
    outcome = progress.outcome
    if progress.judged and outcome is not None and not isinstance(outcome, Continue):
        verdict = progress.record.state.last_verdict
        events = (Event("Warning", f"Analysis{verdict}", outcome.reason),)
    read = replace(target, due=progress.read_due)
    hooks = [hook for hook in ctx.spec.rollout.webhooks if hook.type == "rollout"]
    if hooks and progress.read_due >= progress.record.window_start + ctx.analysis.interval_s:
        # The reading that ends the interval asks the rollout webhooks, judged with it.
        number = progress.record.state.intervals + 1
        read = replace(
            read,
            webhooks=tuple(
                (
                    hook,
                    gates.body_of(
                        hook,
                        _hook_context(ctx, stable),
                        state,
                        phase="Progressing",
                        message=f"analysis interval {number}",
                    ),
                )
                for hook in hooks
            ),
        )
    return _Analysed(record=progress.record, due_in=progress.due_in, read=read, events=events)


# --- objects -----------------------------------------------------------------------------------


def _pinned(ctx: _Context, revision: str) -> str:
    """The sha256 of the model file `revision` pinned: kept from status once known, else
    the one its first converted pod reports. Later pods of the revision must fetch those
    very bytes (an object overwritten at the same URI is refused, not served unseen)."""
    before = ctx.before
    if before.stable is not None and before.stable.revision == revision and before.stable.digest:
        return before.stable.digest
    canary = before.canary
    if canary is not None and canary.state.revision == revision and canary.digest:
        return canary.digest
    report = ctx.health(revision).conversion or {}
    return str((report.get("source") or {}).get("sha256", ""))


def _pins(ctx: _Context, revisions: _Revisions) -> dict[str, str]:
    live = [revisions.stable, *([revisions.candidate] if revisions.candidate else [])]
    return {revision: digest for revision in live if (digest := _pinned(ctx, revision))}


def _stable_size(ctx: _Context, revisions: _Revisions) -> int:
    """The stable's replicas: `serving.replicas`, or with autoscaling what the HPA set last
    (the count its Deployment asks for; `minReplicas` before it exists)."""
    if ctx.autoscaling is None:
        return ctx.spec.serving.replicas
    observed = ctx.observed_replicas(revisions.stable)
    return ctx.autoscaling.min_replicas if observed is None else observed


def _replicas(ctx: _Context, revisions: _Revisions) -> tuple[int, int]:
    """(stable, canary) replicas: the router maps the weight to replicas; the stable keeps
    all of them until the canary is ready (a surge). With autoscaling the canary follows
    the stable's current size times its weight, and at the last step runs the stable's
    whole size: the promotion that follows hands it all traffic and the HPA, and a
    promoted canary smaller than the stable it replaces would be a dip in capacity."""
    total = _stable_size(ctx, revisions)
    if revisions.candidate is None or revisions.canary is None or revisions.aborted:
        return total, 0
    state = revisions.canary.decision.state
    # A shadow step's copies load the canary as much as that share of traffic would.
    steps = ctx.spec.rollout.steps
    first = steps[0]
    target = max(state.weight, state.mirror) if state.step >= 0 else max(first.weight, first.mirror)
    stable_replicas, canary_replicas = ctx.router.replicas(total, target)
    if ctx.autoscaling is not None and state.step == len(steps) - 1:
        canary_replicas = total
    if state.step < 0:
        return total, canary_replicas
    # Within a step too, the stable gives up a pod only for a ready canary pod: a step's
    # scale-up takes a minute on a real node (fetch, convert, load the model), and the
    # stable must serve meanwhile instead of dropping to the step's share at once.
    canary_ready = min(ctx.health(revisions.candidate).ready, canary_replicas)
    return max(stable_replicas, total - canary_ready), canary_replicas


def _deployment(ctx: _Context, revision: str, variant: str, replicas: int | None) -> dict[str, Any]:
    return desired.deployment(
        ctx.ref,
        ctx.spec,
        revision=revision,
        variant=variant,
        replicas=replicas,
        settings=ctx.inputs.settings,
    )


def _objects(
    ctx: _Context,
    revisions: _Revisions,
    stable_replicas: int,
    canary_replicas: int,
    kept: tuple[str, ...],
) -> tuple[list[dict[str, Any]], list[tuple[str, int]], list[tuple[str, int]]]:
    """What to apply (Deployments, Services, the router's objects, the PDB, the HPA),
    which Deployments of an earlier spec only to scale (their pod template is theirs),
    and which autoscaled stable to hand over to the HPA first. `kept`: the revisions
    whose Deployments stay after this plan (each has its own Service with a router that
    splits by revision)."""
    stable, candidate = revisions.stable, revisions.candidate
    apply: list[dict[str, Any]] = []
    scale: list[tuple[str, int]] = []
    handover: list[tuple[str, int]] = []
    observed_stable = ctx.observed_replicas(stable)
    if stable == ctx.revision:
        replicas, handover = _stable_sizing(ctx, revisions, stable_replicas)
        apply.append(_deployment(ctx, stable, "stable", replicas))
    elif ctx.autoscaling is not None:
        pass  # the HPA sizes it, whichever spec made it
    elif observed_stable is not None and observed_stable != stable_replicas:
        # A stable of an earlier spec can only be scaled; if someone deleted it there is
        # nothing to scale (its pod template is gone with it) and status says so.
        scale.append((naming.deployment_name(ctx.ref.name, stable), stable_replicas))
    if candidate:
        apply.append(_deployment(ctx, candidate, "canary", canary_replicas))
    live_canary = candidate if candidate and not revisions.aborted else None
    apply.extend(
        desired.services(
            ctx.ref,
            stable=stable,
            canary=live_canary,
            grpc=ctx.spec.serving.grpc,
            revisions=kept if ctx.router.splits_by_revision else (),
        )
    )
    apply.extend(
        ctx.router.desired(
            ctx.ref,
            ctx.spec.traffic.settings,
            canary_weight=revisions.weight,
            mirror=revisions.mirror,
            backends=_backends(ctx, revisions),
        )
    )
    if ctx.disruption_budget_wanted:
        apply.append(desired.disruption_budget(ctx.ref, stable))
    if pins := _pins(ctx, revisions):
        apply.append(desired.digest_pins(ctx.ref, pins))
    if ctx.autoscaling is not None and observed_stable is not None:
        # Once the stable exists: an HPA pointed at a Deployment not created yet would
        # only report that it cannot find it.
        apply.append(desired.autoscaler(ctx.ref, ctx.autoscaling, stable))
    return apply, scale, handover


def _stable_sizing(
    ctx: _Context, revisions: _Revisions, stable_replicas: int
) -> tuple[int | None, list[tuple[str, int]]]:
    """The replicas of the stable's apply (None: left out, the HPA's) and its hand-over.

    Without autoscaling: `stable_replicas`. An autoscaled stable is created at its first
    size. While the operator's own apply still owns its replicas (it created it, or ran
    it as the canary), the apply first sizes it to the larger of its own size and that
    of the stable it was promoted over (so the HPA takes over a stable as big as the last
    one); once it has that size, a hand-over manager claims the field at that very value
    (no conflict, no force: the documented hand-over) and the apply leaves it out. After
    that the HPA alone writes it."""
    scaling, stable = ctx.autoscaling, revisions.stable
    seen = ctx.inputs.observed.get(stable)
    if scaling is None or seen is None or seen.deployment is None:
        return stable_replicas, []
    if not ownership.applies_field(seen.deployment, naming.FIELD_MANAGER, ("spec", "replicas")):
        return None, []
    current = ctx.observed_replicas(stable) or scaling.min_replicas
    wanted = current
    if revisions.previous is not None:
        wanted = max(wanted, ctx.observed_replicas(revisions.previous.revision) or 0)
    wanted = min(max(wanted, scaling.min_replicas), scaling.max_replicas)
    if wanted != current:
        return wanted, []
    return None, [(stable, current)]


def _deletions(
    ctx: _Context, revisions: _Revisions, *, stable_covered: bool
) -> list[tuple[str, str]]:
    """Deployments of revisions no longer kept, once the stable can take their traffic (a
    canary replaced mid-rollout still serves until then), and PDBs other than the
    stable's."""
    keep = {revisions.stable, revisions.candidate}
    keep.update(kept.stable.revision for kept in revisions.replaced)
    deletions = [
        ("Deployment", naming.deployment_name(ctx.ref.name, revision))
        for revision, seen in ctx.inputs.observed.items()
        if revision not in keep and seen.deployment is not None and stable_covered
    ]
    stable_pdb = naming.deployment_name(ctx.ref.name, revisions.stable)
    deletions.extend(
        ("PodDisruptionBudget", name)
        for name in sorted(ctx.inputs.disruption_budgets)
        if name != stable_pdb or not ctx.disruption_budget_wanted
    )
    if ctx.autoscaling is None:
        deletions.extend(
            ("HorizontalPodAutoscaler", name) for name in sorted(ctx.inputs.autoscalers)
        )
    return deletions


def _kept(
    ctx: _Context, revisions: _Revisions, deletions: list[tuple[str, str]]
) -> tuple[str, ...]:
    """The revisions whose Deployments stay after this plan: the stable, the candidate,
    and every other one not deleted now (a previous stable, a canary draining)."""
    deleted = {name for kind, name in deletions if kind == "Deployment"}
    kept = {revisions.stable, *([revisions.candidate] if revisions.candidate else [])}
    kept.update(
        revision
        for revision, seen in ctx.inputs.observed.items()
        if seen.deployment is not None
        and naming.deployment_name(ctx.ref.name, revision) not in deleted
    )
    return tuple(sorted(kept))


def _backends(ctx: _Context, revisions: _Revisions) -> Backends:
    """The Services the route splits over. A router that splits by revision gets each
    revision's own Service once a gateway can use it (`_own_backend`), else the variant
    Service selecting the same pods, with the own one staged at weight 0; without a live
    canary, the stable's alone."""
    variants = Backends.variants(ctx.ref.name)
    if not ctx.router.splits_by_revision:
        return variants
    live = revisions.candidate if revisions.candidate and not revisions.aborted else None
    stable, canary, staged = variants.stable, variants.canary, []
    for revision in (revisions.stable, *([live] if live else [])):
        name, state = desired.revision_service(ctx.ref.name, revision), _own_backend(ctx, revision)
        if state == "use" and revision == revisions.stable:
            stable = name
        elif state == "use":
            canary = name
        elif state == "stage":
            staged.append(name)
    if live is None and stable != variants.stable:
        canary = None
    return Backends(stable, canary, tuple(staged))


def _own_backend(ctx: _Context, revision: str) -> str:
    """Whether the route may send the revision's share to its own Service ("use"), may
    list it at weight 0 for the gateway to load ("stage"), or neither yet ("").

    In use once the route sends it traffic, or lists it and the gateway reports every
    backend loaded (`gatewayapi.resolved`). Staged once its EndpointSlices list a ready
    pod: a Service created moments ago has none, and a gateway whose caches lag the API
    (after control-plane restarts, for seconds) answers 500 or 503 for a share sent to a
    Service it has not loaded. Until then the variant Service, which selects the same
    pods, carries the share: after an operator upgrade, and for every new revision."""
    name = desired.revision_service(ctx.ref.name, revision)
    route = ctx.inputs.route
    weights = gatewayapi.split_weights(route)
    if weights.get(name, 0) > 0 or (name in weights and gatewayapi.resolved(route)):
        return "use"
    ready = ctx.inputs.ready_backends
    if name in weights or (ready is not None and name in ready):
        return "stage"
    return ""


def _not_yet_routable(ctx: _Context, revision: str) -> str:
    """Why a canary whose pods serve cannot take its share yet (the rollout waits, as for
    its pods, within the progress deadline), or "".

    With a router that splits by revision, a canary's share goes to its own Service only
    once the gateway has loaded it (`_own_backend`), never through `<name>-canary`: that
    Service's selector has just moved from the revision before, and in a soak a gateway
    whose caches lagged after API server restarts sent `-canary`'s share to the
    rolled-back canary's deleted pod for 18 s. Without the EndpointSlices (no RBAC to
    list them), there is nothing to wait for."""
    if not ctx.router.splits_by_revision or ctx.inputs.ready_backends is None:
        return ""
    if _own_backend(ctx, revision) == "use":
        return ""
    name = desired.revision_service(ctx.ref.name, revision)
    return f"the gateway has not yet loaded its Service {name}"


def _no_longer_written(
    owned: frozenset[tuple[str, str]], apply: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """The objects of these (kind, name) that the plan no longer writes: the GRPCRoute of
    a model whose traffic.gatewayAPI.grpc was turned off, the Service of a revision whose
    Deployment is gone (or of every revision, once the router no longer splits by
    revision)."""
    written_now = {(obj["kind"], obj["metadata"]["name"]) for obj in apply}
    return sorted(owned - written_now)


# --- monitoring ----------------------------------------------------------------------------


def _monitor(ctx: _Context, revisions: _Revisions) -> monitoring.Monitored | None:
    """The stable judged against `spec.monitoring`, when it serves and no canary takes
    traffic (None: monitoring is off or waits; status keeps what it last judged). A
    rolled-back canary stays in status until the spec changes, which may be days: the
    stable it left serving is monitored meanwhile."""
    if ctx.monitoring is None or (revisions.candidate is not None and not revisions.aborted):
        return None
    if ctx.health(revisions.stable).ready == 0:
        return None
    return monitoring.monitor(
        ctx.monitoring,
        ctx.before.monitoring,
        revision=revisions.stable,
        reading=ctx.inputs.metrics,
        now=ctx.now,
        read_deadline_s=ctx.inputs.settings.metrics_timeout_seconds,
    )


def _drifting(
    ctx: _Context, stable: str, monitored: monitoring.Monitored | None
) -> Condition | None:
    """The Drifting condition (None without spec.monitoring)."""
    if ctx.monitoring is None:
        return None
    if monitored is not None:
        return monitored.record.condition()
    before = ctx.before.monitoring
    if before is not None and before.revision == stable:
        return before.condition()
    return Condition(
        ConditionType.DRIFTING,
        False,
        "NotJudged",
        f"monitoring of revision {stable} starts once it serves with no rollout under way",
    )


# --- status --------------------------------------------------------------------------------


def _conditions(
    inputs: Inputs,
    *,
    ready: bool,
    progressing: bool,
    degraded: bool,
    reason: str,
    message: str,
    drifting: Condition | None = None,
) -> tuple[dict[str, Any], ...]:
    wanted = [
        Condition(ConditionType.READY, ready, "Serving" if ready else reason, message),
        Condition(
            ConditionType.PROGRESSING,
            progressing,
            reason if progressing else "Settled",
            message,
        ),
        Condition(ConditionType.DEGRADED, degraded, reason if degraded else "AsExpected", message),
    ]
    if drifting is not None:
        wanted.append(drifting)
    return tuple(
        merge_conditions(
            inputs.status.get("conditions") or (),
            wanted,
            generation=inputs.generation,
            now=inputs.now,
        )
    )


def _blocked(inputs: Inputs, reason: str, message: str) -> Plan:
    """Nothing can be done until people act: say why, change nothing else."""
    before = Status.from_dict(inputs.status)
    phase = Phase.FAILED if reason == "InvalidSpec" else Phase.DEGRADED
    status = Status(
        phase=phase,
        observed_generation=inputs.generation,
        message=message,
        ready=before.ready,
        revision=before.revision,
        stable=before.stable,
        canary=before.canary,
        previous=before.previous,
        retiring=before.retiring,
        monitoring=before.monitoring,
        history=before.history,
        conditions=_conditions(
            inputs,
            ready=before.stable is not None and before.stable.ready_replicas > 0,
            progressing=False,
            degraded=True,
            reason=reason,
            message=message,
            # What monitoring last judged still holds while nothing can be done.
            drifting=before.monitoring.condition() if before.monitoring else None,
        ),
    )
    events = [] if before.message == message else [Event("Warning", reason, message)]
    return Plan(
        status=status.to_dict(), events=events, requeue_after=inputs.settings.resync_seconds
    )


def _stable_phase(
    before: Phase | None,
    stable: str,
    version: str,
    health: RevisionHealth,
    autoscaled: bool = False,
) -> tuple[Phase, str, str]:
    """The stable's phase, reason and message. `autoscaled`: while the stable serves
    (a pod ready) and nothing failed within its progress deadline, pods its HPA added
    and not ready yet are growth, not degradation: the HPA scales up as load rises (or
    to a minReplicas just raised), and each scale-up would otherwise flip the model to
    Degraded, a GitOps tool's health with it, until the new pods serve. A scale-up
    that never completes meets the Deployment's progress deadline: Degraded."""
    was_serving = before in (
        Phase.HEALTHY,
        Phase.DEGRADED,
        Phase.PROGRESSING,
        Phase.PAUSED,
        Phase.ROLLED_BACK,
    )
    failure = health.failure
    ready = _ready_text(health)
    if health.fully_ready and failure is None:
        return Phase.HEALTHY, "Serving", f"revision {stable} ({version}) serving, {ready} ready"
    growing = autoscaled and health.exists and health.ready > 0
    if growing and failure is None and not health.deadline_exceeded:
        return (
            Phase.HEALTHY,
            "Serving",
            f"revision {stable} ({version}) serving, {ready} ready (scaled up by its HPA)",
        )
    if failure is not None and health.ready == 0 and not was_serving:
        return Phase.FAILED, failure.reason, failure.message
    if failure is not None or health.deadline_exceeded or was_serving:
        reason = failure.reason if failure else "NotReady"
        detail = failure.message if failure else f"only {ready} replicas ready"
        return Phase.DEGRADED, reason, f"revision {stable} ({version}): {detail}"
    retrying = f"; {health.retrying}" if health.retrying else ""
    return Phase.DEPLOYING, "Deploying", f"revision {stable} ({version}): {ready} ready{retrying}"


def _stable_version(ctx: _Context, stable: str) -> str:
    if stable == ctx.revision:
        return ctx.version
    before = ctx.before.stable
    return before.version if before is not None and before.revision == stable else stable


def _status(ctx: _Context, revisions: _Revisions, monitored: monitoring.Monitored | None) -> Status:
    stable, candidate = revisions.stable, revisions.candidate
    stable_health = ctx.health(stable)
    version = _stable_version(ctx, stable)
    autoscaled = ctx.autoscaling is not None
    phase, reason, message = _stable_phase(
        ctx.before.phase, stable, version, stable_health, autoscaled
    )
    decision = revisions.canary.decision if revisions.canary else None
    if decision is not None:
        if decision.promoted:
            message = f"{decision.message}; {message}"
        else:
            phase, message = Phase(decision.phase), decision.message
            reason = decision.phase
            if phase is Phase.ROLLED_BACK:
                message += f"; revision {stable} ({version}) keeps serving"
    before_stable = ctx.before.stable
    conversion = stable_health.conversion or (
        before_stable.conversion
        if before_stable is not None and before_stable.revision == stable
        else None
    )
    if stable_health.failure is not None and stable_health.failure.report:
        conversion = stable_health.failure.report
    canary: CanaryStatus | None = None
    if candidate and decision is not None:
        health = ctx.health(candidate)
        effective = ctx.router.effective_weight(
            applied=ctx.inputs.route,
            stable_ready=stable_health.ready,
            canary_ready=health.ready,
            backends=Backends(
                desired.revision_service(ctx.ref.name, stable),
                desired.revision_service(ctx.ref.name, candidate),
            )
            if ctx.router.splits_by_revision
            else None,
        )
        canary = CanaryStatus(
            state=decision.state,
            steps=len(ctx.spec.rollout.steps),
            replicas=health.desired,
            ready_replicas=health.ready,
            effective_weight=0 if effective is None else effective,
            conversion=health.conversion
            or (health.failure.report if health.failure else None)
            or None,
            digest=_pinned(ctx, candidate),
        )
    analysis = revisions.canary.analysis if revisions.canary else None
    stable_status = RevisionStatus(
        revision=stable,
        version=version,
        replicas=stable_health.desired,
        ready_replicas=stable_health.ready,
        conversion=conversion or None,
        digest=_pinned(ctx, stable),
    )
    return Status(
        phase=phase,
        observed_generation=ctx.inputs.generation,
        message=message,
        ready=_ready_text(stable_health),
        revision=ctx.revision,
        stable=stable_status,
        canary=canary,
        previous=revisions.previous,
        retiring=revisions.retiring,
        analysis=analysis,
        monitoring=_monitor_record(ctx, stable, monitored),
        history=_history(ctx, revisions, stable_status, canary),
        conditions=_conditions(
            ctx.inputs,
            ready=stable_health.ready > 0,
            progressing=phase.moving,
            degraded=phase.warning,
            reason=reason,
            message=message,
            drifting=_drifting(ctx, stable, monitored),
        ),
    )


def _monitor_record(
    ctx: _Context, stable: str, monitored: monitoring.Monitored | None
) -> monitoring.MonitorRecord | None:
    """status.monitoring: this reconcile's, else the stable's last (kept through a
    rollout), else none."""
    if ctx.monitoring is None:
        return None
    if monitored is not None:
        return monitored.record
    before = ctx.before.monitoring
    return before if before is not None and before.revision == stable else None


def _history(
    ctx: _Context,
    revisions: _Revisions,
    stable: RevisionStatus,
    canary: CanaryStatus | None,
) -> tuple[history.Entry, ...]:
    decision = revisions.canary.decision if revisions.canary else None
    digests = {stable.revision: stable.digest}
    reports: dict[str, Mapping[str, Any]] = {}
    if canary is not None:
        digests[canary.state.revision] = canary.digest
        failure = ctx.health(canary.state.revision).failure
        # The report of its pods, failed or not (a canary refused by its score converted
        # fine): history keeps it for a rolled-back revision once the pods are gone.
        report = failure.report if failure is not None and failure.report else canary.conversion
        if report:
            reports[canary.state.revision] = report
    change = history.Change(
        now=ctx.now,
        revision=ctx.revision,
        version=ctx.version,
        model=ctx.spec.model.to_spec(),
        stable_before=ctx.before.stable.revision if ctx.before.stable else "",
        stable=revisions.stable,
        canary=decision.state if decision is not None else None,
        promoted=decision is not None and decision.promoted,
        aborted_by_person=decision is not None and decision.aborted_by_person,
        message=decision.message if decision is not None else "",
        digests=digests,
        reports=reports,
    )
    return history.record(ctx.before.history, change, ctx.spec.rollout.history_limit)


def _phase_event(before: Phase | None, status: Status) -> list[Event]:
    if before == status.phase or status.phase is None:
        return []
    kind = "Warning" if status.phase.warning else "Normal"
    return [Event(kind, str(status.phase), status.message)]


def _requeue(ctx: _Context, revisions: _Revisions, status: Status, draining: float | None) -> float:
    """Seconds until the next reconcile: soon while anything is moving (a rollout step, an
    analysis interval, a previous stable to delete, a canary draining), else the resync."""
    settled = status.phase is not None and status.phase.settled and not revisions.replaced
    requeue = ctx.inputs.settings.resync_seconds if settled else SETTLING_REQUEUE_S
    canary = revisions.canary
    if canary is not None:
        requeue = min(requeue, canary.decision.requeue_after)
        if canary.analysis_due is not None and revisions.candidate:
            requeue = min(requeue, max(0.2, canary.analysis_due))
    for kept in revisions.replaced:
        due_in = kept.stable.delete_after - ctx.now
        requeue = min(requeue, ROUTED_RECHECK_S if kept.held else max(0.5, due_in))
    if draining is not None:
        requeue = min(requeue, max(0.5, draining - ctx.now))
    if _backend_pending(ctx, revisions):
        requeue = min(requeue, ROUTED_RECHECK_S)
    return requeue


def _backend_pending(ctx: _Context, revisions: _Revisions) -> bool:
    """A revision with ready pods whose own Service the route cannot use yet: look again
    soon, as nothing the operator watches changes when its EndpointSlices catch up."""
    if not ctx.router.splits_by_revision or ctx.inputs.ready_backends is None:
        return False
    live = revisions.candidate if revisions.candidate and not revisions.aborted else None
    return any(
        ctx.health(revision).ready > 0 and _own_backend(ctx, revision) != "use"
        for revision in (revisions.stable, *([live] if live else []))
    )
