"""Every example in examples/ is accepted by the API server (server-side dry run), but
Flux's Kustomization, whose API is not served here, and the Prometheus Operator
monitors, whose CRDs tests/cluster/test_monitoring_examples.py installs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import install_operator_rbac

pytestmark = pytest.mark.cluster

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples"
# Flux's Kustomization: its API is not served here. Flux's own evaluator reads it instead
# (tests/cluster/test_gitops_health.py).
NOT_SERVED_HERE = {EXAMPLE_DIR / "gitops" / "flux-kustomization.yaml"}
# PodMonitors: their CRDs are the Prometheus Operator's, which
# tests/cluster/test_monitoring_examples.py applies before dry-running them.
MONITORING = EXAMPLE_DIR / "monitoring"
EXAMPLES = sorted(
    p
    for p in EXAMPLE_DIR.rglob("*.yaml")
    if p not in NOT_SERVED_HERE and MONITORING not in p.parents
)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[str(p.relative_to(EXAMPLE_DIR)) for p in EXAMPLES]
)
def test_example_passes_a_server_side_dry_run(
    cluster: ControlPlane, tmp_path: Path, example: Path
) -> None:
    install_operator_rbac(cluster, tmp_path)  # the CRD
    # The namespace a monitoring stack usually lives in, as the scrape example expects,
    # the kind quickstart's (its model-store.yaml creates it, outside a dry run) and Argo
    # CD's.
    cluster.kubectl("create", "namespace", "monitoring", check=False)
    cluster.kubectl("create", "namespace", "mlmodel-demo", check=False)
    cluster.kubectl("create", "namespace", "argocd", check=False)
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(example), check=False)
    assert result.returncode == 0, result.stderr


def test_the_manifests_install_everything(cluster: ControlPlane) -> None:
    root = Path(__file__).resolve().parents[2]
    result = cluster.kubectl("apply", "-k", str(root / "manifests"), check=False)
    assert result.returncode == 0, result.stderr
    cluster.wait_condition(
        "deployment/mlmodel-operator", "Available", namespace="mlmodel-system", timeout=120
    )
    rendered = cluster.kubectl(
        "get",
        "deployment",
        "mlmodel-operator",
        "-n",
        "mlmodel-system",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].securityContext}",
    )
    assert '"readOnlyRootFilesystem":true' in rendered.stdout
    # The operator's pods are fake (kwok); scale them away so they hold no Lease.
    cluster.kubectl(
        "scale", "deployment", "mlmodel-operator", "-n", "mlmodel-system", "--replicas=0"
    )
