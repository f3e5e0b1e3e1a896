"""The local control plane is a real Kubernetes: schema and CEL validation, controllers,
scheduling onto kwok nodes, garbage collection, RBAC and watches, all through kubectl."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from localenv.controlplane.build import KUBERNETES_VERSION
from localenv.controlplane.cluster import ControlPlane
from localenv.controlplane.serviceaccount import service_account_kubeconfig

pytestmark = pytest.mark.cluster

CRD = textwrap.dedent(
    """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.cptest.mlops.dev
    spec:
      group: cptest.mlops.dev
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [min, max]
                properties:
                  min: {type: integer}
                  max: {type: integer}
                x-kubernetes-validations:
                - rule: "self.min <= self.max"
                  message: "min must not exceed max"
    """
)


def widget(name: str, low: int, high: int) -> str:
    return json.dumps(
        {
            "apiVersion": "cptest.mlops.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"min": low, "max": high},
        }
    )


def eventually(probe: Callable[[], bool], *, timeout: float = 60, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_server_reports_the_version_it_was_built_from(cluster: ControlPlane) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_crd_schema_and_cel_rule_are_enforced(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=CRD)
    cluster.wait_condition("crd/widgets.cptest.mlops.dev", "Established")
    accepted = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=widget("good", 1, 2), check=False
    )
    assert accepted.returncode == 0, accepted.stderr

    refused = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=widget("bad", 3, 2), check=False
    )
    assert refused.returncode != 0
    assert "min must not exceed max" in refused.stderr

    wrong_type = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input_text=widget("typed", 1, 2).replace('"max": 2', '"max": "two"'),
        check=False,
    )
    assert wrong_type.returncode != 0
    assert "spec.max" in wrong_type.stderr


def test_deployment_becomes_available_with_pods_running_on_kwok_nodes(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.kubectl(
        "create",
        "deployment",
        "web",
        "-n",
        namespace,
        "--image=example.invalid/web:1",
        "--replicas=3",
    )
    cluster.wait_condition("deployment/web", "Available", namespace=namespace)
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout
    )["items"]
    assert len(pods) == 3
    # Fake pods get addresses no route of the sandbox leads to (they serve nothing).
    unrouted = ipaddress.ip_network("10.245.0.0/16")
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("kwok-node-")
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in unrouted
    # Two pods on one node never share an IP.
    assert len({pod["status"]["podIP"] for pod in pods}) == 3


def test_deleting_an_owner_garbage_collects_its_dependents(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = cluster.kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(dependent))
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    eventually(
        lambda: (
            cluster.kubectl(
                "get", "configmap", "dependent", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        what="the dependent ConfigMap to be garbage-collected",
    )


def test_service_account_is_forbidden_until_bound(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(
        cluster, namespace=namespace, name="reader", directory=tmp_path
    )
    whoami = cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kubeconfig
    )
    assert whoami.stdout == f"system:serviceaccount:{namespace}:reader"

    denied = cluster.kubectl(
        "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(
        textwrap.dedent(
            f"""
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {{name: configmap-reader, namespace: {namespace}}}
            rules:
            - apiGroups: [""]
              resources: [configmaps]
              verbs: [get, list]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {{name: configmap-reader, namespace: {namespace}}}
            roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}}
            subjects:
            - {{kind: ServiceAccount, name: reader, namespace: {namespace}}}
            """
        )
    )
    kubeconfig = service_account_kubeconfig(
        cluster, namespace=namespace, name="reader", rbac=[rbac], directory=tmp_path
    )
    eventually(
        lambda: (
            cluster.kubectl(
                "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
            ).returncode
            == 0
        ),
        timeout=10,
        what="the RoleBinding to take effect",
    )
    # Bound to reading ConfigMaps only: writing them and reading Secrets stay forbidden.
    cannot = cluster.kubectl(
        "auth", "can-i", "create", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert cannot.stdout.strip() == "no"
    secrets = cluster.kubectl("get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert "forbidden" in secrets.stderr


def test_a_watch_receives_the_events(cluster: ControlPlane, namespace: str) -> None:
    watch = subprocess.Popen(
        [
            str(cluster.kubectl_path),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "get",
            "configmaps",
            "-n",
            namespace,
            "--watch-only",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name}{'\\n'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let the watch be established before the changes
        cluster.kubectl("create", "configmap", "watched", "-n", namespace)
        cluster.kubectl("label", "configmap", "watched", "-n", namespace, "seen=yes")
        cluster.kubectl("delete", "configmap", "watched", "-n", namespace)
        assert watch.stdout is not None
        lines = [watch.stdout.readline().strip() for _ in range(3)]
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    assert lines == ["ADDED watched", "MODIFIED watched", "DELETED watched"]
