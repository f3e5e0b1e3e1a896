"""The operator installed with Helm: `helm install` of charts/mlmodel-operator with the
image built from operator/Dockerfile runs two pods on the real kubelet, in the namespace
the chart creates (the `restricted` Pod Security level), one of them holding the Lease;
`helm uninstall` removes them, and their namespace, before the next test.

The operator that the other tests install with `kubectl apply -k manifests/` may be
running (a session fixture): this one has names of its own (fullnameOverride and
namespace.name) and watches only its release's namespace, so neither sees the other."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from localenv.chart import CHART
from localenv.controlplane.cluster import ControlPlane
from localenv.helm import Helm, HelmError
from localenv.install import leader
from localenv.realnode import TAINT, RealNode
from localenv.scenario import get_json, wait_for
from tests.helpers.operator_pods import assert_operator_pods_run

pytestmark = [pytest.mark.realpods, pytest.mark.timeout(600)]


def test_helm_install_runs_two_operator_pods_one_leading_and_uninstall_removes_them(
    cluster: ControlPlane,
    real_node: RealNode,
    project_images_imported: dict[str, float],
    namespace: str,
    tmp_path: Path,
) -> None:
    operator_namespace = f"{namespace}-system"
    helm = Helm(home=tmp_path / "helm", kubeconfig=cluster.kubeconfig)
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "namespace": {"name": operator_namespace},
                "fullnameOverride": f"mlmodel-operator-{namespace}",
                "nodeSelector": {TAINT["key"]: TAINT["value"]},
                "tolerations": [{**TAINT, "operator": "Equal"}],
                "settings": {"watchNamespaces": [namespace]},
            }
        )
    )
    release = ("ops", "-n", namespace)
    try:
        began = time.monotonic()
        try:
            helm.run("install", *release, str(CHART), "-f", str(values), "--wait", "--timeout=240s")
            holder = wait_for(
                lambda: leader(cluster, operator_namespace),
                timeout=120,
                what="an operator pod to take the Lease",
                interval=0.2,
            )
        except (HelmError, AssertionError) as failed:
            raise AssertionError(
                f"{failed}\n" + real_node.container_log_tails(operator_namespace)
            ) from failed
        leading_after = time.monotonic() - began
        pods = get_json(cluster, "pods", "-n", operator_namespace)["items"]
        assert_operator_pods_run(pods, holder)
        for pod in pods:
            env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
            assert env["MLMODEL_OPERATOR_NAMESPACES"] == namespace
        labels = get_json(cluster, "namespace", operator_namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

        uninstalled = time.monotonic()
        helm.run("uninstall", *release, "--wait", "--timeout=240s")
        gone = time.monotonic() - uninstalled
        assert cluster.kubectl("get", "namespace", operator_namespace, check=False).returncode
        print(
            f"\n[helm install] leader {holder} {leading_after:.1f} s after helm install; "
            f"pods and namespace gone {gone:.1f} s after helm uninstall"
        )
    finally:
        helm.run("uninstall", *release, "--wait", "--timeout=240s", check=False)
        wait_for(
            lambda: cluster.kubectl("get", "namespace", operator_namespace, check=False).returncode,
            timeout=240,
            what=f"namespace {operator_namespace} to be gone",
            interval=1.0,
        )
