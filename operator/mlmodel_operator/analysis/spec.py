"""`spec.rollout.analysis` parsed into an `AnalysisSpec`.

Pure. The API server has applied the CRD's defaults and CEL rules; this re-applies the
defaults (objects from older CRD versions) and refuses, with `SpecError`, what the schema
cannot express: a limit a metric kind does not take, a kind that needs a limit without
one, a custom metric without its query, an interval under a second, a mode or alpha
out of range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlmodel_operator.analysis.kinds import REGISTRY, Series
from mlmodel_operator.analysis.metric import LIMIT_FIELDS, MetricSpec
from mlmodel_operator.durations import parse_duration
from mlmodel_operator.errors import SpecError

MIN_INTERVAL_S = 1.0
DEFAULT_ALPHA = 0.01

DEFAULT_METRICS = tuple(kind.default for kind in REGISTRY.values() if kind.default is not None)


@dataclass(frozen=True)
class AnalysisSpec:
    provider: Literal["scrape", "prometheus"] = "scrape"
    prometheus_url: str = ""
    interval_s: float = 30.0
    min_samples: int = 100
    failure_limit: int = 2
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    # interval: each window judged on its own; sequential: anytime-valid tests on
    # everything since the attempt started, evaluated at every read (see `sequential`).
    mode: Literal["interval", "sequential"] = "interval"
    alpha: float = DEFAULT_ALPHA  # sequential: false-alarm rate over the whole attempt

    @property
    def sequential(self) -> bool:
        return self.mode == "sequential"

    def alpha_of(self, metrics: tuple[MetricSpec, ...]) -> float:
        """Each sequentially tested metric's share of alpha: split evenly (a union bound),
        so a good canary is rolled back by any of them with probability at most alpha."""
        tested = sum(1 for m in metrics if REGISTRY[m.name].sequential)
        return self.alpha / max(tested, 1)

    @property
    def series(self) -> frozenset[Series]:
        """Everything the metrics need read, for the providers."""
        return frozenset().union(*(REGISTRY[m.name].reads for m in self.metrics))


def _metric(
    raw: Mapping[str, Any], key: str, where: str, defaults: Mapping[str, Mapping[str, float]]
) -> MetricSpec:
    name = str(raw.get("name", ""))
    kind = REGISTRY.get(name)
    if kind is None:
        raise SpecError(f"{where} metric {name!r} is not one of {', '.join(REGISTRY)}")
    given = {crd: float(raw[crd]) for crd in LIMIT_FIELDS if raw.get(crd) is not None}
    wrong = sorted(set(given) - set(kind.limits))
    if wrong:
        raise SpecError(
            f"{where} metric {name} takes {' and '.join(kind.limits)}, not {', '.join(wrong)}"
        )
    if not given:
        given = dict(defaults.get(name, kind.defaults))
        if not given:
            raise SpecError(f"{where} metric {name} needs {' or '.join(kind.limits)}")
    metric = MetricSpec(
        name=name,
        key=key,
        min=given.get("min"),
        max=given.get("max"),
        max_increase=given.get("maxIncrease"),
        max_seconds=given.get("maxSeconds"),
        max_ratio=given.get("maxRatio"),
        query=str((raw.get("prometheus") or {}).get("query", "")),
    )
    kind.validate(metric, raw)
    return metric


def parse_metrics(
    items: Sequence[Mapping[str, Any]],
    *,
    where: str = "analysis",
    defaults: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[MetricSpec, ...]:
    """`metrics` as in the CRD; later entries of a name are keyed `name#2`, `name#3`...
    `defaults`: limits by kind for an entry that gives none, instead of the kind's own
    (monitoring judges absolute limits only)."""
    seen: dict[str, int] = {}
    parsed = []
    for item in items:
        name = str(item.get("name", ""))
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}#{seen[name]}"
        parsed.append(_metric(item, key, where, defaults or {}))
    return tuple(parsed)


def parse_provider(raw: Mapping[str, Any] | None) -> tuple[Literal["scrape", "prometheus"], str]:
    """(provider, Prometheus URL or '') of a `provider` block."""
    prometheus = (raw or {}).get("prometheus")
    if prometheus is None:
        return "scrape", ""
    return "prometheus", str(prometheus.get("url", ""))


def parse_analysis(raw: Mapping[str, Any] | None) -> AnalysisSpec:
    """Parse `spec.rollout.analysis` (as in the CRD), applying its defaults."""
    raw = raw or {}
    provider, prometheus_url = parse_provider(raw.get("provider"))
    interval_s = parse_duration(str(raw.get("interval", "30s")))
    if interval_s < MIN_INTERVAL_S:
        # Each interval costs a metrics read: a tiny one would have the operator read
        # (and the analysis judge) several times a second for every such model.
        raise SpecError(f"analysis.interval must be at least {MIN_INTERVAL_S:g}s")
    min_samples = int(raw.get("minSamples", 100))
    failure_limit = int(raw.get("failureLimit", 2))
    if min_samples < 1 or failure_limit < 0:
        raise SpecError("analysis.minSamples must be at least 1 and failureLimit at least 0")
    on_inconclusive = raw.get("onInconclusive", "pause")
    if on_inconclusive not in ("pause", "rollback"):
        raise SpecError(f"analysis.onInconclusive {on_inconclusive!r} is not pause or rollback")
    mode = raw.get("mode", "interval")
    if mode not in ("interval", "sequential"):
        raise SpecError(f"analysis.mode {mode!r} is not interval or sequential")
    alpha = float(raw.get("alpha", DEFAULT_ALPHA))
    if not 0 < alpha < 0.5:
        raise SpecError("analysis.alpha must be above 0 and below 0.5")
    metrics = parse_metrics(raw["metrics"]) if raw.get("metrics") else DEFAULT_METRICS
    return AnalysisSpec(
        provider=provider,
        prometheus_url=prometheus_url,
        interval_s=interval_s,
        min_samples=min_samples,
        failure_limit=failure_limit,
        on_inconclusive="rollback" if on_inconclusive == "rollback" else "pause",
        metrics=metrics,
        mode="sequential" if mode == "sequential" else "interval",
        alpha=alpha,
    )
