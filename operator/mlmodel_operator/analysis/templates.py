"""Analysis templates: a canary analysis shared by many MLModels, merged with each one's own.

Pure. `spec.rollout.analysis.templateRef` names an MLModelAnalysisTemplate (in the
MLModel's namespace) or a ClusterMLModelAnalysisTemplate; their `spec` is the schema of
`spec.rollout.analysis` without templateRef (the CRDs are generated from the MLModel's,
`mlmodel_operator.templatecrds`). The controller reads the template named by
`reference` and hands it to `with_template`, or, when it is missing or unreadable, uses
`without_template` and passes `missing` on to the plan, which holds the canary.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_operator.analysis.spec import parse_analysis
from mlmodel_operator.errors import SpecError


@dataclass(frozen=True)
class TemplateKind:
    """A template kind as the API serves it."""

    kind: str
    plural: str
    singular: str
    short_name: str
    namespaced: bool


NAMESPACED = TemplateKind(
    kind="MLModelAnalysisTemplate",
    plural="mlmodelanalysistemplates",
    singular="mlmodelanalysistemplate",
    short_name="mlat",
    namespaced=True,
)
CLUSTER = TemplateKind(
    kind="ClusterMLModelAnalysisTemplate",
    plural="clustermlmodelanalysistemplates",
    singular="clustermlmodelanalysistemplate",
    short_name="cmlat",
    namespaced=False,
)
KINDS = {k.kind: k for k in (NAMESPACED, CLUSTER)}


@dataclass(frozen=True)
class TemplateRef:
    """The template an MLModel names; `namespace` is '' for a cluster-scoped one."""

    kind: str
    name: str
    namespace: str = ""

    def describe(self) -> str:
        """How messages name it: "ClusterMLModelAnalysisTemplate standard",
        "MLModelAnalysisTemplate team-a/strict"."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def reference(spec: Mapping[str, Any], namespace: str) -> TemplateRef | None:
    """The template `spec` (an MLModel's) names, None when it names none. A namespaced
    template is looked up in the MLModel's own `namespace`, never another: a reference
    across namespaces would let any model author read (through status) another team's
    analysis."""
    analysis = ((spec.get("rollout") or {}).get("analysis")) or {}
    raw = analysis.get("templateRef")
    if raw is None:
        return None
    name = str(raw.get("name") or "")
    if not name:
        raise SpecError("rollout.analysis.templateRef needs a name")
    kind = KINDS.get(str(raw.get("kind") or NAMESPACED.kind))
    if kind is None:
        raise SpecError(
            f"rollout.analysis.templateRef.kind {raw.get('kind')!r} is not one of "
            f"{', '.join(KINDS)}"
        )
    return TemplateRef(kind=kind.kind, name=name, namespace=namespace if kind.namespaced else "")


def _merge_metrics(base: list[Any], overrides: list[Any]) -> list[dict[str, Any]]:
    merged = [dict(entry) for entry in base]
    positions: dict[str, list[int]] = {}
    for index, entry in enumerate(merged):
        positions.setdefault(str(entry.get("name", "")), []).append(index)
    seen: dict[str, int] = {}
    for entry in overrides:
        name = str(entry.get("name", ""))
        nth = seen.get(name, 0)
        seen[name] = nth + 1
        matches = positions.get(name, [])
        if nth < len(matches):
            merged[matches[nth]].update(copy.deepcopy(dict(entry)))
        else:
            merged.append(copy.deepcopy(dict(entry)))
    return merged


def merge(template_spec: Mapping[str, Any], inline: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis an MLModel gets: the template's spec, with each field its own
    `analysis` sets (but templateRef) in place of the template's.

    `metrics` merge by name rather than being replaced, so that an override tunes one
    limit without restating the whole list (which would then drift from the template):
    the n-th inline entry of a name updates the fields it sets in the n-th template
    entry of that name, an entry of a name the template lacks (or one more of a name
    than it has) is added at the end, and the template's entries nobody mentions stay.

        template metrics: [{error-rate, max 0.05}, {latency-p99, maxRatio 2}]
        inline metrics:   [{latency-p99, maxSeconds 0.5}, {request-rate, min 1}]
        merged:           [{error-rate, max 0.05}, {latency-p99, maxRatio 2, maxSeconds 0.5},
                           {request-rate, min 1}]
    """
    merged = copy.deepcopy(dict(template_spec))
    for key, value in inline.items():
        if key == "templateRef":
            continue
        if key == "metrics" and isinstance(value, list):
            merged["metrics"] = _merge_metrics(merged.get("metrics") or [], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _with_analysis(spec: Mapping[str, Any], analysis: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(spec))
    out.setdefault("rollout", {})["analysis"] = dict(analysis)
    return out


def with_template(
    spec: Mapping[str, Any], ref: TemplateRef, template_spec: Mapping[str, Any]
) -> dict[str, Any]:
    """`spec` (an MLModel's, as the API holds it) with its analysis merged into the
    template's. Raises SpecError naming the template when the merged analysis is one
    the operator refuses: the fault may be in the template, shared by other models, or
    in the override, and the author must know which object to look at."""
    inline = (spec.get("rollout") or {}).get("analysis") or {}
    merged = merge(template_spec, inline)
    try:
        parse_analysis(merged)
        custom = any(m.get("name") == "custom" for m in merged.get("metrics") or ())
        # The MLModel's CEL rule cannot see the template's provider: checked here.
        if custom and "prometheus" not in (merged.get("provider") or {}):
            raise SpecError("custom metrics need provider.prometheus")
    except SpecError as error:
        raise SpecError(f"analysis template {ref.describe()}: {error}") from error
    return _with_analysis(spec, merged)


def without_template(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` with its own analysis alone, for when the template cannot be had (the plan
    then holds the canary). An override that means nothing without its template (a
    custom metric's new limit, whose query is the template's) gives way to the
    defaults: the template's absence is the problem to report, not an invalid spec."""
    inline = (spec.get("rollout") or {}).get("analysis") or {}
    alone = {k: v for k, v in inline.items() if k != "templateRef"}
    try:
        parse_analysis(alone)
    except SpecError:
        alone = {}
    return _with_analysis(spec, alone)


def missing(ref: TemplateRef, *, forbidden: bool = False) -> str:
    """Why the canary holds when the template cannot be read. It holds rather than
    being judged by the inline fields alone (or the defaults): the template is the
    analysis its authors chose, and a canary is never promoted without it."""
    problem = "cannot be read by the operator (forbidden)" if forbidden else "not found"
    return (
        f"analysis template {ref.describe()} {problem}; holding the canary: "
        "it is never promoted without its analysis"
    )
