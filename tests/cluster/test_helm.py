"""The Helm chart (charts/mlmodel-operator) with Helm built here from its Go module: it
lints; with its defaults it renders exactly what `kubectl kustomize manifests/` renders
(and with policies.enabled, manifests/policies/ too), object by object; changed values
show where they should; and install, upgrade and uninstall work against the control
plane, the CRD and the MLModels staying (docs/helm.md).

The control plane is shared with the session's other tests: the install gets a name, a
namespace and cluster-scoped objects of its own (fullnameOverride), and never the
policies, whose removal would stop the API server from reading their parameters
(docs/policies.md, "Known problem").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv import mlmodel, wait_for
from localenv.chart import CHART, MANIFESTS, POLICIES
from localenv.controlplane.cluster import ControlPlane, write_kubeconfig
from localenv.helm import Helm
from localenv.operator_process import OperatorEnv
from localenv.scenario import get_json
from mlmodel_operator.settings import Settings, parse_settings
from tests.helpers.kube import apply, model_status

pytestmark = pytest.mark.cluster

CRD = "mlmodels.mlops.dev"
Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


class Yaml12Loader(yaml.SafeLoader):
    """Floats as YAML 1.2 (and Go) read them: kustomize writes the CRD's 0.00001 as
    1e-05, which PyYAML's YAML 1.1 rules read as a string."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


@pytest.fixture
def helm(cluster: ControlPlane, tmp_path: Path) -> Helm:
    return Helm(home=tmp_path / "helm", kubeconfig=cluster.kubeconfig)


def objects(stream: str) -> dict[Key, dict[str, Any]]:
    """The objects of a multi-document YAML stream, by apiVersion, kind, namespace, name."""
    found: dict[Key, dict[str, Any]] = {}
    for document in yaml.load_all(stream, Loader=Yaml12Loader):
        if not document:
            continue
        meta = document["metadata"]
        key = (document["apiVersion"], document["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in found, f"{key} twice"
        found[key] = document
    return found


def template(
    helm: Helm,
    *args: str,
    release: str = "mlmodel-operator",
    values: Mapping[str, Any] | None = None,
) -> dict[Key, Any]:
    """`helm template --include-crds` of the chart as `release`, by object."""
    extra: list[str] = []
    if values is not None:
        path = helm.home / f"values-{len(list(helm.home.glob('values-*')))}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(values)))
        extra = ["--values", str(path)]
    result = helm.run("template", release, str(CHART), "--include-crds", *args, *extra)
    return objects(result.stdout)


def kustomize(cluster: ControlPlane, directory: Path) -> dict[Key, Any]:
    return objects(cluster.kubectl("kustomize", str(directory)).stdout)


def assert_same_objects(rendered: Mapping[Key, Any], expected: Mapping[Key, Any]) -> None:
    assert sorted(rendered) == sorted(expected)
    for key, document in expected.items():
        assert rendered[key] == document, key


def the(found: Mapping[Key, Any], kind: str) -> dict[str, Any]:
    [document] = [d for (_, k, _, _), d in found.items() if k == kind]
    return dict(document)


def operator_container(found: Mapping[Key, Any]) -> dict[str, Any]:
    [container] = the(found, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_chart_lints_with_its_defaults_and_with_every_option_on(helm: Helm) -> None:
    for options in ([], ["--set", "policies.enabled=true,metrics.podMonitor.enabled=true"]):
        result = helm.run("lint", "--strict", str(CHART), *options)
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_with_its_defaults_the_chart_renders_exactly_what_kustomize_renders(
    cluster: ControlPlane, helm: Helm
) -> None:
    expected = kustomize(cluster, MANIFESTS)
    assert_same_objects(template(helm), expected)
    # Whatever the release is called and wherever Helm keeps it.
    assert_same_objects(template(helm, "-n", "elsewhere", release="ops"), expected)


def test_with_policies_enabled_it_adds_exactly_the_policies_kustomize_renders(
    cluster: ControlPlane, helm: Helm
) -> None:
    expected = {**kustomize(cluster, MANIFESTS), **kustomize(cluster, POLICIES)}
    assert_same_objects(template(helm, "--set", "policies.enabled=true"), expected)
    # A parameter set through the values replaces the shipped one, and only that one.
    changed = template(helm, "--set", "policies.enabled=true,policies.params.tolerationKeys=gpu")
    params = the(changed, "ConfigMap")
    shipped = the(kustomize(cluster, POLICIES), "ConfigMap")
    assert params["data"] == {**shipped["data"], "tolerationKeys": "gpu"}


def test_changed_values_show_where_they_belong(helm: Helm) -> None:
    found = template(
        helm,
        values={
            "image": {"tag": "0.2.0", "pullPolicy": "Always"},
            "runtimeImage": "registry.example/mlmodel-runtime:0.2.0",
            "replicas": 3,
            "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": None},
            "logFormat": "text",
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "metrics": {
                "podMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "30s"}
            },
        },
    )
    deployment = the(found, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(found)
    assert deployment["spec"]["replicas"] == 3
    assert container["image"] == "ghcr.io/mlops-dev/mlmodel-operator:0.2.0"
    assert container["imagePullPolicy"] == "Always"
    # Helm merges maps into the defaults; null removes a key (here the memory limit).
    assert container["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"}}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLMODEL_OPERATOR_RUNTIME_IMAGE"] == "registry.example/mlmodel-runtime:0.2.0"
    assert env["MLMODEL_OPERATOR_LOG_FORMAT"] == "text"
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    ]
    monitor = the(found, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert monitor["metadata"]["labels"] == {
        "app.kubernetes.io/name": "mlmodel-operator",
        "release": "prom",
    }
    # It selects the operator's pods, and scrapes the port the operator serves /metrics on,
    # keeping the series' own `namespace` (the MLModel's).
    assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "health", "path": "/metrics", "honorLabels": True, "interval": "30s"}
    ]
    assert {"name": "health", "containerPort": 8080} in container["ports"]
    assert not any(kind == "PodMonitor" for _, kind, _, _ in template(helm))


