"""The canary analysis: the spec with its defaults, windows over counter resets, a verdict per
metric (with the statistics behind error rate, p99 and divergence), and what the rollout does
after one interval and after several."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram

from mlmodel_operator.analysis import windows as windows_module
from mlmodel_operator.analysis.exposition import Histogram, Snapshot, parse
from mlmodel_operator.analysis.judging import (
    AnalysisState,
    Continue,
    Outcome,
    Pause,
    Rollback,
    decide,
    judge,
)
from mlmodel_operator.analysis.metric import MetricResult, MetricSpec, Verdict
from mlmodel_operator.analysis.spec import DEFAULT_METRICS, AnalysisSpec, parse_analysis
from mlmodel_operator.analysis.windows import (
    error_rate,
    histogram_quantile,
    increase_p_value,
    jensen_shannon,
    window,
)
from mlmodel_operator.errors import SpecError
from mlmodel_runtime.serve.metrics import DURATION_BUCKETS, VALUE_BUCKETS

pytestmark = pytest.mark.unit

INF = math.inf
INTERVAL = 30.0


def exposition(
    *,
    codes: dict[int, int] | None = None,
    latencies: dict[float, int] | None = None,
    classes: dict[str, int] | None = None,
    values: dict[float, int] | None = None,
) -> str:
    """A runtime pod's /metrics text: `codes` answers per HTTP code, `latencies` answers per
    duration, `classes` predicted rows per class, `values` predicted rows per value."""
    registry = CollectorRegistry()
    labels = ("iris", "v2")
    requests = Counter(
        "mlmodel_requests_total", "", ["model", "version", "code"], registry=registry
    )
    for code, times in (codes or {}).items():
        requests.labels(*labels, str(code)).inc(times)
    duration = PromHistogram(
        "mlmodel_request_duration_seconds",
        "",
        ["model", "version"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    ).labels(*labels)
    for seconds, times in (latencies or {}).items():
        for _ in range(times):
            duration.observe(seconds)
    if classes is not None:
        predictions = Counter(
            "mlmodel_predictions_total",
            "",
            ["model", "version", "output", "class"],
            registry=registry,
        )
        for cls, rows in classes.items():
            predictions.labels(*labels, "label", cls).inc(rows)
    if values is not None:
        histogram = PromHistogram(
            "mlmodel_prediction_value",
            "",
            ["model", "version", "output"],
            buckets=VALUE_BUCKETS,
            registry=registry,
        ).labels(*labels, "variable")
        for value, rows in values.items():
            for _ in range(rows):
                histogram.observe(value)
    return generate_latest(registry).decode()


def pod(
    ok: int = 0,
    errors: int = 0,
    *,
    client_errors: int = 0,
    seconds: float = 0.004,
    latencies: dict[float, int] | None = None,
    classes: dict[str, int] | None = None,
    values: dict[float, int] | None = None,
) -> Snapshot:
    """A parsed pod: `ok` 200s, `errors` 500s, `client_errors` 400s, all taking `seconds`
    unless `latencies` says otherwise."""
    codes = {200: ok, 500: errors, 400: client_errors}
    codes = {code: n for code, n in codes.items() if n}
    return parse(
        exposition(
            codes=codes,
            latencies=latencies
            if latencies is not None
            else {seconds: ok + errors + client_errors},
            classes=classes,
            values=values,
        )
    )


def verdicts(results: list[MetricResult]) -> dict[str, str]:
    return {r.name: r.verdict for r in results}


def one(
    metric: MetricSpec,
    stable: Snapshot,
    canary: Snapshot,
    *,
    min_samples: int = 100,
    custom_values: dict[str, float | None] | None = None,
) -> MetricResult:
    results = judge(
        [metric],
        stable,
        canary,
        min_samples=min_samples,
        interval_s=INTERVAL,
        custom_values=custom_values or {},
    )
    assert len(results) == 1
    return results[0]


# --- the spec ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {}])
def test_no_analysis_section_gets_every_default(raw: dict[str, Any] | None) -> None:
    spec = parse_analysis(raw)
    assert spec == AnalysisSpec()
    assert (spec.provider, spec.interval_s, spec.min_samples) == ("scrape", 30.0, 100)
    assert (spec.failure_limit, spec.on_inconclusive) == (2, "pause")
    assert spec.metrics == DEFAULT_METRICS
    by_name = {m.name: m for m in spec.metrics}
    assert by_name["error-rate"].limit == "max 0.05, maxIncrease 0.01"
    assert by_name["latency-p99"].limit == "maxRatio 2"
    assert by_name["prediction-divergence"].limit == "max 0.1"


def test_the_design_sketch_parses() -> None:
    spec = parse_analysis(
        {
            "provider": {"prometheus": {"url": "http://prometheus.monitoring:9090"}},
            "interval": "1m",
            "minSamples": 50,
            "failureLimit": 0,
            "onInconclusive": "rollback",
            "metrics": [
                {"name": "error-rate", "max": 0.01, "maxIncrease": 0.005},
                {"name": "latency-p99", "maxSeconds": 0.05, "maxRatio": 1.5},
                {"name": "prediction-divergence"},
                {"name": "custom", "prometheus": {"query": "sum(a)"}, "max": 5},
                {"name": "custom", "prometheus": {"query": "sum(b)"}, "min": 1},
            ],
        }
    )
    assert spec.provider == "prometheus"
    assert spec.prometheus_url == "http://prometheus.monitoring:9090"
    assert (spec.interval_s, spec.min_samples, spec.failure_limit) == (60.0, 50, 0)
    assert spec.on_inconclusive == "rollback"
    assert [m.key for m in spec.metrics] == [
        "error-rate",
        "latency-p99",
        "prediction-divergence",
        "custom",
        "custom#2",
    ]
    assert spec.metrics[0] == MetricSpec("error-rate", max=0.01, max_increase=0.005)
    assert spec.metrics[1].limit == "maxSeconds 0.05, maxRatio 1.5"
    # Without limits a metric gets its default ones; asked for, it is never skipped.
    assert spec.metrics[2] == MetricSpec("prediction-divergence", max=0.1)
    assert (spec.metrics[4].query, spec.metrics[4].min, spec.metrics[4].max) == ("sum(b)", 1, None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"metrics": [{"name": "throughput"}]}, "not one of"),
        ({"metrics": [{"name": "error-rate", "maxSeconds": 1}]}, "takes max and maxIncrease"),
        ({"metrics": [{"name": "latency-p99", "max": 1}]}, "not max"),
        ({"metrics": [{"name": "request-rate"}]}, "needs min or max"),
        ({"metrics": [{"name": "custom", "max": 1}]}, "prometheus.query"),
        ({"onInconclusive": "ignore"}, "pause or rollback"),
        ({"interval": "0s"}, "at least 1s"),
        ({"interval": "500ms"}, "at least 1s"),
        ({"interval": "soon"}, "duration"),
        ({"minSamples": 0}, "minSamples"),
        ({"failureLimit": -1}, "failureLimit"),
    ],
)
def test_what_the_schema_cannot_express_is_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_analysis(raw)


# --- windows ----------------------------------------------------------------------------


def test_a_window_is_what_happened_in_between() -> None:
    start = pod(900, 9, seconds=0.004, classes={"setosa": 500, "virginica": 400})
    end = pod(1000, 12, seconds=0.004, classes={"setosa": 560, "virginica": 450})
    delta = window(start, end)
    assert delta.requests == {"200": 100.0, "500": 3.0}
    assert delta.classes == {"setosa": 60.0, "virginica": 50.0}
    assert delta.latency is not None
    assert delta.latency.observations == 103.0
    assert delta.latency.count == 103.0
    assert delta.latency.sum == pytest.approx(103 * 0.004)
    assert dict(delta.latency.buckets)[0.003] == 0.0
    assert dict(delta.latency.buckets)[0.005] == 103.0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ({"200": 5.0}, {"200": 5.0}, {"200": 0.0}),
        # The pod restarted: 40 is all it answered since.
        ({"200": 1000.0, "500": 3.0}, {"200": 40.0, "500": 1.0}, {"200": 40.0, "500": 1.0}),
        # A code first seen during the window counts in full.
        ({"200": 10.0}, {"200": 15.0, "503": 2.0}, {"200": 5.0, "503": 2.0}),
        # A series gone at the end counts nothing.
        ({"200": 10.0, "500": 4.0}, {"200": 12.0}, {"200": 2.0}),
        ({}, {"200": 7.0}, {"200": 7.0}),
    ],
    ids=["unchanged", "reset", "appeared", "vanished", "new-pod"],
)
def test_counters_in_a_window(
    start: dict[str, float], end: dict[str, float], expected: dict[str, float]
) -> None:
    assert window(Snapshot(requests=start), Snapshot(requests=end)).requests == expected


def test_a_restarted_pods_histogram_is_taken_whole() -> None:
    before = Histogram(((0.01, 900.0), (0.1, 1000.0), (INF, 1000.0)), count=1000, sum=5.0)
    after = Histogram(((0.01, 10.0), (0.1, 20.0), (INF, 20.0)), count=20, sum=0.4)
    assert window(Snapshot(latency=before), Snapshot(latency=after)).latency == after
    # One bucket lower is a reset too, even if the count grew.
    odd = Histogram(((0.01, 800.0), (0.1, 1100.0), (INF, 1100.0)), count=1100, sum=6.0)
    assert window(Snapshot(latency=before), Snapshot(latency=odd)).latency == odd
    assert window(Snapshot(), Snapshot(latency=after)).latency == after
    assert window(Snapshot(latency=before), Snapshot()).latency is None


def test_windows_of_pods_merge_into_the_revision() -> None:
    a0, a1 = pod(100), pod(160, 2)
    b0, b1 = pod(5000), pod(30)  # pod b restarted
    merged = window(a0, a1).merge(window(b0, b1))
    assert merged.requests == {"200": 90.0, "500": 2.0}


# --- error rate -------------------------------------------------------------------------

ERROR_RATE = MetricSpec("error-rate", max=0.05, max_increase=0.01)
MAX_ONLY = MetricSpec("error-rate", max=0.05)
INCREASE_ONLY = MetricSpec("error-rate", max_increase=0.01)


def test_client_errors_are_not_errors() -> None:
    assert error_rate(pod(90, 2, client_errors=8)) == pytest.approx(0.02)
    assert error_rate(Snapshot(requests={"200": 1, "404": 1, "429": 1, "503": 1})) == 0.25
    assert error_rate(Snapshot()) is None


@pytest.mark.parametrize(
    ("metric", "stable", "canary", "min_samples", "verdict"),
    [
        (ERROR_RATE, pod(998, 2), pod(997, 3), 100, "Pass"),
        (ERROR_RATE, pod(998, 2), pod(917, 83), 100, "Fail"),  # over max
        (ERROR_RATE, pod(1000), pod(60, 0), 100, "Inconclusive"),  # 60 canary requests
        (ERROR_RATE, pod(1000), pod(50, 10), 100, "Inconclusive"),  # even at 17 % errors
        (ERROR_RATE, pod(40), pod(1000), 100, "Inconclusive"),  # no baseline for maxIncrease
        (MAX_ONLY, pod(40), pod(1000), 100, "Pass"),  # max needs no baseline
        (ERROR_RATE, pod(1000), pod(900, 0, client_errors=100), 100, "Pass"),  # 4xx
        # The two-proportion test: one error in 20 is no evidence against 0 in 20 ...
        (INCREASE_ONLY, pod(20), pod(19, 1), 20, "Pass"),
        # ... 60 in 1000 against 5 in 1000 is.
        (INCREASE_ONLY, pod(995, 5), pod(940, 60), 100, "Fail"),
        # Over maxIncrease but not significant: 3 in 100 against 1 in 100 (p = 0.16).
        (INCREASE_ONLY, pod(99, 1), pod(97, 3), 100, "Pass"),
        # Significant and over: 8 in 400 against 2 in 400 (p = 0.028).
        (INCREASE_ONLY, pod(398, 2), pod(392, 8), 100, "Fail"),
        # Significant but within maxIncrease: 40 in 10000 against 10 in 10000.
        (INCREASE_ONLY, pod(9990, 10), pod(9960, 40), 100, "Pass"),
    ],
)
def test_error_rate(
    metric: MetricSpec, stable: Snapshot, canary: Snapshot, min_samples: int, verdict: str
) -> None:
    result = one(metric, stable, canary, min_samples=min_samples)
    assert result.verdict == verdict, result.reason
    assert result.canary == error_rate(canary)


def test_error_rate_reason_names_metric_values_and_limit() -> None:
    result = one(ERROR_RATE, pod(998, 2), pod(917, 83))
    assert result.reason == "error-rate 0.083 > max 0.05 (stable 0.002)"
    assert result.limit == "max 0.05, maxIncrease 0.01"
    assert (result.stable, result.canary) == (0.002, 0.083)
    few = one(ERROR_RATE, pod(1000), pod(60))
    assert "60 canary requests, fewer than minSamples 100" in few.reason


def shedding(ok: int, shed: int, *, not_ready: int = 0, pods: int = 0) -> Snapshot:
    """`pods` pods (0: not known) that answered `ok` 200s and shed `shed` requests with
    503 at a bound; `not_ready` more 503s were not shed (the model was not loaded)."""
    return Snapshot(
        requests={"200": ok, "503": shed + not_ready},
        shed={"concurrency": shed} if shed else {},
        pods=pods,
    )


@pytest.mark.parametrize(
    ("metric", "stable", "canary", "verdict", "canary_rate"),
    [
        # A busy cluster: both shed about 30%, the canary's shed 503s are set aside.
        (ERROR_RATE, shedding(700, 300), shedding(700, 300), "Pass", 0.0),
        (INCREASE_ONLY, shedding(700, 300), shedding(690, 310), "Pass", 0.0),  # p = 0.31
        # The canary sheds 30% beside a stable that sheds nothing: less capacity.
        (ERROR_RATE, shedding(1000, 0), shedding(700, 300), "Fail", 0.3),
        (INCREASE_ONLY, shedding(1000, 0), shedding(700, 300), "Fail", 0.3),
        # No stable traffic to compare with (too few stable requests): set aside.
        (MAX_ONLY, shedding(28, 12), shedding(690, 310), "Pass", 0.0),
        # ... and with fewer than minSamples requests left, nothing can be said.
        (MAX_ONLY, shedding(28, 12), shedding(60, 940), "Inconclusive", 0.0),
        # The weight routers keep the stable whole: 4 stable pods take 60% of a busy
        # cluster's traffic without shedding, the canary's 1 pod 40% (twice a stable
        # pod's load) and sheds. It serves more per pod than a stable pod: not slower.
        (ERROR_RATE, shedding(1500, 0, pods=4), shedding(700, 300, pods=1), "Pass", 0.0),
        # The same shares from a canary of 4 pods: each serves 175 against 375, slower.
        (ERROR_RATE, shedding(1500, 0, pods=4), shedding(700, 300, pods=4), "Fail", 0.3),
        # A 503 that was not shed is an error whatever the stable sheds.
        (MAX_ONLY, shedding(700, 300), shedding(900, 0, not_ready=100), "Fail", 0.1),
    ],
)
def test_shed_503s_count_only_beyond_the_stables_share(
    metric: MetricSpec, stable: Snapshot, canary: Snapshot, verdict: str, canary_rate: float
) -> None:
    result = one(metric, stable, canary)
    assert result.verdict == verdict, result.reason
    assert result.canary == pytest.approx(canary_rate)


def test_the_worked_examples_of_the_statistics_hold() -> None:
    assert doctest.testmod(windows_module).failed == 0


def test_the_error_rate_reason_says_what_was_shed() -> None:
    busy = one(ERROR_RATE, shedding(700, 300), shedding(700, 300))
    assert busy.reason == (
        "error-rate 0 within max 0.05, maxIncrease 0.01 (stable 0; shed 0.3, stable 0.3: set aside)"
    )
    alone = one(MAX_ONLY, shedding(28, 12), shedding(690, 310))
    assert alone.reason.endswith("; shed 0.31, set aside: no stable traffic to compare)")
    few = one(MAX_ONLY, shedding(28, 12), shedding(60, 940))
    assert "60 requests not shed, fewer than minSamples 100" in few.reason
    assert ";" not in one(ERROR_RATE, pod(998, 2), pod(997, 3)).reason


@pytest.mark.parametrize(
    ("canary", "stable", "p_value"),
    [
        ((1, 20), (0, 20), 0.1556),
        ((60, 1000), (5, 1000), 2.02e-12),
        ((8, 400), (2, 400), 0.0281),
        ((5, 1000), (5, 1000), 0.5),
        ((0, 1000), (0, 1000), 1.0),
        ((2, 1000), (9, 1000), 0.9822),
    ],
)
def test_increase_p_value(canary: tuple[int, int], stable: tuple[int, int], p_value: float) -> None:
    assert increase_p_value(*canary, *stable) == pytest.approx(p_value, rel=1e-2)


# --- latency ----------------------------------------------------------------------------


def test_p99_interpolates_like_prometheus() -> None:
    # 90 answers in (0.0075, 0.01], 10 in (0.01, 0.015]: rank 99 is the 9th of 10 in the
    # second bucket, so 0.01 + 0.005 * 0.9.
    snapshot = pod(latencies={0.008: 90, 0.015: 10})
    assert histogram_quantile(0.99, snapshot.latency) == pytest.approx(0.0145)
    assert histogram_quantile(0.5, snapshot.latency) == pytest.approx(0.0075 + 0.0025 * 50 / 90)


@pytest.mark.parametrize(
    ("histogram", "q", "expected"),
    [
        (None, 0.99, None),
        (Histogram(((0.1, 0.0), (INF, 0.0))), 0.99, None),  # no observations
        (Histogram(((0.1, 5.0), (1.0, 10.0))), 0.99, None),  # no +Inf bucket
        (Histogram(((INF, 10.0),)), 0.99, None),  # one bucket
        (Histogram(((0.1, 10.0), (INF, 10.0))), 0.5, 0.05),  # from 0 in the first bucket
        (Histogram(((0.1, 1.0), (1.0, 2.0), (INF, 100.0))), 0.99, 1.0),  # rank in +Inf
        (Histogram(((-1.0, 10.0), (INF, 10.0))), 0.5, -1.0),  # first bound not positive
        (Histogram(((0.1, 6.0), (0.2, 4.0), (INF, 10.0))), 0.5, 5 / 6 * 0.1),  # made monotonic
    ],
)
def test_histogram_quantile(histogram: Histogram | None, q: float, expected: float | None) -> None:
    result = histogram_quantile(q, histogram)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


FAST = {0.004: 990, 0.008: 10}  # p99 in (0.003, 0.005]: 0.005
SLOW = {0.004: 900, 0.04: 100}  # p99 in (0.03, 0.05]: 0.048


@pytest.mark.parametrize(
    ("metric", "stable", "canary", "verdict"),
    [
        (MetricSpec("latency-p99", max_ratio=2.0), FAST, FAST, "Pass"),
        (MetricSpec("latency-p99", max_ratio=2.0), FAST, SLOW, "Fail"),
        (MetricSpec("latency-p99", max_ratio=20.0), FAST, SLOW, "Pass"),
        (MetricSpec("latency-p99", max_seconds=0.03), FAST, SLOW, "Fail"),
        (MetricSpec("latency-p99", max_seconds=0.05), FAST, SLOW, "Pass"),
        (MetricSpec("latency-p99", max_seconds=0.05), {0.004: 10}, SLOW, "Pass"),
        (MetricSpec("latency-p99", max_ratio=2.0), {0.004: 10}, SLOW, "Inconclusive"),
        (MetricSpec("latency-p99", max_seconds=1.0), FAST, {0.004: 99}, "Inconclusive"),
    ],
)
def test_latency_p99(
    metric: MetricSpec, stable: dict[float, int], canary: dict[float, int], verdict: str
) -> None:
    result = one(
        metric,
        pod(sum(stable.values()), latencies=stable),
        pod(sum(canary.values()), latencies=canary),
    )
    assert result.verdict == verdict, result.reason


def test_latency_reason_says_how_much_slower() -> None:
    result = one(
        MetricSpec("latency-p99", max_ratio=2.0),
        pod(1000, latencies=FAST),
        pod(1000, latencies=SLOW),
    )
    assert result.stable == pytest.approx(0.005)
    assert result.canary == pytest.approx(0.048)
    assert result.reason == "latency-p99 0.048s is 9.60x stable 0.005s > maxRatio 2"


# --- prediction divergence --------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ([5, 5], [5, 5], 0.0),
        ([50, 30, 20], [5, 3, 2], 0.0),  # counts, not probabilities
        ([10, 0], [0, 10], 1.0),
        ([3, 0, 0], [0, 2, 7], 1.0),
        ([1, 0], [1, 1], 0.3113),
        ([1, 1], [1, 0], 0.3113),  # symmetric
        ([0, 0], [1, 1], None),
    ],
)
def test_jensen_shannon(first: list[float], second: list[float], expected: float | None) -> None:
    result = jensen_shannon(first, second)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-4)


DIVERGENCE = MetricSpec("prediction-divergence", max=0.1)
IRIS = {"setosa": 340, "versicolor": 330, "virginica": 330}
SHIFTED = {"setosa": 800, "versicolor": 100, "virginica": 100}


@pytest.mark.parametrize(
    ("metric", "stable", "canary", "verdict"),
    [
        (DIVERGENCE, pod(1000, classes=IRIS), pod(1000, classes=IRIS), "Pass"),
        (DIVERGENCE, pod(1000, classes=IRIS), pod(1000, classes=SHIFTED), "Fail"),
        # A class only the canary predicts: JSD is still defined (PSI would be infinite).
        (
            DIVERGENCE,
            pod(1000, classes={"a": 1000}),
            pod(1000, classes={"a": 990, "b": 10}),
            "Pass",
        ),
        (
            DIVERGENCE,
            pod(1000, values={0.3: 500, 3.0: 500}),
            pod(1000, values={0.3: 480, 3.0: 520}),
            "Pass",
        ),
        (
            DIVERGENCE,
            pod(1000, values={0.3: 500, 3.0: 500}),
            pod(1000, values={30.0: 1000}),
            "Fail",
        ),
        (DIVERGENCE, pod(50, classes=IRIS), pod(1000, classes=SHIFTED), "Inconclusive"),
        (DIVERGENCE, pod(1000), pod(1000), "Inconclusive"),  # asked for, no predictions
        (DIVERGENCE, pod(1000, classes=IRIS), pod(1000, values={1.0: 9}), "Inconclusive"),
        (DIVERGENCE, pod(1000, classes={"a": 0}), pod(1000, classes={"a": 0}), "Inconclusive"),
    ],
)
def test_prediction_divergence(
    metric: MetricSpec, stable: Snapshot, canary: Snapshot, verdict: str
) -> None:
    result = one(metric, stable, canary)
    assert result.verdict == verdict, result.reason


def test_the_default_divergence_is_left_out_for_a_model_without_predictions() -> None:
    results = judge(DEFAULT_METRICS, pod(1000), pod(1000), min_samples=100, interval_s=INTERVAL)
    assert verdicts(results) == {"error-rate": "Pass", "latency-p99": "Pass"}
    with_classes = judge(
        DEFAULT_METRICS,
        pod(1000, classes=IRIS),
        pod(1000, classes=IRIS),
        min_samples=100,
        interval_s=INTERVAL,
    )
    assert verdicts(with_classes)["prediction-divergence"] == "Pass"


# --- request rate and custom ------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "canary_requests", "verdict"),
    [
        (MetricSpec("request-rate", min=1.0), 300, "Pass"),  # 10/s
        (MetricSpec("request-rate", min=1.0), 0, "Fail"),  # no traffic reaches the canary
        (MetricSpec("request-rate", min=5.0), 60, "Fail"),  # 2/s: a count is exact
        (MetricSpec("request-rate", max=5.0), 300, "Fail"),
        (MetricSpec("request-rate", min=1.0), 60, "Inconclusive"),  # 2/s but < minSamples
    ],
)
def test_request_rate(metric: MetricSpec, canary_requests: int, verdict: str) -> None:
    result = one(metric, pod(3000), pod(canary_requests))
    assert result.verdict == verdict, result.reason
    assert result.canary == pytest.approx(canary_requests / INTERVAL)
    assert result.stable == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ({"custom": 3.0}, "Pass"),
        ({"custom": 7.0}, "Fail"),
        ({"custom": 0.5}, "Fail"),
        ({"custom": None}, "Inconclusive"),
        ({"custom": math.nan}, "Inconclusive"),
        ({}, "Inconclusive"),
        ({"custom#2": 3.0}, "Inconclusive"),  # another custom metric's value
    ],
)
def test_custom(values: dict[str, float | None], verdict: str) -> None:
    metric = MetricSpec("custom", min=1.0, max=5.0, query="sum(x)")
    result = one(metric, pod(1000), pod(1000), custom_values=values)
    assert result.verdict == verdict, result.reason


def test_custom_with_few_requests_is_inconclusive() -> None:
    metric = MetricSpec("custom", max=5.0, query="sum(x)")
    assert one(metric, pod(1000), pod(10), custom_values={"custom": 1.0}).verdict == "Inconclusive"


def test_no_traffic_at_all_is_never_a_pass() -> None:
    metrics = (
        *DEFAULT_METRICS,
        MetricSpec("request-rate", max=100.0),
        MetricSpec("custom", max=5.0, query="q"),
    )
    results = judge(
        metrics,
        Snapshot(),
        Snapshot(),
        min_samples=1,
        interval_s=INTERVAL,
        custom_values={"custom": 0.0},
    )
    assert set(verdicts(results).values()) == {"Inconclusive"}


# --- deciding ---------------------------------------------------------------------------


def result(verdict: Verdict, name: str = "error-rate") -> MetricResult:
    reasons = {
        "Pass": f"{name} 0.002 within max 0.05 (stable 0.002)",
        "Fail": f"{name} 0.083 > max 0.05 (stable 0.002)",
        "Inconclusive": f"{name}: 12 canary requests, fewer than minSamples 100",
    }
    canary = {"Pass": 0.002, "Fail": 0.083, "Inconclusive": 0.0}[verdict]
    return MetricResult(name, 0.002, canary, "max 0.05", verdict, reasons[verdict])


PASS, FAIL = result(Verdict.PASS), result(Verdict.FAIL)
UNSURE = result(Verdict.INCONCLUSIVE)
LATENCY_PASS = result(Verdict.PASS, "latency-p99")


def run(
    intervals: list[list[MetricResult]], *, failure_limit: int = 2, on_inconclusive: str = "pause"
) -> tuple[AnalysisState, list[Outcome]]:
    """Several intervals, the state going through status between them as it would."""
    state, outcomes = AnalysisState(), []
    for results in intervals:
        state, outcome = decide(
            AnalysisState.from_status(state.to_status()),
            results,
            failure_limit=failure_limit,
            on_inconclusive=on_inconclusive,
        )
        outcomes.append(outcome)
    return state, outcomes


def kinds(outcomes: list[Outcome]) -> list[str]:
    return [type(o).__name__ for o in outcomes]


@pytest.mark.parametrize(
    ("intervals", "failure_limit", "expected"),
    [
        ([[PASS, LATENCY_PASS]] * 3, 2, ["Continue"] * 3),
        # Failures count in total, not in a row: the third failed interval rolls back.
        ([[FAIL], [PASS], [FAIL], [PASS], [FAIL]], 2, ["Pause", "Continue"] * 2 + ["Rollback"]),
        ([[FAIL], [FAIL], [FAIL]], 2, ["Pause", "Pause", "Rollback"]),
        ([[FAIL]], 0, ["Rollback"]),
        ([[PASS], [FAIL], [FAIL]], 1, ["Continue", "Pause", "Rollback"]),
    ],
)
def test_failure_limit_across_intervals(
    intervals: list[list[MetricResult]], failure_limit: int, expected: list[str]
) -> None:
    _, outcomes = run(intervals, failure_limit=failure_limit)
    assert kinds(outcomes) == expected


def test_the_rollback_reason_names_metric_values_limit_and_intervals() -> None:
    state, outcomes = run([[FAIL, LATENCY_PASS], [PASS, LATENCY_PASS], [FAIL], [FAIL]])
    assert outcomes[-1] == Rollback(
        "error-rate 0.083 > max 0.05 (stable 0.002) in 3 of 4 intervals"
    )
    assert isinstance(outcomes[0], Pause)
    assert "holding: 1 failed of 2 tolerated" in outcomes[0].reason
    assert (state.intervals, state.failures, state.inconclusive) == (4, 3, 0)
    assert state.last_verdict == "Fail"
    assert state.metric_failures == {"error-rate": 3}


@pytest.mark.parametrize(
    ("on_inconclusive", "expected"),
    [("pause", Pause), ("rollback", Rollback)],
)
def test_inconclusive_pauses_or_rolls_back(on_inconclusive: str, expected: type) -> None:
    state, outcomes = run(
        [[PASS, result(Verdict.INCONCLUSIVE, "latency-p99")]], on_inconclusive=on_inconclusive
    )
    assert isinstance(outcomes[0], expected)
    assert outcomes[0].reason == (
        "analysis inconclusive: latency-p99: 12 canary requests, fewer than minSamples 100"
    )
    assert (state.inconclusive, state.failures, state.last_verdict) == (1, 0, "Inconclusive")


def test_a_paused_analysis_continues_once_conclusive() -> None:
    _, outcomes = run([[UNSURE], [UNSURE], [PASS]])
    assert kinds(outcomes) == ["Pause", "Pause", "Continue"]


@pytest.mark.parametrize("on_inconclusive", ["pause", "rollback"])
@pytest.mark.parametrize(
    "results",
    [[], [UNSURE], [PASS, UNSURE], [FAIL, UNSURE]],
    ids=["nothing-judged", "inconclusive", "pass-and-inconclusive", "fail-and-inconclusive"],
)
def test_missing_data_never_continues(results: list[MetricResult], on_inconclusive: str) -> None:
    _, outcome = decide(AnalysisState(), results, failure_limit=2, on_inconclusive=on_inconclusive)
    assert not isinstance(outcome, Continue)
    if on_inconclusive == "rollback":
        assert isinstance(outcome, Rollback)


def test_the_state_round_trips_through_status() -> None:
    state, _ = run([[FAIL, LATENCY_PASS], [UNSURE, LATENCY_PASS]])
    status = state.to_status()
    assert status["interval"] == 2
    assert status["failures"] == 1
    assert status["metrics"][0] == {
        "name": "error-rate",
        "stable": 0.002,
        "canary": 0.0,
        "limit": "max 0.05",
        "verdict": "Inconclusive",
        "reason": "error-rate: 12 canary requests, fewer than minSamples 100",
    }
    assert AnalysisState.from_status(status) == state
    assert AnalysisState.from_status(None) == AnalysisState()


def test_an_unknown_inconclusive_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="pause or rollback"):
        decide(AnalysisState(), [PASS], failure_limit=2, on_inconclusive="ignore")


# --- the whole interval -----------------------------------------------------------------


def test_three_intervals_of_a_bad_canary_roll_it_back() -> None:
    """From scraped text to the outcome, as the reconcile loop will run it."""
    spec = parse_analysis({})
    stable, canary = pod(0), pod(0)
    stable_ok = canary_ok = canary_errors = 0
    state, outcomes = AnalysisState(), []
    for _ in range(3):
        stable_ok, canary_ok, canary_errors = stable_ok + 2000, canary_ok + 460, canary_errors + 40
        stable_end = pod(stable_ok, classes={"a": stable_ok // 2, "b": stable_ok // 2})
        canary_end = pod(
            canary_ok, canary_errors, classes={"a": canary_ok // 2, "b": canary_ok // 2}
        )
        results = judge(
            spec.metrics,
            window(stable, stable_end),
            window(canary, canary_end),
            min_samples=spec.min_samples,
            interval_s=spec.interval_s,
        )
        state, outcome = decide(
            state, results, failure_limit=spec.failure_limit, on_inconclusive=spec.on_inconclusive
        )
        outcomes.append(outcome)
        stable, canary = stable_end, canary_end
    assert kinds(outcomes) == ["Pause", "Pause", "Rollback"]
    assert outcomes[-1].reason.startswith(
        "error-rate 0.08 > max 0.05 (stable 0) in 3 of 3 intervals"
    )
    assert verdicts(list(state.metrics)) == {
        "error-rate": "Fail",
        "latency-p99": "Pass",
        "prediction-divergence": "Pass",
    }
