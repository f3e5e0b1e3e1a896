"""The Prometheus Operator monitors of examples/monitoring/ (docs/operations.md,
"Monitoring with the Prometheus Operator"): the API server accepts them, and the chart's
PodMonitor, with the Prometheus Operator's own CRDs (localenv/promoperator.py); and they
select the pods the operator really makes, and its own pods, on a port those pods have.

The CRDs are applied for this module and removed afterwards, unless they were there
before. tests/cluster/test_examples.py leaves examples/monitoring/ to this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.chart import CHART
from localenv.controlplane.cluster import ControlPlane
from localenv.helm import Helm
from localenv.operator_process import install_operator_rbac
from localenv.promoperator import crd_paths
from mlmodel_operator.desired import deployment
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import parse_spec

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "examples" / "monitoring"
RUNTIME_MONITOR = MONITORING / "runtime-podmonitor.yaml"
OPERATOR_MONITOR = MONITORING / "operator-podmonitor.yaml"
EXAMPLES = sorted(MONITORING.glob("*.yaml"))


def load(path: Path, kind: str) -> dict[str, Any]:
    [found] = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return dict(found)


def serving_pod_template() -> dict[str, Any]:
    """The pod template of examples/simple.yaml's Deployment, as the operator builds it."""
    model = load(ROOT / "examples" / "simple.yaml", "MLModel")
    ref = ModelRef(name=model["metadata"]["name"], namespace="default", uid="uid-1")
    made = deployment(
        ref,
        parse_spec(model["spec"]),
        revision="7f3c9a1e2d",
        variant="stable",
        replicas=2,
        settings=Settings(),
    )
    template: dict[str, Any] = made["spec"]["template"]
    return template


def operator_pod_template() -> dict[str, Any]:
    template: dict[str, Any] = load(ROOT / "manifests" / "operator.yaml", "Deployment")["spec"][
        "template"
    ]
    return template


def operator_pod_namespace() -> str:
    namespace: str = load(ROOT / "manifests" / "operator.yaml", "Deployment")["metadata"][
        "namespace"
    ]
    return namespace


def assert_monitor_scrapes(monitor: dict[str, Any], template: dict[str, Any]) -> None:
    """The monitor selects pods of `template`, on a named port of theirs, at the path
    their scrape annotations name."""
    labels = template["metadata"]["labels"]
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, "only matchLabels is checked here"
    assert selector["matchLabels"].items() <= labels.items()
    ports = {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    annotations = template["metadata"]["annotations"]
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports
        assert str(ports[endpoint["port"]]) == annotations["prometheus.io/port"]
        assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics"


def test_the_runtime_monitor_selects_the_serving_pods_on_their_metrics_port() -> None:
    monitor = load(RUNTIME_MONITOR, "PodMonitor")
    assert_monitor_scrapes(monitor, serving_pod_template())
    assert monitor["spec"]["namespaceSelector"] == {"any": True}  # models live anywhere


def test_the_runtime_monitor_selects_no_operator_pod() -> None:
    selector = load(RUNTIME_MONITOR, "PodMonitor")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= operator_pod_template()["metadata"]["labels"].items()


def test_the_operator_monitor_selects_the_operator_pods_on_their_health_port() -> None:
    monitor = load(OPERATOR_MONITOR, "PodMonitor")
    assert_monitor_scrapes(monitor, operator_pod_template())
    assert monitor["metadata"]["namespace"] == operator_pod_namespace()
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= serving_pod_template()["metadata"]["labels"].items()


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> Iterator[None]:
    """The Prometheus Operator's PodMonitor and ServiceMonitor CRDs, applied server-side;
    removed afterwards unless they were there before."""
    applied: list[str] = []
    for kind, path in crd_paths().items():
        name = f"{kind.lower()}s.monitoring.coreos.com"
        there = control_plane.kubectl("get", "crd", name, check=False).returncode == 0
        control_plane.kubectl(
            "apply", "--server-side", "--field-manager=mlmodel-tests", "-f", str(path)
        )
        control_plane.wait_condition(f"crd/{name}", "Established")
        if not there:
            applied.append(name)
    try:
        yield
    finally:
        for name in applied:
            control_plane.kubectl("delete", "crd", name, check=False)


def dry_run(cluster: ControlPlane, path: Path) -> None:
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_monitoring_example_passes_a_server_side_dry_run(
    cluster: ControlPlane, monitoring_crds: None, tmp_path: Path, example: Path
) -> None:
    install_operator_rbac(cluster, tmp_path)  # the operator's namespace
    cluster.kubectl("create", "namespace", "monitoring", check=False)
    dry_run(cluster, example)


def test_the_charts_pod_monitor_passes_a_dry_run_and_matches_the_example(
    cluster: ControlPlane, monitoring_crds: None, tmp_path: Path
) -> None:
    rendered = Helm(home=tmp_path / "helm").run(
        "template",
        "mlmodel-operator",
        str(CHART),
        "--namespace",
        "mlmodel-system",
        "--set",
        "metrics.podMonitor.enabled=true",
        "--show-only",
        "templates/podmonitor.yaml",
    )
    [chart_monitor] = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    path = tmp_path / "podmonitor.yaml"
    path.write_text(rendered.stdout)
    install_operator_rbac(cluster, tmp_path)
    dry_run(cluster, path)
    example = load(OPERATOR_MONITOR, "PodMonitor")
    assert chart_monitor["spec"] == example["spec"]
    assert chart_monitor["metadata"]["namespace"] == example["metadata"]["namespace"]
