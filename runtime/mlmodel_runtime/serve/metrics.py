"""Prometheus metrics of the runtime (names and labels fixed by DESIGN.md).

`RuntimeMetrics` is created by the app at start-up with its own registry; nothing
is registered at import time. With several worker processes the server sets
PROMETHEUS_MULTIPROC_DIR before the workers start: every worker then writes its
values to files there, and `/metrics` in any worker aggregates all of them, so
each scrape is complete whichever worker answers it.

Hot-path cost is kept to a dictionary lookup and an increment: labelled children
are created once per (code) or (class) and cached.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from mlmodel_runtime.modeldir import ModelMetadata
from mlmodel_runtime.serve import drift

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Sub-millisecond to 10 s: the canary analysis compares p99s of a few ms.
DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VALUE_BUCKETS: Final = (
    -1000.0, -100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0,
    100.0, 200.0, 500.0, 1000.0, 10000.0,
)  # fmt: skip


# Why a request was shed (the `reason` label), one per bound: --max-concurrent-requests,
# --max-inflight-bytes, --max-queued-requests, --max-loop-lag-ms.
SHED: Final = ("concurrency", "memory", "queue", "loop")


class RuntimeMetrics:
    """The runtime's metrics for one model, and the `/metrics` exposition."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        revision: str,
        metadata: ModelMetadata,
        multiprocess_dir: str | None = None,
        baseline: Mapping[str, Any] | None = None,
        drift_max_features: int = drift.DEFAULT_MAX_FEATURES,
    ) -> None:
        if multiprocess_dir is None:
            multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        # Not auto_describe: it makes `register` collect at once, and the collector of
        # several workers then reads every worker's file at start-up, including a
        # sibling's that prometheus_client has created but not yet sized (it opens, then
        # truncates): unpacking its empty header crashed the worker now and then.
        self.registry = CollectorRegistry()
        # In multiprocess mode values live in files; the exposition registry only
        # holds the collector that aggregates them.
        target: CollectorRegistry | None = self.registry
        if multiprocess_dir:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
            target = None
        labels = ("model", "version")
        self._labels = (model, version)
        self.requests = Counter(
            "mlmodel_requests_total",
            "Answered requests by HTTP status code.",
            [*labels, "code"],
            registry=target,
        )
        self.duration = Histogram(
            "mlmodel_request_duration_seconds",
            "Time from the request's arrival to its answer.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=target,
        ).labels(model, version)
        # Requests shed by the bounds of `admission.py` and the batching queue, all of them
        # also counted as 503 in mlmodel_requests_total: the canary analysis tells a
        # revision that sheds more than the other from a cluster that is merely busy
        # (docs/analysis.md). Every reason is created at once so a rate is defined.
        rejected = Counter(
            "mlmodel_rejected_requests_total",
            "Inference requests shed with 503 because the server was at a bound, by bound.",
            [*labels, "reason"],
            registry=target,
        )
        self._rejected = {reason: rejected.labels(model, version, reason) for reason in SHED}
        self.batch_size = Histogram(
            "mlmodel_batch_size",
            "Rows per model execution (after merging concurrent requests).",
            labels,
            buckets=BATCH_BUCKETS,
            registry=target,
        ).labels(model, version)
        info = Gauge(
            "mlmodel_info",
            "The model served by this process (value is always 1).",
            [*labels, "revision", "digest"],
            registry=target,
            multiprocess_mode="max",
        )
        info.labels(model, version, revision, metadata.model_sha256).set(1)
        self._codes: dict[int, Any] = {}
        self._label_output = metadata.label_output
        self._label_index = -1
        self._task = metadata.task
        self._predictions: Counter | None = None
        self._classes: dict[Any, Any] = {}
        self._values: Any = None
        if self._label_output and self._task == "classification":
            self._predictions = Counter(
                "mlmodel_predictions_total",
                "Predicted rows per class of a classifier.",
                [*labels, "output", "class"],
                registry=target,
            )
            # Pre-create every known class so a rate is defined before the first hit.
            for cls in metadata.classes:
                self._class_child(str(cls))
        elif self._label_output and self._task == "regression":
            self._values = Histogram(
                "mlmodel_prediction_value",
                "Predicted values of a regressor, per row.",
                [*labels, "output"],
                buckets=VALUE_BUCKETS,
                registry=target,
            ).labels(model, version, self._label_output)

        # Input drift (`drift.py`): families now, the histograms once the session's
        # input names are known (`use_inputs`).
        self._baseline = baseline if drift_max_features > 0 else None
        self._drift_max_features = drift_max_features
        self.input_histograms: drift.InputHistograms | None = None
        self.output_histogram: drift.InputHistograms | None = None
        output = (self._baseline or {}).get("output")
        if output and self._label_output:
            self._output_drift(output, target)
        if self._baseline is not None:
            self._input_buckets = Counter(
                "mlmodel_input_bucket_total",
                "Served rows per bucket of the training baseline, per watched input feature.",
                [*labels, "feature", "bucket"],
                registry=target,
            )
            self._input_shares = Gauge(
                "mlmodel_input_baseline_share",
                "Share of the training sample in each bucket, per watched input feature.",
                [*labels, "feature", "bucket"],
                registry=target,
                multiprocess_mode="max",
            )

    def _output_drift(self, output: Mapping[str, Any], target: CollectorRegistry | None) -> None:
        """The training shares of the outputs; a regressor's served values are counted
        into the same buckets (a classifier's are mlmodel_predictions_total already)."""
        shares = Gauge(
            "mlmodel_output_baseline_share",
            "Share of the training sample's predictions per class, or per value bucket.",
            ["model", "version", "output", "bucket"],
            registry=target,
            multiprocess_mode="max",
        )
        if output.get("categories"):
            for cls, share in zip(output["categories"], output.get("shares") or (), strict=False):
                shares.labels(*self._labels, self._label_output, str(cls)).set(float(share))
            return
        buckets = Counter(
            "mlmodel_output_bucket_total",
            "Predicted values of a regressor per bucket of the training baseline.",
            ["model", "version", "output", "bucket"],
            registry=target,
        )
        self.output_histogram = drift.InputHistograms(
            {"features": [{**output, "name": self._label_output}]},
            [self._label_output],
            max_features=1,
            counter=lambda f, b: buckets.labels(*self._labels, f, b),
            share=lambda f, b: shares.labels(*self._labels, f, b),
        )

    def use_inputs(self, input_names: Sequence[str]) -> None:
        """Start counting inputs into the baseline's buckets (when there is one)."""
        if self._baseline is None:
            return
        self.input_histograms = drift.InputHistograms(
            self._baseline,
            input_names,
            max_features=self._drift_max_features,
            counter=lambda f, b: self._input_buckets.labels(*self._labels, f, b),
            share=lambda f, b: self._input_shares.labels(*self._labels, f, b),
        )

    def _class_child(self, cls: str) -> Any:
        child = self._classes.get(cls)
        if child is None:
            assert self._predictions is not None
            child = self._predictions.labels(*self._labels, self._label_output, cls)
            self._classes[cls] = child
        return child

    def use_outputs(self, output_names: Sequence[str]) -> None:
        """Tell where the label output is among the outputs the session returns."""
        names = list(output_names)
        self._label_index = names.index(self._label_output) if self._label_output in names else -1

    def observe_request(self, code: int, seconds: float) -> None:
        child = self._codes.get(code)
        if child is None:
            child = self.requests.labels(*self._labels, str(code))
            self._codes[code] = child
        child.inc()
        self.duration.observe(seconds)

    def observe_shed(self, reason: str) -> None:
        """A request answered 503 at a bound (one of SHED); its answer is counted apart."""
        self._rejected[reason].inc()

    def observe_loop_shed(self) -> None:
        """A request the connection shed at its head (`overload.py`): counted as answered
        503 at once, and as shed by the loop's bound."""
        self.observe_request(503, 0.0)
        self._rejected["loop"].inc()

    def observe_batch(
        self,
        rows: int,
        inputs: Sequence[np.ndarray[Any, Any]],
        outputs: Sequence[np.ndarray[Any, Any]],
    ) -> None:
        """Called from the batching thread after each model execution."""
        self.batch_size.observe(rows)
        if self.input_histograms is not None:
            self.input_histograms.observe(inputs)
        if self._label_index < 0:
            return
        labels = outputs[self._label_index]
        if self.output_histogram is not None:
            self.output_histogram.observe([labels])
        if self._predictions is not None:
            # collections.Counter over a short list is several times cheaper than np.unique.
            for value, count in collections.Counter(labels.reshape(-1).tolist()).items():
                key = value.decode() if isinstance(value, bytes) else str(value)
                self._class_child(key).inc(count)
        elif self._values is not None:
            for value in labels.reshape(-1).tolist():
                self._values.observe(float(value))

    def exposition(self) -> bytes:
        for histograms in (self.input_histograms, self.output_histogram):
            if histograms is not None:
                histograms.flush()
        return generate_latest(self.registry)
