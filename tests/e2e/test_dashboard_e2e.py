"""The Grafana dashboard of examples/grafana/, every query of it executed against the
real Prometheus of the e2e environment during a real rollout: runtime pods scraped
through Kubernetes service discovery, the operator process through the operator's
scrape job (honour_labels), a canary judged under load through its Service, promoted.

Each query must return series, and the figures must be the rollout's: the canary's
weight steps, both sides serving, the promotion counted, the judged divergence of a
good canary below its limit. The panels are then drawn to a PNG (localenv.dashboard),
which is how docs/images/mlmodel-rollouts.png is made (`make dashboard-png`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv import dashboard, mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus
from tests.helpers.kube import apply, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1, start_load

pytestmark = pytest.mark.e2e

WEIGHT = 50
SCRAPE_S = 1.0  # the e2e Prometheus's scrape interval (localenv.prometheus)
ROLLOUT = {
    "steps": [{"weight": WEIGHT, "pause": {"duration": "12s"}}, {"weight": 100}],
    "analysis": {
        "provider": {"scrape": {}},
        "interval": "2s",
        "minSamples": 5,
        "metrics": [
            {"name": "error-rate", "max": 0.01},
            {"name": "latency-p99", "maxSeconds": 1.0},
            {"name": "prediction-divergence", "max": 0.1},
        ],
    },
    "scaleDownDelaySeconds": 2,
    "progressDeadlineSeconds": 120,
}


@pytest.fixture
def scraped_operators(prometheus: Prometheus) -> Iterator[Prometheus]:
    """The session's Prometheus, told to scrape this test's operator processes only."""
    yield prometheus
    prometheus.scrape_operators([])


def series_of(run: dashboard.Run, panel: str, legend: str) -> list[dashboard.Series]:
    found = [e for e in run.panels if e.panel == panel and e.legend == legend]
    assert found, f"no query {legend!r} in panel {panel!r}"
    return [s for e in found for s in e.series]


def values(series: list[dashboard.Series]) -> list[float]:
    return [v for s in series for _, v in s.points if v == v]  # NaN is not a value


def test_every_dashboard_query_returns_the_rollouts_series(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    scraped_operators: Prometheus,
    tmp_path: Path,
) -> None:
    start = time.time()
    bring_up_v1(cluster, namespace, iris, operators, ROLLOUT)
    scraped_operators.scrape_operators([operators.started[-1].health_port])
    load = start_load(cluster, namespace, iris, seconds=120)
    apply(cluster, mlmodel("iris", namespace, version="v2", model_file=iris.v2, rollout=ROLLOUT))
    status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
    time.sleep(6 * SCRAPE_S)  # the operator's last write scraped, and a rate window after
    load.stop()
    load.wait()

    window = dashboard.Window(start, time.time(), scrape_s=SCRAPE_S)
    board = dashboard.load()
    client = dashboard.Client(scraped_operators.url)
    try:
        run = dashboard.execute(board, client, window, {"namespace": namespace, "model": "iris"})
    finally:
        client.close()

    assert run.empty() == [], "\n".join(run.empty())
    queries = len(run.panels) + len(run.variables)
    assert queries == sum(len(p.targets) for p in board.panels) + len(board.variables)
    # The variables offer this model to pick.
    assert namespace in run.variables["label_values(mlmodel_operator_phase, namespace)"]
    models = f'label_values(mlmodel_operator_phase{{namespace="{namespace}"}}, name)'
    assert run.variables[models] == ["iris"], run.variables
    # The split as the operator wrote it: the step's weight, held a while.
    weights = values(series_of(run, "Canary weight", "canary weight"))
    assert WEIGHT in weights, sorted(set(weights))
    # Both sides answered, and the canary only while it was one.
    assert max(values(series_of(run, "Requests per second, stable vs canary", "canary"))) > 0
    assert max(values(series_of(run, "Requests per second, stable vs canary", "stable"))) > 0
    errors = values(series_of(run, "Error rate, stable vs canary", "canary"))
    assert max(errors) == 0, errors
    # One promotion in the range, no rollback.
    outcomes = {
        s.labels["outcome"]: s.points[-1][1]
        for s in series_of(run, "Rollouts by outcome", "{{outcome}}")
    }
    assert outcomes["Promoted"] >= 0.9, outcomes
    assert outcomes["RolledBack"] == 0, outcomes
    [phase] = series_of(run, "Phase", "{{phase}}")
    assert phase.labels["phase"] == status["phase"], (phase.labels, status["phase"])
    # A good canary: judged close to the stable, its predictions share the classes.
    divergence = values(series_of(run, "Prediction divergence (JSD), judged", "canary vs stable"))
    assert 0 <= max(divergence) < 0.1, divergence
    shares = series_of(run, "Predicted classes, stable vs canary", "{{class}} (canary)")
    assert {s.labels["class"] for s in shares} == {"0", "1", "2"}, [s.labels for s in shares]
    judged = series_of(run, "Analysis verdicts per minute", "{{verdict}}")
    verdicts = {s.labels["verdict"] for s in judged if max(values([s]), default=0) > 0}
    assert "Pass" in verdicts, verdicts
    assert max(values(series_of(run, "Operator reconcile latency", "p99"))) > 0
    spent = "Where the operator's reconciles spend their time (p99)"
    assert max(values(series_of(run, spent, "read"))) > 0
    assert values(series_of(run, spent, "queue wait, urgent")), "no urgent reconcile seen"

    png = dashboard.render(board, run, window, tmp_path / "dashboard.png", f"{namespace}/iris")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\n[dashboard] {queries} queries, all with series; drawn to {png}")
