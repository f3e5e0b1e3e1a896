"""Reading a runtime pod's /metrics text: what the analysis sees of requests, latency and
predictions, pods added together, and a snapshot surviving a round trip through status."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Histogram as PromHistogram

from mlmodel_operator.analysis.exposition import Histogram, MetricsTextError, Snapshot, parse
from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec
from mlmodel_runtime.serve.metrics import DURATION_BUCKETS, VALUE_BUCKETS, RuntimeMetrics

pytestmark = pytest.mark.unit

INF = math.inf


class Pod:
    """The runtime's metrics (same names, labels and buckets) in a registry of their own."""

    def __init__(self, *, version: str = "v2", task: str = "classification") -> None:
        self.registry = CollectorRegistry()
        labels = ("iris", version)
        self.requests = Counter(
            "mlmodel_requests_total", "", ["model", "version", "code"], registry=self.registry
        )
        self.duration = PromHistogram(
            "mlmodel_request_duration_seconds",
            "",
            ["model", "version"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        ).labels(*labels)
        # Present in every pod; the analysis must ignore what it does not read.
        PromHistogram(
            "mlmodel_batch_size", "", ["model", "version"], registry=self.registry
        ).labels(*labels).observe(4)
        Gauge(
            "mlmodel_info", "", ["model", "version", "revision", "digest"], registry=self.registry
        ).labels(*labels, "c41d2e8", "ab12").set(1)
        self._labels = labels
        self.predictions = (
            Counter(
                "mlmodel_predictions_total",
                "",
                ["model", "version", "output", "class"],
                registry=self.registry,
            )
            if task == "classification"
            else None
        )
        self.values = (
            PromHistogram(
                "mlmodel_prediction_value",
                "",
                ["model", "version", "output"],
                buckets=VALUE_BUCKETS,
                registry=self.registry,
            ).labels(*labels, "variable")
            if task == "regression"
            else None
        )

    def answer(self, code: int, seconds: float, times: int = 1) -> Pod:
        for _ in range(times):
            self.requests.labels(*self._labels, str(code)).inc()
            self.duration.observe(seconds)
        return self

    def predict(self, cls: str, rows: int) -> Pod:
        assert self.predictions is not None
        self.predictions.labels(*self._labels, "label", cls).inc(rows)
        return self

    def value(self, value: float, times: int = 1) -> Pod:
        assert self.values is not None
        for _ in range(times):
            self.values.observe(value)
        return self

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def test_requests_by_code_latency_and_classes_are_read() -> None:
    pod = Pod().answer(200, 0.004, times=8).answer(503, 0.2).answer(400, 0.001)
    pod.predict("setosa", 5).predict("versicolor", 3)
    snapshot = parse(pod.text())
    assert snapshot.requests == {"200": 8.0, "503": 1.0, "400": 1.0}
    assert snapshot.total_requests == 10.0
    assert snapshot.classes == {"setosa": 5.0, "versicolor": 3.0}
    assert snapshot.values is None
    assert snapshot.has_predictions
    latency = snapshot.latency
    assert latency is not None
    assert latency.bounds == (*DURATION_BUCKETS, INF)
    cumulative = dict(latency.buckets)
    assert cumulative[0.001] == 1.0  # the 400
    assert cumulative[0.005] == 9.0  # + eight answers in 4 ms
    assert cumulative[0.25] == 10.0  # + the slow 503
    assert cumulative[INF] == 10.0
    assert latency.count == 10.0
    assert latency.sum == pytest.approx(8 * 0.004 + 0.2 + 0.001)


def test_regressor_values_are_a_histogram() -> None:
    pod = Pod(task="regression").answer(200, 0.01, times=3).value(0.3, times=2).value(42.0)
    snapshot = parse(pod.text())
    assert snapshot.classes == {}
    values = snapshot.values
    assert values is not None
    assert values.bounds == (*VALUE_BUCKETS, INF)
    assert dict(values.buckets)[0.5] == 2.0
    assert dict(values.buckets)[50.0] == 3.0
    assert sum(values.masses()) == 3.0
    assert snapshot.has_predictions


def test_what_the_runtime_itself_writes_is_read() -> None:
    """The contract with mlmodel_runtime: its own exposition, not a look-alike."""
    metadata = ModelMetadata(
        inputs=(TensorSpec("input", "FP32", (-1, 4)),),
        outputs=(TensorSpec("label", "INT64", (-1,)),),
        task="classification",
        classes=(0, 1, 2),
        label_output="label",
    )
    metrics = RuntimeMetrics(model="iris", version="v2", revision="c41d2e8", metadata=metadata)
    metrics.use_outputs(["label"])
    metrics.observe_request(200, 0.003)
    metrics.observe_request(500, 0.02)
    metrics.observe_shed("queue")
    metrics.observe_request(503, 0.0001)
    metrics.observe_loop_shed()  # shed at its head by the connection (overload.py)
    metrics.observe_batch(3, [np.zeros((3, 4), np.float32)], [np.array([0, 2, 2])])
    snapshot = parse(metrics.exposition().decode())
    assert snapshot.requests == {"200": 1.0, "500": 1.0, "503": 2.0}
    assert snapshot.shed == {"concurrency": 0.0, "memory": 0.0, "queue": 1.0, "loop": 1.0}
    assert snapshot.classes == {"0": 1.0, "1": 0.0, "2": 2.0}  # known classes exist at zero
    assert snapshot.latency is not None
    assert snapshot.latency.observations == 4.0


def test_a_pod_before_its_first_request_has_no_requests_and_an_empty_histogram() -> None:
    snapshot = parse(Pod().text())
    assert snapshot.requests == {}
    assert snapshot.total_requests == 0.0
    assert snapshot.latency is not None
    assert snapshot.latency.observations == 0.0
    assert not snapshot.has_predictions  # a classifier whose classes are not yet known


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# HELP something else\nprocess_cpu_seconds_total 1.5\n",
    ],
)
def test_text_without_the_runtime_metrics_is_an_empty_snapshot(text: str) -> None:
    assert parse(text) == Snapshot()


