"""One runtime pod's `/metrics` text as a `Snapshot` of the series the canary analysis reads.

The metrics providers call `parse` on each pod's exposition and `Snapshot.merge` to add the
pods of one revision together; the status keeps a window-start snapshot through
`Snapshot.to_json`/`from_json` (state lives in status, never in memory); `analysis` takes
windows of snapshots and judges them. Pure: text in, snapshot out.

Read (names fixed by DESIGN.md, written by `mlmodel_runtime.serve.metrics`):

    mlmodel_requests_total{code}                   -> Snapshot.requests   {code: count}
    mlmodel_rejected_requests_total{reason}        -> Snapshot.shed       {reason: count}
    mlmodel_info                                   -> Snapshot.pods       (1 per pod)
    mlmodel_request_duration_seconds (histogram)   -> Snapshot.latency
    mlmodel_predictions_total{class}  (classifier) -> Snapshot.classes    {class: rows}
    mlmodel_prediction_value          (regressor)  -> Snapshot.values
    mlmodel_input_bucket_total{feature, bucket}    -> Snapshot.inputs {feature: {bucket: rows}}
    mlmodel_input_baseline_share{feature, bucket}  -> Snapshot.input_baseline (training shares)
    mlmodel_output_bucket_total{bucket} (regressor) -> Snapshot.outputs {bucket: rows}
    mlmodel_output_baseline_share{bucket}          -> Snapshot.output_baseline (class or bucket)

Other labels (model, version, output) are summed over: one pod serves one model version
with one label output. Every other metric in the text is ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "mlmodel_requests_total"
SHED = "mlmodel_rejected_requests_total"
INFO = "mlmodel_info"
DURATION = "mlmodel_request_duration_seconds"
PREDICTIONS = "mlmodel_predictions_total"
VALUES = "mlmodel_prediction_value"
INPUT_BUCKETS = "mlmodel_input_bucket_total"
INPUT_SHARES = "mlmodel_input_baseline_share"
OUTPUT_BUCKETS = "mlmodel_output_bucket_total"
OUTPUT_SHARES = "mlmodel_output_baseline_share"
Nested = Mapping[str, Mapping[str, float]]  # feature -> bucket -> value


class MetricsTextError(ValueError):
    """The text is not a Prometheus exposition (or a stored snapshot is not one of ours)."""


def _format_bound(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


@dataclass(frozen=True)
class Histogram:
    """A cumulative Prometheus histogram.

    `buckets` are (upper bound, observations <= bound) sorted by bound, the last bound
    +Inf; `count` and `sum` are the `_count` and `_sum` samples.
    """

    buckets: tuple[tuple[float, float], ...]
    count: float = 0.0
    sum: float = 0.0

    @property
    def bounds(self) -> tuple[float, ...]:
        return tuple(bound for bound, _ in self.buckets)

    @property
    def observations(self) -> float:
        """Observations per the +Inf bucket (what histogram_quantile uses), else `count`."""
        if self.buckets and self.buckets[-1][0] == math.inf:
            return self.buckets[-1][1]
        return self.count

    def coarsen(self, bounds: Iterable[float]) -> Histogram:
        """Only the buckets whose bound is in `bounds`: exact, since buckets are cumulative."""
        keep = set(bounds)
        return Histogram(
            buckets=tuple((b, c) for b, c in self.buckets if b in keep),
            count=self.count,
            sum=self.sum,
        )

    def merge(self, other: Histogram) -> Histogram:
        """The sum of two histograms over the bounds both have (exact coarsening)."""
        common = set(self.bounds) & set(other.bounds)
        mine, theirs = self.coarsen(common), other.coarsen(common)
        return Histogram(
            buckets=tuple(
                (b, c1 + c2) for (b, c1), (_, c2) in zip(mine.buckets, theirs.buckets, strict=True)
            ),
            count=self.count + other.count,
            sum=self.sum + other.sum,
        )

    def masses(self) -> tuple[float, ...]:
        """Observations per bucket (not cumulative), in bound order."""
        previous = 0.0
        out = []
        for _, cumulative in self.buckets:
            out.append(max(cumulative - previous, 0.0))
            previous = cumulative
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": [[_format_bound(b), c] for b, c in self.buckets],
            "count": self.count,
            "sum": self.sum,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Histogram:
        return cls(
            buckets=tuple(sorted((float(b), float(c)) for b, c in raw.get("buckets", ()))),
            count=float(raw.get("count", 0.0)),
            sum=float(raw.get("sum", 0.0)),
        )


def _add(left: Mapping[str, float], right: Mapping[str, float]) -> dict[str, float]:
    total = dict(left)
    for key, value in right.items():
        total[key] = total.get(key, 0.0) + value
    return total


def _add_nested(left: Nested, right: Nested) -> dict[str, dict[str, float]]:
    total = {feature: dict(buckets) for feature, buckets in left.items()}
    for feature, buckets in right.items():
        total[feature] = _add(total.get(feature, {}), buckets)
    return total


def _merge_optional(left: Histogram | None, right: Histogram | None) -> Histogram | None:
    if left is None:
        return right
    if right is None:
        return left
    return left.merge(right)


@dataclass(frozen=True)
class Snapshot:
    """Counter values of one pod, or of the pods of one revision added together.

    `latency`/`values` are None when the text had no such histogram (`values` is None for
    every model but a regressor with a label output; `classes` is empty unless a classifier).
    """

    requests: Mapping[str, float] = field(default_factory=dict)
    # The 503s among `requests` that the runtime shed at a bound (overload), by bound.
    shed: Mapping[str, float] = field(default_factory=dict)
    # Pods read, for requests per pod (not a counter: a window keeps its end's). The
    # sequential totals add windows, so there it counts pod-readings: both revisions
    # are read together, so requests per pod-reading compare as requests per pod do.
    pods: float = 0.0
    latency: Histogram | None = None
    classes: Mapping[str, float] = field(default_factory=dict)
    values: Histogram | None = None
    # Input drift (only for a model served with a training baseline): rows served per
    # bucket of each watched feature, and the training sample's share of each bucket.
    inputs: Nested = field(default_factory=dict)
    input_baseline: Nested = field(default_factory=dict)
    # Output drift: a regressor's predicted values per baseline bucket (a classifier's
    # are `classes`), and the training predictions' share per bucket or class.
    outputs: Mapping[str, float] = field(default_factory=dict)
    output_baseline: Mapping[str, float] = field(default_factory=dict)

    @property
    def total_requests(self) -> float:
        return sum(self.requests.values())

    @property
    def total_shed(self) -> float:
        return sum(self.shed.values())

    @property
    def has_predictions(self) -> bool:
        return bool(self.classes) or self.values is not None

    def merge(self, other: Snapshot) -> Snapshot:
        """The pods of one revision added together."""
        return Snapshot(
            requests=_add(self.requests, other.requests),
            shed=_add(self.shed, other.shed),
            pods=self.pods + other.pods,
            latency=_merge_optional(self.latency, other.latency),
            classes=_add(self.classes, other.classes),
            values=_merge_optional(self.values, other.values),
            inputs=_add_nested(self.inputs, other.inputs),
            # The same baseline in every pod of a revision.
            input_baseline={**other.input_baseline, **self.input_baseline},
            outputs=_add(self.outputs, other.outputs),
            output_baseline={**other.output_baseline, **self.output_baseline},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": dict(self.requests),
            "latency": None if self.latency is None else self.latency.to_dict(),
            "classes": dict(self.classes),
            "values": None if self.values is None else self.values.to_dict(),
        }
        if self.shed:
            out["shed"] = dict(self.shed)
        if self.pods:
            out["pods"] = self.pods
        if self.inputs:  # the window start kept in status needs the counts, not the shares
            out["inputs"] = {f: dict(b) for f, b in self.inputs.items()}
        if self.outputs:
            out["outputs"] = dict(self.outputs)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Snapshot:
        try:
            latency, values = raw.get("latency"), raw.get("values")
            return cls(
                requests={str(k): float(v) for k, v in (raw.get("requests") or {}).items()},
                shed={str(k): float(v) for k, v in (raw.get("shed") or {}).items()},
                pods=float(raw.get("pods") or 0.0),
                latency=None if latency is None else Histogram.from_dict(latency),
                classes={str(k): float(v) for k, v in (raw.get("classes") or {}).items()},
                values=None if values is None else Histogram.from_dict(values),
                inputs={
                    str(f): {str(b): float(c) for b, c in buckets.items()}
                    for f, buckets in (raw.get("inputs") or {}).items()
                },
                outputs={str(k): float(v) for k, v in (raw.get("outputs") or {}).items()},
            )
        except (TypeError, ValueError, AttributeError) as error:
            raise MetricsTextError(f"not a stored metrics snapshot: {error}") from error

    def to_json(self) -> str:
        """Compact JSON, for a string field of the MLModel status."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise MetricsTextError(f"not a stored metrics snapshot: {error}") from error
        if not isinstance(raw, dict):
            raise MetricsTextError("not a stored metrics snapshot: not a JSON object")
        return cls.from_dict(raw)


