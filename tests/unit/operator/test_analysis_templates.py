"""Analysis templates: which template an MLModel names, how its own analysis overrides the
template's, and a canary held while the template cannot be had."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from prometheus_client import CollectorRegistry

from mlmodel_operator import kube
from mlmodel_operator.analysis import templates
from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.loop import Reading
from mlmodel_operator.analysis.templates import TemplateRef, merge
from mlmodel_operator.controller import Controller
from mlmodel_operator.errors import SpecError
from mlmodel_operator.kube import ApiError, KubeClient
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.operator_metrics import OperatorMetrics
from mlmodel_operator.reconcile import Inputs, Observed, Plan, plan
from mlmodel_operator.revision import revision_of
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import MLModelSpec, parse_or_error, parse_spec

pytestmark = pytest.mark.unit

STANDARD: dict[str, Any] = {
    "interval": "1m",
    "minSamples": 200,
    "failureLimit": 1,
    "metrics": [
        {"name": "error-rate", "max": 0.01, "maxIncrease": 0.005},
        {"name": "latency-p99", "maxRatio": 1.5},
        {"name": "prediction-divergence", "max": 0.05},
    ],
}


def model(version: str = "v1", **analysis: Any) -> dict[str, Any]:
    return {
        "model": {"uri": f"s3://models/iris/{version}/model.skops", "version": version},
        "serving": {"replicas": 4},
        "rollout": {
            "steps": [{"weight": 25, "pause": {"duration": "1m"}}, {"weight": 100}],
            "analysis": analysis,
        },
    }


# --- which template ------------------------------------------------------------------------


def test_a_named_template_is_namespaced_and_looked_up_in_the_models_own_namespace() -> None:
    ref = templates.reference(model(templateRef={"name": "strict"}), "team-a")
    assert ref == TemplateRef(kind="MLModelAnalysisTemplate", name="strict", namespace="team-a")
    assert ref.describe() == "MLModelAnalysisTemplate team-a/strict"


def test_a_cluster_template_has_no_namespace() -> None:
    raw = model(templateRef={"name": "standard", "kind": "ClusterMLModelAnalysisTemplate"})
    ref = templates.reference(raw, "team-a")
    assert ref == TemplateRef(kind="ClusterMLModelAnalysisTemplate", name="standard")
    assert ref.describe() == "ClusterMLModelAnalysisTemplate standard"


def test_a_model_without_a_template_ref_names_none() -> None:
    assert templates.reference(model(interval="10s"), "team-a") is None
    assert templates.reference({"model": {"uri": "s3://b/m"}}, "team-a") is None


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"kind": "ClusterMLModelAnalysisTemplate"}, "templateRef needs a name"),
        ({"name": "x", "kind": "AnalysisTemplate"}, "'AnalysisTemplate' is not one of"),
    ],
)
def test_a_template_ref_the_schema_would_refuse_is_an_invalid_spec(
    ref: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        templates.reference(model(templateRef=ref), "team-a")


# --- merging --------------------------------------------------------------------------------


def test_without_overrides_the_model_gets_the_template_as_it_is() -> None:
    assert merge(STANDARD, {"templateRef": {"name": "standard"}}) == STANDARD


def test_a_field_set_inline_replaces_the_templates_and_the_rest_is_kept() -> None:
    merged = merge(
        STANDARD, {"templateRef": {"name": "s"}, "failureLimit": 3, "mode": "sequential"}
    )
    assert merged["failureLimit"] == 3
    assert merged["mode"] == "sequential"
    assert (merged["interval"], merged["minSamples"]) == ("1m", 200)
    assert "templateRef" not in merged


def test_the_provider_is_replaced_whole_not_merged() -> None:
    template = {**STANDARD, "provider": {"prometheus": {"url": "http://prom:9090"}}}
    assert merge(template, {"provider": {"scrape": {}}})["provider"] == {"scrape": {}}


def test_an_override_tunes_one_limit_of_one_metric_and_keeps_the_others() -> None:
    merged = merge(STANDARD, {"metrics": [{"name": "latency-p99", "maxSeconds": 0.5}]})
    assert merged["metrics"] == [
        {"name": "error-rate", "max": 0.01, "maxIncrease": 0.005},
        {"name": "latency-p99", "maxRatio": 1.5, "maxSeconds": 0.5},
        {"name": "prediction-divergence", "max": 0.05},
    ]


def test_a_metric_the_template_lacks_is_added_at_the_end() -> None:
    merged = merge(STANDARD, {"metrics": [{"name": "request-rate", "min": 1}]})
    assert [m["name"] for m in merged["metrics"]] == [
        "error-rate",
        "latency-p99",
        "prediction-divergence",
        "request-rate",
    ]


def test_the_nth_entry_of_a_name_updates_the_templates_nth_entry_of_that_name() -> None:
    template = {
        "provider": {"prometheus": {}},
        "metrics": [
            {"name": "custom", "max": 1, "prometheus": {"query": "a"}},
            {"name": "error-rate", "max": 0.05},
            {"name": "custom", "max": 2, "prometheus": {"query": "b"}},
        ],
    }
    inline = {
        "metrics": [
            {"name": "custom", "max": 10},
            {"name": "custom", "min": 0.5},
            {"name": "custom", "max": 3, "prometheus": {"query": "c"}},
        ]
    }
    assert merge(template, inline)["metrics"] == [
        {"name": "custom", "max": 10, "prometheus": {"query": "a"}},
        {"name": "error-rate", "max": 0.05},
        {"name": "custom", "max": 2, "min": 0.5, "prometheus": {"query": "b"}},
        {"name": "custom", "max": 3, "prometheus": {"query": "c"}},
    ]


def test_merging_leaves_the_template_and_the_inline_analysis_unchanged() -> None:
    inline = {"metrics": [{"name": "error-rate", "max": 0.2}]}
    before = repr(STANDARD), repr(inline)
    merge(STANDARD, inline)
    assert (repr(STANDARD), repr(inline)) == before


def test_the_merged_analysis_is_what_the_model_is_judged_by() -> None:
    ref = TemplateRef(kind="ClusterMLModelAnalysisTemplate", name="standard")
    raw = model(templateRef={"name": "standard"}, metrics=[{"name": "error-rate", "max": 0.02}])
    analysis = parse_spec(templates.with_template(raw, ref, STANDARD)).analysis
    assert analysis is not None
    assert (analysis.interval_s, analysis.min_samples, analysis.failure_limit) == (60.0, 200, 1)
    assert [(m.name, m.max) for m in analysis.metrics] == [
        ("error-rate", 0.02),
        ("latency-p99", None),
        ("prediction-divergence", 0.05),
    ]


def test_a_merged_analysis_the_operator_refuses_names_the_template() -> None:
    ref = TemplateRef(kind="MLModelAnalysisTemplate", name="strict", namespace="team-a")
    broken = {"metrics": [{"name": "latency-p99", "max": 1}]}
    with pytest.raises(
        SpecError, match=r"^analysis template MLModelAnalysisTemplate team-a/strict"
    ):
        templates.with_template(model(templateRef={"name": "strict"}), ref, broken)
    # The model's custom metric needs a Prometheus, which neither of them names.
    custom = [{"name": "custom", "max": 1, "prometheus": {"query": "up"}}]
    with pytest.raises(SpecError, match=r"custom metrics need provider\.prometheus"):
        templates.with_template(
            model(templateRef={"name": "strict"}, metrics=custom), ref, STANDARD
        )


def test_the_examples_model_gets_the_cluster_template_with_its_own_latency_limit() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "analysis-template.yaml"
    template, model_manifest = yaml.safe_load_all(example.read_text())
    ref = templates.reference(model_manifest["spec"], "default")
    assert ref == TemplateRef(kind=template["kind"], name=template["metadata"]["name"])
    merged = templates.with_template(model_manifest["spec"], ref, template["spec"])
    analysis = parse_spec(merged).analysis
    assert analysis is not None
    assert (analysis.interval_s, analysis.min_samples) == (60.0, 200)
    [latency] = [m for m in analysis.metrics if m.name == "latency-p99"]
    assert (latency.max_seconds, latency.max_ratio) == (0.5, 1.5)


def test_without_its_template_a_model_keeps_only_what_means_something_alone() -> None:
    alone = templates.without_template(model(templateRef={"name": "s"}, interval="10s"))
    assert alone["rollout"]["analysis"] == {"interval": "10s"}
    # A new limit for the template's custom metric has no query without it: the defaults.
    tuned = model(templateRef={"name": "s"}, metrics=[{"name": "custom", "max": 2}])
    assert templates.without_template(tuned)["rollout"]["analysis"] == {}


# --- a canary without its template ----------------------------------------------------------

REF = ModelRef(name="iris", namespace="team-a", uid="uid-1")
SETTINGS = Settings(resync_seconds=300.0)
T0 = 1_714_557_600.0
NAMED: dict[str, Any] = {"templateRef": {"name": "strict"}}
PROBLEM = templates.missing(
    TemplateRef(kind="MLModelAnalysisTemplate", name="strict", namespace="team-a")
)


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def revision(raw: Mapping[str, Any]) -> str:
    return revision_of(parse_spec(raw), SETTINGS.runtime_image)


def reconcile(
    raw: Mapping[str, Any],
    status: Mapping[str, Any],
    observed: Mapping[str, Observed],
    now_s: float,
    metrics: Reading | None = None,
) -> Plan:
    """One reconcile of a model whose template is missing, as the controller makes it."""
    return plan(
        Inputs(
            ref=REF,
            generation=1,
            spec=parse_or_error(templates.without_template(raw)),
            status=status,
            observed=observed,
            settings=SETTINGS,
            now="2024-05-01T10:00:00Z",
            now_s=now_s,
            metrics=metrics,
            analysis_problem=PROBLEM,
        )
    )


def test_a_missing_template_does_not_hold_the_first_revision() -> None:
    v1 = model("v1", **NAMED)
    first = reconcile(v1, {}, {}, T0 - 60)
    serving = reconcile(v1, first.status, {revision(v1): Observed(deployment(4))}, T0 - 50)
    assert serving.status["phase"] == "Healthy"


def test_a_missing_template_holds_the_canary_at_its_weight_and_never_promotes_it() -> None:
    v1, v2 = model("v1", **NAMED), model("v2", **NAMED)
    r1, r2 = revision(v1), revision(v2)
    first = reconcile(v1, {}, {}, T0 - 60)
    status = reconcile(v1, first.status, {r1: Observed(deployment(4))}, T0 - 50).status
    observed = {r1: Observed(deployment(4)), r2: Observed(deployment(1))}
    for now_s in (T0 - 5, T0, T0 + 61, T0 + 600, T0 + 3600):
        result = reconcile(v2, status, observed, now_s)
        status = result.status
    assert status["phase"] == "Paused"
    assert status["stable"]["revision"] == r1
    assert status["canary"]["step"] == 0
    assert status["canary"]["weight"] == 25
    assert status["message"] == (
        "step 1/2: canary at 25%; analysis template MLModelAnalysisTemplate team-a/strict "
        "not found; holding the canary: it is never promoted without its analysis"
    )
    assert [e.reason for e in result.events] == []


def test_a_canary_passing_its_own_fields_is_still_held_without_its_template() -> None:
    own = {**NAMED, "interval": "10s", "minSamples": 20, "metrics": [{"name": "error-rate"}]}
    v1, v2 = model("v1", **own), model("v2", **own)
    r1, r2 = revision(v1), revision(v2)
    first = reconcile(v1, {}, {}, T0 - 60)
    status = reconcile(v1, first.status, {r1: Observed(deployment(4))}, T0 - 50).status
    observed = {r1: Observed(deployment(4)), r2: Observed(deployment(1))}
    status = reconcile(v2, status, observed, T0 - 5).status
    status = reconcile(v2, status, observed, T0).status
    served = 0
    for now_s in range(int(T0) + 1, int(T0) + 180, 11):
        served += 100
        reading = Reading(
            stable=Snapshot(requests={"200": float(served)}),
            canary=Snapshot(requests={"200": float(served)}),
        )
        status = reconcile(v2, status, observed, float(now_s), reading).status
    assert status["analysis"]["verdict"] == "Pass"
    assert (status["phase"], status["canary"]["step"]) == ("Paused", 0)
    assert PROBLEM in status["message"]


# --- the controller's read of the template --------------------------------------------------


class _Templates:
    """A KubeClient's `get` over a few templates; `forbidden` kinds answer 403."""

    def __init__(self, found: Mapping[tuple[str, str, str], Any], forbidden: str = "") -> None:
        self.found, self.forbidden = found, forbidden
        self.asked: list[tuple[str, str, str]] = []

    async def get(self, kind: str, namespace: str, name: str) -> Any:
        self.asked.append((kind, namespace, name))
        if kind == self.forbidden:
            raise ApiError(403, "forbidden")
        return self.found.get((kind, namespace, name))