@pytest.mark.parametrize(
    "text",
    [
        'mlmodel_requests_total{code="200" 5\n',
        "mlmodel_requests_total{code=200} 5\n",
        "mlmodel_requests_total five\n",
    ],
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(MetricsTextError):
        parse(text)


def test_pods_of_a_revision_add_up() -> None:
    one = parse(Pod().answer(200, 0.004, times=3).predict("setosa", 3).text())
    two = parse(Pod().answer(200, 0.02).answer(500, 0.3).predict("virginica", 2).text())
    both = one.merge(two)
    assert both.requests == {"200": 4.0, "500": 1.0}
    assert both.classes == {"setosa": 3.0, "virginica": 2.0}
    assert both.latency is not None
    assert both.latency.observations == 5.0
    assert dict(both.latency.buckets)[0.005] == 3.0
    assert dict(both.latency.buckets)[0.02] == 4.0
    assert both.latency.sum == pytest.approx(3 * 0.004 + 0.02 + 0.3)
    assert one.merge(Snapshot()) == one
    assert Snapshot().merge(two) == two


def test_histograms_with_different_bounds_merge_over_the_bounds_both_have() -> None:
    fine = Histogram(((0.1, 1.0), (0.2, 3.0), (0.5, 4.0), (INF, 4.0)), count=4, sum=1.0)
    coarse = Histogram(((0.2, 10.0), (INF, 12.0)), count=12, sum=3.0)
    assert fine.merge(coarse) == Histogram(((0.2, 13.0), (INF, 16.0)), count=16, sum=4.0)


@pytest.mark.parametrize(
    "snapshot",
    [
        Snapshot(),
        parse(Pod().answer(200, 0.004, times=3).answer(502, 12.0).predict("setosa", 3).text()),
        parse(Pod(task="regression").answer(200, 0.01).value(-3.5).text()),
        Snapshot(requests={"200": 5.0, "503": 2.0}, shed={"concurrency": 2.0}),
    ],
    ids=["empty", "classifier", "regressor", "shedding"],
)
def test_a_snapshot_survives_status(snapshot: Snapshot) -> None:
    text = snapshot.to_json()
    assert isinstance(text, str)
    assert "+Inf" in text or snapshot.latency is None
    assert Snapshot.from_json(text) == snapshot
    assert Snapshot.from_dict(snapshot.to_dict()) == snapshot


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"requests": {"200": "many"}}'])
def test_a_broken_stored_snapshot_is_refused(text: str) -> None:
    with pytest.raises(MetricsTextError):
        Snapshot.from_json(text)