class _HistogramParts:
    """The samples of one histogram series while they are being read."""

    def __init__(self) -> None:
        self.buckets: dict[float, float] = {}
        self.count = 0.0
        self.sum = 0.0

    def build(self) -> Histogram:
        return Histogram(
            buckets=tuple(sorted(self.buckets.items())), count=self.count, sum=self.sum
        )


def _read_histogram(
    series: dict[tuple[tuple[str, str], ...], _HistogramParts],
    sample_name: str,
    base: str,
    labels: Mapping[str, str],
    value: float,
) -> None:
    suffix = sample_name[len(base) :]
    if suffix not in ("_bucket", "_count", "_sum"):
        return  # _created and the like
    key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
    parts = series.setdefault(key, _HistogramParts())
    if suffix == "_bucket":
        parts.buckets[float(labels["le"])] = value
    elif suffix == "_count":
        parts.count = value
    else:
        parts.sum = value


def _combine(series: Mapping[Any, _HistogramParts]) -> Histogram | None:
    combined: Histogram | None = None
    for parts in series.values():
        combined = _merge_optional(combined, parts.build())
    return combined


def parse(text: str) -> Snapshot:
    """The snapshot of one pod's Prometheus text exposition.

    Raises MetricsTextError when the text cannot be parsed.
    """
    requests: dict[str, float] = {}
    shed: dict[str, float] = {}
    pods = 0.0
    classes: dict[str, float] = {}
    latency: dict[tuple[tuple[str, str], ...], _HistogramParts] = {}
    values: dict[tuple[tuple[str, str], ...], _HistogramParts] = {}
    inputs: dict[str, dict[str, float]] = {}
    shares: dict[str, dict[str, float]] = {}
    outputs: dict[str, float] = {}
    output_shares: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == REQUESTS:
                    code = labels.get("code", "")
                    requests[code] = requests.get(code, 0.0) + value
                elif name == INFO:
                    pods = 1.0  # one sample per pod, whatever its worker count
                elif name == SHED:
                    reason = labels.get("reason", "")
                    shed[reason] = shed.get(reason, 0.0) + value
                elif name == PREDICTIONS:
                    cls = labels.get("class", "")
                    classes[cls] = classes.get(cls, 0.0) + value
                elif name.startswith(DURATION + "_"):
                    _read_histogram(latency, name, DURATION, labels, value)
                elif name.startswith(VALUES + "_"):
                    _read_histogram(values, name, VALUES, labels, value)
                elif name == INPUT_BUCKETS:
                    feature = inputs.setdefault(labels["feature"], {})
                    bucket = labels["bucket"]
                    feature[bucket] = feature.get(bucket, 0.0) + value
                elif name == INPUT_SHARES:
                    shares.setdefault(labels["feature"], {})[labels["bucket"]] = value
                elif name == OUTPUT_BUCKETS:
                    outputs[labels["bucket"]] = outputs.get(labels["bucket"], 0.0) + value
                elif name == OUTPUT_SHARES:
                    output_shares[labels["bucket"]] = value
    except (ValueError, KeyError, IndexError) as error:
        # The parser's message quotes the offending line: text from the pod, which
        # must not reach status. Say what kind of problem it was, nothing more.
        raise MetricsTextError(
            f"not a Prometheus text exposition ({type(error).__name__})"
        ) from error
    return Snapshot(
        requests=requests,
        shed=shed,
        pods=pods,
        latency=_combine(latency),
        classes=classes,
        values=_combine(values),
        inputs=inputs,
        input_baseline=shares,
        outputs=outputs,
        output_baseline=output_shares,
    )
