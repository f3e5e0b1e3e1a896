"""The metric-kind registry is the only list of analysis metrics: the CRD's enum agrees with
it, and a new metric is one class and one registry entry (shown with a kind defined here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.judging import judge
from mlmodel_operator.analysis.kinds import REGISTRY, Series
from mlmodel_operator.analysis.loop import absolute_only
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict, Window, result
from mlmodel_operator.analysis.spec import parse_analysis

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_the_crd_offers_exactly_the_registered_metric_kinds() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "mlmodels.mlops.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rollout = schema["properties"]["spec"]["properties"]["rollout"]
    metrics = rollout["properties"]["analysis"]["properties"]["metrics"]
    assert metrics["items"]["properties"]["name"]["enum"] == list(REGISTRY)


class TwoHundreds:
    """A made-up kind: the share of 200 answers must stay above `min`."""

    name = "ok-share"
    limits = ("min",)
    defaults: Mapping[str, float] = {"min": 0.9}
    reads = frozenset({Series.REQUESTS})
    default: MetricSpec | None = None

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        pass

    def needs_baseline(self, metric: MetricSpec) -> bool:
        return False

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        return metric

    def judge(self, metric: MetricSpec, w: Window) -> MetricResult:
        share = w.canary.requests.get("200", 0.0) / max(w.canary.total_requests, 1.0)
        assert metric.min is not None
        verdict = Verdict.PASS if share >= metric.min else Verdict.FAIL
        return result(metric, None, share, verdict, f"{metric.key} {share:.2f}")


def test_a_new_metric_is_one_class_and_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "ok-share", TwoHundreds())
    spec = parse_analysis({"minSamples": 10, "metrics": [{"name": "ok-share"}]})
    [metric] = spec.metrics
    assert (metric.name, metric.min) == ("ok-share", 0.9)
    assert spec.series == frozenset({Series.REQUESTS})
    assert absolute_only(spec.metrics) == spec.metrics  # judged at 100% too
    canary = Snapshot(requests={"200": 80, "503": 20})
    [verdict] = judge(spec.metrics, Snapshot(), canary, min_samples=10, interval_s=30)
    assert (verdict.verdict, verdict.canary) == (Verdict.FAIL, 0.8)
