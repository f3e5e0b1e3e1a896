"""Analysis templates on the control plane: a cluster template judging two models, one
with an override; a canary held while its template is missing, then judged by it once it
exists; and the template CRDs' own CEL rules at `kubectl apply` time.

kwok's pods serve nothing, so every analysis interval is Inconclusive: what the template
decides shows as onInconclusive (rollback or pause) and as the metrics and limits that
status.analysis lists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from tests.helpers.kube import apply, model_status, wait_healthy, wait_phase

pytestmark = pytest.mark.cluster

STEPS = [{"weight": 50, "pause": {"duration": "1s"}}, {"weight": 100}]
# Not the defaults (which have no request-rate and pause when inconclusive).
TEMPLATE_SPEC: dict[str, Any] = {
    "interval": "2s",
    "minSamples": 1,
    "onInconclusive": "rollback",
    "metrics": [{"name": "error-rate", "max": 0.2}, {"name": "request-rate", "min": 0.001}],
}


def template(kind: str, name: str, spec: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def limits(status: dict[str, Any]) -> dict[str, str]:
    """The limit each metric of status.analysis was judged by, by metric."""
    metrics = (status.get("analysis") or {}).get("metrics") or ()
    return {m["name"]: m["limit"] for m in metrics}


@pytest.fixture
def cluster_template(cluster: ControlPlane, namespace: str) -> Iterator[str]:
    """A ClusterMLModelAnalysisTemplate of this test's own (the session's tests share the
    cluster scope), removed after it."""
    name = f"standard-{namespace}"
    manifest = template("ClusterMLModelAnalysisTemplate", name, TEMPLATE_SPEC)
    apply(cluster, manifest)
    yield name
    cluster.kubectl("delete", "clustermlmodelanalysistemplate", name, check=False)


def test_a_cluster_template_judges_two_models_and_an_override_changes_one_limit(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, cluster_template: str
) -> None:
    ref = {"kind": "ClusterMLModelAnalysisTemplate", "name": cluster_template}
    as_is = {"steps": STEPS, "analysis": {"templateRef": ref}}
    tuned = {
        "steps": STEPS,
        "analysis": {
            "templateRef": ref,
            "onInconclusive": "pause",
            "metrics": [{"name": "error-rate", "max": 0.3}],
        },
    }
    operators.start(namespace)
    for name, rollout in (("plain", as_is), ("tuned", tuned)):
        apply(cluster, mlmodel(name, namespace, version="v1", rollout=rollout))
    for name in ("plain", "tuned"):
        wait_healthy(cluster, namespace, "v1", name=name)
    for name, rollout in (("plain", as_is), ("tuned", tuned)):
        apply(cluster, mlmodel(name, namespace, version="v2", rollout=rollout))

    # The template's onInconclusive: rollback, after one 2 s interval without metrics.
    plain = wait_phase(cluster, namespace, "plain", "RolledBack")
    assert "analysis inconclusive" in plain["message"], plain["message"]
    assert plain["stable"]["version"] == "v1"

    # The override pauses instead, and judges the error rate by its own limit; the
    # template's other metric is kept.
    tuned_status = wait_for(
        lambda: (
            (s := model_status(cluster, namespace, "tuned")).get("phase") == "Paused"
            and (s.get("analysis") or {}).get("inconclusive", 0) >= 2
            and s
        ),
        what="the tuned model held after two inconclusive intervals",
    )
    assert tuned_status["canary"]["step"] == 0
    assert tuned_status["stable"]["version"] == "v1"
    assert limits(tuned_status) == {"error-rate": "max 0.3", "request-rate": "min 0.001"}


def test_a_missing_template_holds_the_canary_until_it_is_created(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    rollout = {"steps": STEPS, "analysis": {"templateRef": {"name": "strict"}}}
    operators.start(namespace)
    # The first revision has no canary to hold: it deploys as usual.
    apply(cluster, mlmodel("iris", namespace, version="v1", rollout=rollout))
    wait_healthy(cluster, namespace, "v1")
    apply(cluster, mlmodel("iris", namespace, version="v2", rollout=rollout))

    problem = (
        f"analysis template MLModelAnalysisTemplate {namespace}/strict not found; "
        "holding the canary: it is never promoted without its analysis"
    )
    held = wait_for(
        lambda: (
            (s := model_status(cluster, namespace, "iris")).get("phase") == "Paused"
            and problem in str(s.get("message"))
            and s
        ),
        what="the canary held for its missing template",
    )
    assert held["canary"]["weight"] == 50
    time.sleep(6)  # the step's 1 s pause is long over; a resync or more has passed
    still = model_status(cluster, namespace, "iris")
    assert (still["phase"], still["canary"]["step"]) == ("Paused", 0), still
    assert still["stable"]["version"] == "v1"
    assert problem in still["message"]

    # Once it exists, the template judges the canary: its onInconclusive rolls it back.
    apply(cluster, template("MLModelAnalysisTemplate", "strict", TEMPLATE_SPEC, namespace))
    rolled_back = wait_phase(cluster, namespace, "iris", "RolledBack")
    assert "analysis inconclusive" in rolled_back["message"], rolled_back["message"]
    assert rolled_back["stable"]["version"] == "v1"


@pytest.mark.parametrize("kind", ["MLModelAnalysisTemplate", "ClusterMLModelAnalysisTemplate"])
def test_kubectl_apply_refuses_a_template_with_a_custom_metric_and_no_prometheus(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, kind: str
) -> None:
    custom = {"metrics": [{"name": "custom", "max": 1, "prometheus": {"query": "up"}}]}
    within = namespace if kind == "MLModelAnalysisTemplate" else ""
    manifest = template(kind, f"custom-{namespace}", custom, within)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "custom metrics need spec.provider.prometheus" in result.stderr, result.stderr
    with_prometheus = {**custom, "provider": {"prometheus": {}}}
    manifest = template(kind, f"custom-{namespace}", with_prometheus, within)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_model_may_tune_its_templates_custom_metric_without_restating_the_provider(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    """The MLModel's rule cannot see the template's provider: with a templateRef it is the
    operator that checks the merged analysis (docs/analysis.md)."""
    analysis = {"templateRef": {"name": "promql"}, "metrics": [{"name": "custom", "max": 2}]}
    manifest = mlmodel("iris", namespace, rollout={"analysis": analysis})
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode == 0, result.stderr
    del manifest["spec"]["rollout"]["analysis"]["templateRef"]  # (a copy of `analysis`)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "custom metrics need rollout.analysis.provider.prometheus" in result.stderr
