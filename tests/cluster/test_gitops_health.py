"""The GitOps health checks of docs/gitops.md, as examples/gitops/ has them, read by the
evaluators Argo CD and Flux use (gopher-lua and cel-go, in `localenv/components/
healthcheck`), against the MLModels real rollouts on the control plane leave behind: the
operator as its ServiceAccount, kwok's pods, each object taken with `kubectl get -o json`
at the moment the operator has written the state under test."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localenv import mlmodel, wait_for
from localenv.components.build import ensure as ensure_component
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.scenario import get_json
from tests.helpers.kube import apply, wait_healthy
from tests.helpers.plugin import kubectl_mlmodel

pytestmark = pytest.mark.cluster

GITOPS = Path(__file__).resolve().parents[2] / "examples" / "gitops"
ARGOCD_HEALTH = GITOPS / "argocd-health.lua"
FLUX_KUSTOMIZATION = GITOPS / "flux-kustomization.yaml"
KWOK_INIT_FAILURE = "pod-init-container-running-failed.stage.kwok.x-k8s.io"


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str


def evaluate(obj: dict[str, Any], *check: str) -> Verdict:
    """The healthcheck program's verdict on `obj` with `check` (its flags)."""
    result = subprocess.run(
        [str(ensure_component("healthcheck", quiet=True)), *check],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    return Verdict(verdict["status"], verdict["message"])


def argo_cd(obj: dict[str, Any]) -> Verdict:
    return evaluate(obj, "--lua", str(ARGOCD_HEALTH))


def flux(obj: dict[str, Any]) -> Verdict:
    return evaluate(obj, "--kustomization", str(FLUX_KUSTOMIZATION))


def the_mlmodel(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(cluster, "mlmodel", "iris", "-n", namespace)
    return found


def once(
    cluster: ControlPlane, namespace: str, what: str, holds: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The whole MLModel, from the first read in which `holds` is true of its status."""

    def read() -> dict[str, Any] | None:
        obj = the_mlmodel(cluster, namespace)
        return obj if holds(obj.get("status") or {}) else None

    found: dict[str, Any] = wait_for(read, timeout=90, what=what)
    return found


def in_phase(
    cluster: ControlPlane, namespace: str, phase: str, *, saying: str = ""
) -> dict[str, Any]:
    return once(
        cluster,
        namespace,
        f"iris to be {phase}" + (f" with {saying!r}" if saying else ""),
        lambda s: s.get("phase") == phase and saying in s.get("message", ""),
    )


def serve_v1_then_apply_v2(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, **spec: Any
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1", **spec))
    wait_healthy(cluster, namespace, "v1")
    apply(cluster, mlmodel("iris", namespace, version="v2", **spec))


# --- the states, each reached by a real rollout ----------------------------------------------


def never_seen(cluster: ControlPlane, namespace: str, operators: OperatorEnv) -> dict[str, Any]:
    """Applied while no operator runs: no status at all."""
    apply(cluster, mlmodel("iris", namespace))
    obj = the_mlmodel(cluster, namespace)
    assert "status" not in obj
    return obj


def first_revision_coming_up(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """Its pods cannot be scheduled (no such node pool): Deploying until the deadline."""
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, serving={"nodeSelector": {"pool": "none-such"}}))
    return in_phase(cluster, namespace, "Deploying")


def promoted_and_ready(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """v2 through a timed step, promoted: the stable, fully ready, no canary left."""
    steps = [{"weight": 50, "pause": {"duration": "1s"}}]
    serve_v1_then_apply_v2(cluster, namespace, operators, rollout={"steps": steps})
    wait_healthy(cluster, namespace, "v2")
    return once(
        cluster,
        namespace,
        "v2 to be the healthy stable",
        lambda s: s.get("phase") == "Healthy" and (s.get("stable") or {}).get("version") == "v2",
    )


def a_timed_canary_step(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    steps = [{"weight": 50, "pause": {"duration": "1h"}}, {"weight": 100}]
    serve_v1_then_apply_v2(cluster, namespace, operators, rollout={"steps": steps})
    return once(
        cluster,
        namespace,
        "v2 at its first step",
        lambda s: s.get("phase") == "Progressing" and (s.get("canary") or {}).get("step") == 0,
    )


def a_step_waiting_for_promote(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    steps = [{"weight": 25, "pause": {}}, {"weight": 100}]
    serve_v1_then_apply_v2(cluster, namespace, operators, rollout={"steps": steps})
    return in_phase(cluster, namespace, "Paused", saying="step 1/2: canary at 25%")


def a_persons_action_mid_step(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    *,
    action: str,
    phase: str,
    saying: str,
) -> dict[str, Any]:
    """v2 at a step held for an hour, then `kubectl mlmodel <action>`."""
    steps = [{"weight": 30, "pause": {"duration": "1h"}}, {"weight": 100}]
    serve_v1_then_apply_v2(cluster, namespace, operators, rollout={"steps": steps})
    in_phase(cluster, namespace, "Progressing")
    kubectl_mlmodel(cluster, action, "iris", "-n", namespace)
    return in_phase(cluster, namespace, phase, saying=saying)


def paused_by_a_person(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    return a_persons_action_mid_step(
        cluster, namespace, operators, action="pause", phase="Paused", saying="paused by a person"
    )


def held_by_analysis(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """kwok's pods serve no metrics: every interval is Inconclusive and the canary is held."""
    rollout = {
        "steps": [{"weight": 50, "pause": {"duration": "1s"}}, {"weight": 100}],
        "analysis": {"interval": "2s", "minSamples": 1},
    }
    serve_v1_then_apply_v2(cluster, namespace, operators, rollout=rollout)
    return in_phase(cluster, namespace, "Paused", saying="analysis inconclusive")


def an_aborted_canary(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    return a_persons_action_mid_step(
        cluster,
        namespace,
        operators,
        action="abort",
        phase="RolledBack",
        saying="aborted by a person",
    )


def a_router_whose_api_is_missing(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """The stable keeps serving; the spec asks for a router this cluster cannot carry."""
    cluster.kubectl(
        "delete", "crd", "virtualservices.networking.istio.io", "--ignore-not-found", "--wait=true"
    )
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1"))
    stable = wait_healthy(cluster, namespace, "v1")["stable"]["revision"]
    istio = {"router": "istio", "istio": {"hosts": ["iris.example.com"]}}
    apply(cluster, mlmodel("iris", namespace, version="v2", traffic=istio))
    return in_phase(cluster, namespace, "Degraded", saying=f"revision {stable} keeps serving")


def a_first_revision_that_cannot_convert(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """No stable at all: the init container of every pod fails."""
    operators.start(namespace)
    failing_init = {
        "labels": {KWOK_INIT_FAILURE: "true"},
        "annotations": {
            f"{KWOK_INIT_FAILURE}/message": json.dumps({"message": "unsupported model"}),
            f"{KWOK_INIT_FAILURE}/exit-code": "6",
        },
    }
    apply(cluster, mlmodel("iris", namespace, serving={"podMetadata": failing_init}))
    return in_phase(cluster, namespace, "Failed", saying="unsupported model")


def an_invalid_spec(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """Valid for the schema, not for the operator: Prometheus without a URL, and the
    operator has no default one."""
    operators.start(namespace)
    analysis = {"provider": {"prometheus": {}}, "interval": "10s"}
    apply(cluster, mlmodel("iris", namespace, rollout={"analysis": analysis}))
    return in_phase(cluster, namespace, "Failed", saying="invalid spec")


def a_spec_the_operator_has_not_seen(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> dict[str, Any]:
    """v2 committed while the operator is down: the status still speaks of generation 1."""
    operator = operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, version="v1"))
    wait_healthy(cluster, namespace, "v1")
    operator.stop(signal.SIGKILL)
    apply(cluster, mlmodel("iris", namespace, version="v2"))
    obj = the_mlmodel(cluster, namespace)
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["observedGeneration"] == 1
    assert obj["status"]["phase"] == "Healthy"
    return obj


@dataclass(frozen=True)
class Case:
    state: str
    reach: Callable[[ControlPlane, str, OperatorEnv], dict[str, Any]]
    argo_cd: str
    flux: str
    argo_cd_says: str | None = None  # None: the MLModel's own status.message
    flux_says: str = ""  # kstatus carries no message, but an evaluation's error


# docs/gitops.md's table, row by row.
CASES = [
    Case(
        "no-status-yet",
        never_seen,
        "Progressing",
        "Unknown",
        argo_cd_says="Waiting for the operator",
        flux_says="failed to evaluate the CEL expression 'status.phase in",
    ),
    Case(
        "observed-generation-behind",
        a_spec_the_operator_has_not_seen,
        "Progressing",
        "InProgress",
        argo_cd_says="The operator has not seen the latest spec yet",
    ),
    Case("deploying", first_revision_coming_up, "Progressing", "InProgress"),
    Case("progressing-at-a-timed-step", a_timed_canary_step, "Progressing", "InProgress"),
    Case("paused-at-a-step", a_step_waiting_for_promote, "Suspended", "InProgress"),
    Case("paused-by-a-person", paused_by_a_person, "Suspended", "InProgress"),
    Case("paused-by-analysis", held_by_analysis, "Suspended", "InProgress"),
    Case("healthy", promoted_and_ready, "Healthy", "Current"),
    Case("rolled-back", an_aborted_canary, "Degraded", "Failed"),
    Case("degraded", a_router_whose_api_is_missing, "Degraded", "Failed"),
    Case("failed-without-a-stable", a_first_revision_that_cannot_convert, "Degraded", "Failed"),
    Case("failed-invalid-spec", an_invalid_spec, "Degraded", "Failed"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.state for c in CASES])
def test_argo_cd_and_flux_read_each_state_as_docs_gitops_md_says(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, case: Case
) -> None:
    obj = case.reach(cluster, namespace, operators)
    argo, kstatus = argo_cd(obj), flux(obj)
    assert (argo.status, kstatus.status) == (case.argo_cd, case.flux), (argo, kstatus)
    says = case.argo_cd_says if case.argo_cd_says is not None else obj["status"]["message"]
    assert argo.message == says
    if case.flux_says:
        assert case.flux_says in kstatus.message
    else:
        assert kstatus.message == ""


# --- the evaluator is Argo CD's and Flux's ----------------------------------------------------

MLMODEL = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "MLModel",
    "metadata": {"name": "iris", "generation": 3},
    "status": {"observedGeneration": 3, "phase": "Healthy", "message": "serving"},
}


def test_flux_order_is_in_progress_failed_current_and_none_true_is_in_progress() -> None:
    def flux_with(**exprs: str) -> str:
        flags = [f"--cel-{name.replace('_', '-')}={expr}" for name, expr in exprs.items()]
        return evaluate(MLMODEL, *flags).status

    assert flux_with(current="true", failed="true", in_progress="true") == "InProgress"
    assert flux_with(current="true", failed="true", in_progress="false") == "Failed"
    assert flux_with(current="true", failed="false") == "Current"
    assert flux_with(current="false", failed="false", in_progress="false") == "InProgress"
    # The object's fields are the expressions' variables.
    assert flux_with(current="status.phase == 'Healthy' && metadata.generation == 3") == "Current"


def test_flux_reads_a_stale_observed_generation_before_any_expression() -> None:
    behind = {**MLMODEL, "metadata": {"name": "iris", "generation": 4}}
    assert evaluate(behind, "--cel-current", "status.no.such.field").status == "InProgress"
    failing = evaluate(MLMODEL, "--cel-current", "status.no.such.field")
    assert failing.status == "Unknown"
    assert "failed to evaluate the CEL expression 'status.no.such.field'" in failing.message


def test_lua_runs_with_argo_cds_libraries_and_health_statuses(tmp_path: Path) -> None:
    def argo_with(script: str) -> Verdict:
        path = tmp_path / "health.lua"
        path.write_text(script)
        return evaluate(MLMODEL, "--lua", str(path))

    assert argo_with(
        'return {status = "Healthy", message = obj.status.message .. " at " ..'
        " (obj.metadata.generation + 1) .. table.concat({'a', 'b'}) .. type(os.time())}"
    ) == Verdict("Healthy", "serving at 4ab" + "number")
    # Argo CD opens no string library, and only time and date of os.
    assert argo_with('return {status = string.upper("healthy")}').status == "Unknown"
    assert argo_with('return {status = os.getenv("HOME")}').status == "Unknown"
    assert argo_with('return {status = "Fine"}') == Verdict(
        "Unknown", "Lua returned an invalid health status"
    )
    assert argo_with('return "Healthy"') == Verdict(
        "Unknown", "expect table output from Lua script, not string"
    )