def read_spec(client: _Templates, raw: Mapping[str, Any]) -> tuple[MLModelSpec | SpecError, str]:
    controller = Controller(
        cast(KubeClient, client), SETTINGS, OperatorMetrics(CollectorRegistry())
    )
    return asyncio.run(controller.resolved_spec("team-a", raw))


def test_the_controller_merges_the_template_it_reads_from_the_models_namespace() -> None:
    client = _Templates({("MLModelAnalysisTemplate", "team-a", "strict"): {"spec": STANDARD}})
    spec, problem = read_spec(client, model(**NAMED, failureLimit=0))
    assert client.asked == [("MLModelAnalysisTemplate", "team-a", "strict")]
    assert problem == ""
    assert isinstance(spec, MLModelSpec)
    assert spec.analysis is not None
    assert (spec.analysis.interval_s, spec.analysis.failure_limit) == (60.0, 0)


def test_the_controller_reads_a_cluster_template_without_a_namespace() -> None:
    client = _Templates({("ClusterMLModelAnalysisTemplate", "", "standard"): {"spec": STANDARD}})
    ref: dict[str, Any] = {
        "templateRef": {"name": "standard", "kind": "ClusterMLModelAnalysisTemplate"}
    }
    spec, problem = read_spec(client, model(**ref))
    assert problem == ""
    assert isinstance(spec, MLModelSpec)
    assert spec.analysis is not None
    assert spec.analysis.min_samples == 200


