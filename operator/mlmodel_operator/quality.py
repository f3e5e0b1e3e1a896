"""The quality gate: a canary's score on the labelled holdout set against the stable's.
Pure.

Prediction divergence compares answer distributions and cannot see a canary that
swaps two classes under balanced traffic; a score on labelled rows can. Each revision's
convert init container scores the ONNX model it serves (`spec.rollout.evaluation`) and
puts the score in its report; the operator compares the canary's with the stable's
before the canary's first step, so a worse model never gets traffic.

Scores are compared only on the same dataset (its sha256) and metric: a stable scored
on another dataset, or not at all (it predates the gate), is no baseline, and the
canary passes with its score recorded, to be the next canary's baseline once promoted.
A canary whose report has no score fails: the gate never opens on missing data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator.spec import Evaluation


def _score(report: Mapping[str, Any] | None, evaluation: Evaluation) -> tuple[float, int] | None:
    scored = (report or {}).get("evaluation") or {}
    dataset = scored.get("dataset") or {}
    if scored.get("metric") != evaluation.metric or dataset.get("sha256") != (
        evaluation.dataset_sha256
    ):
        return None
    score = scored.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    return float(score), int(scored.get("rows", 0))


def refusal(
    evaluation: Evaluation | None,
    canary_report: Mapping[str, Any] | None,
    stable_report: Mapping[str, Any] | None,
    *,
    canary_ready: bool,
) -> str:
    """Why the canary must not get traffic, or '' (no gate, a pass, or no report yet
    from a canary that does not serve yet)."""
    if evaluation is None:
        return ""
    if not canary_report:
        if not canary_ready:
            return ""
        return "evaluation: the canary serves but its conversion report could not be read"
    canary = _score(canary_report, evaluation)
    if canary is None:
        return (
            f"evaluation: the canary's conversion report has no {evaluation.metric} score on "
            f"dataset {evaluation.dataset_sha256[:12]}"
        )
    stable = _score(stable_report, evaluation)
    if stable is None:
        return ""
    (canary_score, rows), (stable_score, _) = canary, stable
    worse = (
        stable_score - canary_score if evaluation.higher_is_better else canary_score - stable_score
    )
    if worse > evaluation.max_degradation:
        return (
            f"evaluation: {evaluation.metric} {canary_score:.4g} vs stable {stable_score:.4g} on "
            f"{rows} labelled rows, worse by {worse:.4g} > maxDegradation "
            f"{evaluation.max_degradation:g}"
        )
    return ""