def test_without_creating_a_namespace_everything_goes_to_the_releases(helm: Helm) -> None:
    found = template(
        helm,
        "-n",
        "ml-platform",
        "--set",
        "namespace.create=false,namespace.name=,fullnameOverride=mlmodel-operator-b",
    )
    assert not any(kind == "Namespace" for _, kind, _, _ in found)
    namespaced = {
        k: d
        for k, d in found.items()
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")
    }
    assert {namespace for _, _, namespace, _ in namespaced} == {"ml-platform"}
    binding = the(found, "ClusterRoleBinding")
    assert binding["metadata"]["name"] == "mlmodel-operator-b"
    assert binding["roleRef"]["name"] == "mlmodel-operator-b"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlmodel-operator-b", "namespace": "ml-platform"}
    ]
    assert the(found, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        "mlmodel-operator-b"
    )
    assert the(found, "Role")["metadata"]["name"] == "mlmodel-operator-b-leader-election"


EVERY_SETTING: dict[str, Any] = {
    "replicas": 1,
    "runtimeImage": "registry.example/mlmodel-runtime:0.2.0",
    "settings": {
        "watchNamespaces": ["models", "team-a"],
        "runtimeImagePullPolicy": "Always",
        "defaultServingResources": {"limits": {"memory": "2Gi"}},
        "resyncSeconds": 12.5,
        "workers": 8,
        "coalesceSeconds": 1.5,
        "leaseName": "other-leader",
        "leaseDurationSeconds": 30,
        "leaderElection": False,
        "metricsTimeoutSeconds": 2,
        "metricsConcurrency": 4,
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "allowedPrometheusUrls": ["http://a.monitoring:9090", "http://b.monitoring:*"],
        "allowedWebhookUrls": ["http://hooks.ops:8080", "https://relay.example/slack"],
        "forbidUnsafePickle": True,
        "allowedGateways": ["gateways/web"],
        "allowedHostnames": ["*.models.example.com"],
        "convertCacheHostPath": "/var/cache/mlmodel",
    },
}
# What the manifests fix rather than the values (see SETTINGS in localenv/chart.py).
FIXED_SETTINGS = {"identity", "lease_namespace", "health_address"}


def test_every_setting_in_the_values_reaches_the_operator_as_it_reads_it(
    helm: Helm, clean_environment: pytest.MonkeyPatch
) -> None:
    default = parse_settings([])
    env = operator_container(template(helm, values=EVERY_SETTING))["env"]
    for variable in env:
        if "value" in variable:
            clean_environment.setenv(variable["name"], variable["value"])
    settings: Settings = parse_settings([])
    changed = {
        f.name for f in fields(Settings) if getattr(settings, f.name) != getattr(default, f.name)
    }
    assert changed == {f.name for f in fields(Settings)} - FIXED_SETTINGS
    assert settings.resync_seconds == 12.5
    assert settings.default_resources == {"limits": {"memory": "2Gi"}}
    assert settings.namespaces == ("models", "team-a")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("logFormat=xml", "logFormat"),
        ("settings.leaderElection=false", "settings.leaderElection=false needs replicas=1"),
        (
            "policies.enabled=true,policies.params.tolerationKey=gpu",
            "policies.params.tolerationKey",
        ),
        ("namespace.name=", "namespace.create needs namespace.name"),
        ("settings.workers=0", "workers"),
        ("settings.convertCacheHostPath=relative/dir", "convertCacheHostPath"),
    ],
)
def test_values_the_operator_would_refuse_fail_before_anything_is_installed(
    helm: Helm, values: str, message: str
) -> None:
    result = helm.run("template", str(CHART), "--set", values, check=False)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr


