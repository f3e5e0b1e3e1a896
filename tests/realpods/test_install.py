"""The operator as users install it: `kubectl apply -k manifests/` with the image built
from operator/Dockerfile, two pods on a real kubelet with the restricted security
context of the manifests, one leading through its ServiceAccount's token and the
`kubernetes` Service."""

from __future__ import annotations

import pytest

from localenv.controlplane.cluster import ControlPlane
from localenv.install import OPERATOR_NAMESPACE, InstalledOperator
from tests.helpers.operator_pods import assert_operator_pods_run

pytestmark = pytest.mark.realpods


def test_kubectl_apply_k_manifests_runs_two_operator_pods_and_one_leads(
    cluster: ControlPlane,
    installed_operator: InstalledOperator,
    project_images_imported: dict[str, float],
) -> None:
    pods = installed_operator.pods
    assert_operator_pods_run(pods, installed_operator.leader)
    for pod in pods:
        # Pod Security admission let them in under `restricted` (namespace.yaml).
        security = pod["spec"]["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
    namespace = cluster.kubectl("get", "namespace", OPERATOR_NAMESPACE, "-o", "json").stdout
    assert '"pod-security.kubernetes.io/enforce": "restricted"' in namespace
    # Holding the Lease is the proof that a pod reached the API server: it has no other
    # way than the in-cluster configuration, its projected ServiceAccount token and the
    # `kubernetes` Service's ClusterIP (KUBERNETES_SERVICE_HOST), through kube-proxy.
    print(
        f"\n[operator pods] leader {installed_operator.leader} "
        f"{installed_operator.leader_after_s:.1f} s after kubectl apply -k; image imports "
        + ", ".join(f"{k} {v:.1f} s" for k, v in project_images_imported.items())
    )
