"""The shared vocabulary of canary analysis: a metric as the spec asks for it, a window
of both revisions' figures, and a metric's verdict on that window.

Pure values, imported by the metric kinds (`kinds/`), the spec parser and the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlmodel_operator.analysis.exposition import Snapshot

# CRD field name -> MetricSpec attribute, in the order limits are shown.
LIMIT_FIELDS = {
    "min": "min",
    "max": "max",
    "maxIncrease": "max_increase",
    "maxSeconds": "max_seconds",
    "maxRatio": "max_ratio",
}


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


@dataclass(frozen=True)
class MetricSpec:
    """One entry of `analysis.metrics`.

    `key` names the metric in results, status and `custom_values`: the name, or `name#2`,
    `name#3`... for later entries of the same name (several custom metrics, say).
    `when_available` (only for the default prediction-divergence) skips the metric for
    models that expose no predictions; asked for explicitly, missing predictions are
    Inconclusive.
    """

    name: str
    key: str = ""
    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    max_seconds: float | None = None
    max_ratio: float | None = None
    query: str = ""
    when_available: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name)

    @property
    def limit(self) -> str:
        """The limits as written in the spec: 'max 0.05, maxIncrease 0.01'."""
        return ", ".join(
            f"{crd} {num(getattr(self, attr))}"
            for crd, attr in LIMIT_FIELDS.items()
            if getattr(self, attr) is not None
        )


@dataclass(frozen=True)
class Window:
    """Both revisions' figures over one interval (`windows.window` deltas)."""

    stable: Snapshot
    canary: Snapshot
    min_samples: int
    interval_s: float
    custom_values: Mapping[str, float | None]
    # What the judged side is called in reasons: "canary", or "stable" when monitoring
    # judges the stable alone after promotion (`monitoring.py`).
    judged: str = "canary"

    def too_few(self, *, baseline: bool) -> str:
        """Why the window is too small to judge, or ''."""
        canary, stable = self.canary.total_requests, self.stable.total_requests
        if canary < self.min_samples or canary <= 0:
            return f"{canary:.0f} {self.judged} requests, fewer than minSamples {self.min_samples}"
        if baseline and (stable < self.min_samples or stable <= 0):
            return f"{stable:.0f} stable requests, fewer than minSamples {self.min_samples}"
        return ""


@dataclass(frozen=True)
class MetricResult:
    name: str
    stable: float | None
    canary: float | None
    limit: str
    verdict: Verdict
    reason: str
    # Sequential mode: how far the anytime-valid test has come towards a rollback, 0 (no
    # evidence against the canary) to 1 (rejected); None in interval mode.
    evidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else float(f"{value:.6g}")

        out: dict[str, Any] = {
            "name": self.name,
            "stable": rounded(self.stable),
            "canary": rounded(self.canary),
            "limit": self.limit,
            "verdict": str(self.verdict),
            "reason": self.reason,
        }
        if self.evidence is not None:
            out["evidence"] = rounded(self.evidence)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MetricResult:
        verdict = raw.get("verdict")
        return cls(
            name=str(raw.get("name", "")),
            stable=None if raw.get("stable") is None else float(raw["stable"]),
            canary=None if raw.get("canary") is None else float(raw["canary"]),
            limit=str(raw.get("limit", "")),
            verdict=Verdict(verdict) if verdict in ("Pass", "Fail") else Verdict.INCONCLUSIVE,
            reason=str(raw.get("reason", "")),
            evidence=None if raw.get("evidence") is None else float(raw["evidence"]),
        )


@dataclass(frozen=True)
class Totals:
    """Sequential mode: what both revisions served since the canary attempt started
    (`stable`, `canary`: sums of every read's increase, so a pod's restart loses
    nothing), what the stable had served before it (`stable_before`: its counters at
    the attempt's first read, the history its rate is bounded with), and this metric's
    share `alpha` of the rollout's false-alarm rate."""

    stable: Snapshot
    canary: Snapshot
    stable_before: Snapshot
    min_samples: int
    alpha: float

    def too_few(self, *, baseline: bool) -> str:
        """Why there is not yet enough data for a Pass, or ''."""
        return Window(self.stable, self.canary, self.min_samples, 0.0, {}).too_few(
            baseline=baseline
        )


def result(
    metric: MetricSpec,
    stable: float | None,
    canary: float | None,
    verdict: Verdict,
    reason: str,
    evidence: float | None = None,
) -> MetricResult:
    return MetricResult(metric.key, stable, canary, metric.limit, verdict, reason, evidence)


def tested(
    metric: MetricSpec,
    stable: float | None,
    canary: float | None,
    verdict: Verdict,
    evidence: float,
    *,
    figures: str,
    why: str,
) -> MetricResult:
    """The result of a sequential test (`sequential.verdict_of`), its reason said the
    same way for every kind: the figures and the limit when the test decided, only why
    not when it has not."""
    if verdict is Verdict.FAIL:
        reason = f"{figures} breaks {metric.limit}: {why}"
    elif verdict is Verdict.PASS:
        reason = f"{figures} within {metric.limit} so far: {why}"
    else:
        reason = f"{metric.key}: {why}"
    return result(metric, stable, canary, verdict, reason, evidence)


def outside(metric: MetricSpec, value: float) -> str:
    """How `value` breaks the metric's min/max, or ''."""
    if metric.min is not None and value < metric.min:
        return f"< min {num(metric.min)}"
    if metric.max is not None and value > metric.max:
        return f"> max {num(metric.max)}"
    return ""