def crd(cluster: ControlPlane, name: str = CRD) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "crd", name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def exists(cluster: ControlPlane, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode == 0


def as_service_account(cluster: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig with a token of the ServiceAccount the chart made: the operator's
    credentials in a pod, so its RBAC is the chart's and nothing more."""
    token = cluster.kubectl(
        "create", "token", name, "--namespace", namespace, "--duration", "1h"
    ).stdout.strip()
    return write_kubeconfig(
        path,
        server=cluster.server,
        ca=cluster.pki.ca.cert,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=token,
    )


def test_install_upgrade_and_uninstall_leave_the_crd_and_the_mlmodels(
    cluster: ControlPlane, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    """The release lives in `namespace`; the chart creates the operator's namespace. An
    operator process with the chart's ServiceAccount's token (the pods kwok runs here
    run no code) reconciles an MLModel: the chart's RBAC is enough. Uninstalling leaves
    the MLModel and the Deployment the operator made for it, pods and all."""
    operator_namespace = f"{namespace}-system"
    name = f"mlmodel-operator-{namespace}"
    crd_before = crd(cluster)
    release = ("ops", "-n", namespace)
    settings = f"namespace.name={operator_namespace},fullnameOverride={name}"
    operators: OperatorEnv | None = None
    try:
        helm.run("install", *release, str(CHART), "--set", settings, "--wait", "--timeout=120s")

        installed = crd(cluster)
        assert installed is not None
        if crd_before is None:  # this file alone: the install created it
            cluster.wait_condition(f"crd/{CRD}", "Established")
        else:  # the session's other tests applied the same file: nothing changed
            assert installed["spec"] == crd_before["spec"]
        labels = get_json(cluster, "namespace", operator_namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        deployment = get_json(cluster, "deployment", name, "-n", operator_namespace)
        assert deployment["spec"]["replicas"] == 2
        # Pod Security admitted its pods under `restricted`, and kwok's nodes run them.
        assert deployment["status"]["availableReplicas"] == 2
        assert exists(cluster, "serviceaccount", name, "-n", operator_namespace)
        assert exists(cluster, "role", f"{name}-leader-election", "-n", operator_namespace)
        assert exists(cluster, "rolebinding", f"{name}-leader-election", "-n", operator_namespace)
        assert exists(cluster, "clusterrole", name)
        assert exists(cluster, "clusterrolebinding", name)

        kubeconfig = as_service_account(
            cluster, operator_namespace, name, tmp_path / "sa.kubeconfig"
        )
        operators = OperatorEnv(cluster, kubeconfig, tmp_path, lease_namespace=operator_namespace)
        operators.start(namespace)
        apply(cluster, mlmodel("iris", namespace))
        status = wait_for(
            lambda: (s := model_status(cluster, namespace, "iris")).get("revision") and s,
            timeout=60,
            what="the operator to reconcile iris as the chart's ServiceAccount",
            interval=0.5,
        )
        reconciled, revision = status.get("phase"), str(status["revision"])
        made = get_json(cluster, "deployment", f"iris-{revision}", "-n", namespace)
        pods_before = {
            p["metadata"]["uid"] for p in get_json(cluster, "pods", "-n", namespace)["items"]
        }
        operators.stop_all()

        helm.run("upgrade", *release, str(CHART), "--reuse-values", "--set", "replicas=1", "--wait")
        deployment = get_json(cluster, "deployment", name, "-n", operator_namespace)
        assert (deployment["spec"]["replicas"], deployment["status"]["replicas"]) == (1, 1)
        history = json.loads(helm.run("history", *release, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2]

        helm.run("uninstall", *release, "--wait", "--timeout=120s")

        for args in (
            ("namespace", operator_namespace),
            ("clusterrole", name),
            ("clusterrolebinding", name),
        ):
            assert not exists(cluster, *args), args
        assert crd(cluster) is not None
        assert exists(cluster, "mlmodel", "iris", "-n", namespace)
        # What the operator made for the model stays, untouched, until the CRD goes.
        kept = get_json(cluster, "deployment", f"iris-{revision}", "-n", namespace)
        assert kept["metadata"]["uid"] == made["metadata"]["uid"]
        pods_after = {
            p["metadata"]["uid"] for p in get_json(cluster, "pods", "-n", namespace)["items"]
        }
        assert pods_after == pods_before, (pods_before, pods_after)
        assert helm.run("list", "-n", namespace, "-q").stdout.strip() == ""
        print(f"\n[helm] the chart's ServiceAccount reconciled iris: phase {reconciled}")
    finally:
        if operators is not None:
            operators.stop_all()
        helm.run("uninstall", *release, "--wait", "--timeout=120s", check=False)
        cluster.kubectl("delete", "mlmodel", "iris", "-n", namespace, check=False)
        wait_for(
            lambda: not exists(cluster, "namespace", operator_namespace),
            timeout=120,
            what=f"namespace {operator_namespace} to be gone",
        )


def test_a_release_kept_in_the_namespace_the_chart_creates_cannot_purge_itself(
    cluster: ControlPlane, helm: Helm, namespace: str
) -> None:
    """Why docs/helm.md keeps the release out of the operator's namespace: `helm install
    -n X --create-namespace` of the chart creating X works with Helm 4 (its server-side
    apply takes the namespace Helm made into the release, with the chart's labels), but
    `helm uninstall` deletes X with the release record in it, and fails saying so."""
    operator_namespace = f"{namespace}-own"
    name = f"mlmodel-operator-{operator_namespace}"
    release = ("ops", "-n", operator_namespace)
    settings = f"namespace.name={operator_namespace},fullnameOverride={name}"
    try:
        helm.run("install", *release, "--create-namespace", str(CHART), "--set", settings)
        labels = get_json(cluster, "namespace", operator_namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        uninstalled = helm.run("uninstall", *release, "--wait", check=False)
        assert uninstalled.returncode != 0
        assert "Failed to purge the release" in uninstalled.stderr, uninstalled.stderr
        assert not exists(cluster, "namespace", operator_namespace)
        assert not exists(cluster, "clusterrole", name)
    finally:
        helm.run("uninstall", *release, check=False)
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, check=False)
        cluster.kubectl("delete", "namespace", operator_namespace, "--wait=true", check=False)


def test_the_crd_is_applied_by_install_only_and_upgraded_by_the_documented_command(
    cluster: ControlPlane, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    """What docs/helm.md says of the CRD under Helm 4, on a CRD of the test's own (the
    chart's, in a group named after the test; the session's other tests share
    mlmodels.mlops.dev). Helm applies crds/ on install only, by server-side apply:
    it creates the CRD, and replaces it when Helm owns its fields; an upgrade and an
    uninstall leave it. Once kubectl applied it, an install of a chart whose CRD differs
    fails on the conflict, and `kubectl apply --server-side --force-conflicts` first is
    what works; without --force-conflicts kubectl refuses what Helm applied."""
    group = f"{namespace}.helm-test.mlops.dev"
    name = f"mlmodels.{group}"
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "templates")  # the CRD alone
    crd_file = chart / "crds" / "mlmodels.mlops.dev.yaml"
    for other in set((chart / "crds").iterdir()) - {crd_file}:
        other.unlink()  # the analysis templates' CRDs: the session's own
    definition = yaml.safe_load(crd_file.read_text())
    definition["metadata"]["name"], definition["spec"]["group"] = name, group
    release = ("crd", "-n", namespace)

    def chart_with(description: str) -> str:
        schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        schema["description"] = description
        crd_file.write_text(yaml.safe_dump(definition))
        return str(chart)

    def description() -> str:
        found = crd(cluster, name) or {}
        return str(found["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"])

    def apply_crd(*flags: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl("apply", "--server-side", *flags, "-f", str(crd_file), check=False)

    try:
        helm.run("install", *release, chart_with("A"))
        cluster.wait_condition(f"crd/{name}", "Established")
        assert description() == "A"
        helm.run("upgrade", *release, chart_with("B"))
        assert description() == "A"
        apply(cluster, {**mlmodel("iris", namespace), "apiVersion": f"{group}/v1alpha1"})
        helm.run("uninstall", *release, "--wait")
        assert description() == "A"
        assert exists(cluster, name, "iris", "-n", namespace)

        helm.run("install", *release, chart_with("B"))  # Helm's own fields: replaced
        assert description() == "B"
        chart_with("C")
        refused = apply_crd()
        assert refused.returncode != 0
        assert "conflict" in refused.stderr, refused.stderr
        assert apply_crd("--force-conflicts").returncode == 0
        assert description() == "C"

        helm.run("uninstall", *release, "--wait")
        failed = helm.run("install", *release, chart_with("D"), check=False)
        assert failed.returncode != 0
        assert "conflict" in failed.stderr, failed.stderr
        assert description() == "C"
        assert apply_crd("--force-conflicts").returncode == 0
        helm.run("install", *release, str(chart))
        assert description() == "D"
    finally:
        helm.run("uninstall", *release, check=False)
        cluster.kubectl("delete", "crd", name, "--wait=true", check=False)
