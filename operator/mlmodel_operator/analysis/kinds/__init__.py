"""The registry of analysis metric kinds: the only list of what `metrics[].name` may be.

A kind is one module with one object implementing `MetricKind`: the limits it takes and
their defaults, the series it needs the providers to read, whether it compares the
canary with the stable (then it cannot be judged at 100%, where the stable has no
traffic), how a window is judged, and whether (and how) it has an anytime-valid test
for sequential mode (`analysis.sequential`). The spec parser, the judge, the providers and the
test that checks the CRD's metric-name enum all read `REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Totals, Window


class Series(StrEnum):
    """What a metric needs a provider to read for both revisions."""

    REQUESTS = "requests"  # mlmodel_requests_total by code
    LATENCY = "latency"  # mlmodel_request_duration_seconds buckets
    PREDICTIONS = "predictions"  # mlmodel_predictions_total by class, prediction_value
    # The training baseline's buckets: mlmodel_input_* and mlmodel_output_* series.
    INPUTS = "inputs"
    QUERY = "query"  # the metric's own PromQL (Prometheus only)


class MetricKind(Protocol):
    name: str
    limits: tuple[str, ...]  # the CRD limit fields it takes (min, max, maxIncrease, ...)
    defaults: Mapping[str, float]  # its limits when none is given ({}: one is required)
    reads: frozenset[Series]
    # The entry in the default metric list (None: only when asked for).
    default: MetricSpec | None
    # Has an anytime-valid test (`test`); False: judged per interval in either mode.
    sequential: bool

    def validate(self, metric: MetricSpec, raw: Mapping[str, Any]) -> None:
        """Raise SpecError for what the schema cannot express (e.g. a missing query)."""
        ...

    def needs_baseline(self, metric: MetricSpec) -> bool:
        """Whether judging needs the stable's figures (a comparison, not a limit)."""
        ...

    def absolute(self, metric: MetricSpec) -> MetricSpec | None:
        """The metric with its comparisons dropped, or None when nothing would be left:
        what is judged when the canary takes all traffic."""
        ...

    def judge(self, metric: MetricSpec, window: Window) -> MetricResult | None:
        """The verdict on one window (None: not applicable to this model)."""
        ...

    def test(self, metric: MetricSpec, totals: Totals) -> MetricResult | None:
        """Sequential mode: the verdict on everything since the attempt started, Fail
        only when the anytime-valid test rejects at `totals.alpha` (None: not applicable
        to this model, or the kind has no such test)."""
        ...


def kind_of(name: str) -> MetricKind:
    return REGISTRY[name]


# The registry: at the end, because each kind imports what is above.
from mlmodel_operator.analysis.kinds import (  # noqa: E402
    custom,
    divergence,
    error_rate,
    input_drift,
    latency,
    output_drift,
    request_rate,
)

REGISTRY: dict[str, MetricKind] = {
    kind.name: kind
    for kind in (
        error_rate.ErrorRate(),
        latency.LatencyP99(),
        divergence.PredictionDivergence(),
        request_rate.RequestRate(),
        input_drift.InputDrift(),
        output_drift.OutputDrift(),
        custom.Custom(),
    )
}