@pytest.mark.parametrize(
    ("forbidden", "problem"),
    [("", "not found"), ("MLModelAnalysisTemplate", "cannot be read by the operator")],
)
def test_a_template_missing_or_unreadable_leaves_the_inline_analysis_and_a_reason(
    forbidden: str, problem: str
) -> None:
    spec, reason = read_spec(_Templates({}, forbidden), model(**NAMED, interval="10s"))
    assert isinstance(spec, MLModelSpec)
    assert spec.analysis is not None
    assert spec.analysis.interval_s == 10.0
    assert reason.startswith(f"analysis template MLModelAnalysisTemplate team-a/strict {problem}")


def test_a_template_the_operator_refuses_is_an_invalid_spec_naming_it() -> None:
    broken = {"spec": {"metrics": [{"name": "request-rate"}]}}
    client = _Templates({("MLModelAnalysisTemplate", "team-a", "strict"): broken})
    spec, problem = read_spec(client, model(**NAMED))
    assert isinstance(spec, SpecError)
    assert str(spec).startswith("analysis template MLModelAnalysisTemplate team-a/strict: ")
    assert problem == ""


def test_the_api_paths_of_the_template_kinds() -> None:
    assert kube._path("MLModelAnalysisTemplate", "team-a", "strict") == (
        "/apis/mlops.dev/v1alpha1/namespaces/team-a/mlmodelanalysistemplates/strict"
    )
    assert kube._path("ClusterMLModelAnalysisTemplate", "", "standard") == (
        "/apis/mlops.dev/v1alpha1/clustermlmodelanalysistemplates/standard"
    )
