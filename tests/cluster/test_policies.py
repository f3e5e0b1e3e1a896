"""The opt-in admission policies of manifests/policies/ on the real API server: each
refuses, through `kubectl apply`, the MLModels it exists to refuse, with its message,
and accepts the rest (docs/policies.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from localenv import mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import CRD, ROOT

pytestmark = pytest.mark.cluster

POLICY_DIR = ROOT / "manifests" / "policies"
SHIPPED_PARAMS: dict[str, str] = yaml.safe_load((POLICY_DIR / "params.yaml").read_text())["data"]
POLICY_LOAD_TIMEOUT = 30.0


def prometheus(url: str) -> dict[str, Any]:
    return {"analysis": {"provider": {"prometheus": {"url": url}}}}


def gateway_api(*parent_refs: dict[str, str], hostnames: list[str] | None) -> dict[str, Any]:
    settings: dict[str, Any] = {"parentRefs": list(parent_refs)}
    if hostnames is not None:
        settings["hostnames"] = hostnames
    return {"router": "gatewayAPI", "gatewayAPI": settings}


def istio(*hosts: str, gateways: list[str] | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"hosts": list(hosts)}
    if gateways is not None:
        settings["gateways"] = gateways
    return {"router": "istio", "istio": settings}


@dataclass
class Admission:
    """Installs shipped policies for one test and applies MLModels against them."""

    cluster: ControlPlane
    namespace: str
    installed: list[dict[str, Any]] = field(default_factory=list)
    loaded: bool = False

    def install(self, policy: str, *, configmap: bool = True, **params: str) -> None:
        """Apply manifests/policies/<policy>.yaml as shipped, except that its binding
        selects only this test's namespace and reads its parameters from a ConfigMap
        there (other tests share the API server): the shipped params.yaml data, updated
        by `params`, unless `configmap` is false."""
        documents = list(yaml.safe_load_all((POLICY_DIR / f"{policy}.yaml").read_text()))
        for document in documents:
            if document["kind"] != "ValidatingAdmissionPolicyBinding":
                continue
            document["spec"]["matchResources"] = {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": self.namespace}
                }
            }
            if "paramRef" in document["spec"]:
                document["spec"]["paramRef"]["namespace"] = self.namespace
                if configmap:
                    self._apply_params({**SHIPPED_PARAMS, **params})
        self.installed.extend(documents)
        self.cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(documents))
        for document in documents:
            if document["kind"] == "ValidatingAdmissionPolicy":
                self._assert_type_checked(document["metadata"]["name"])

    def _apply_params(self, data: Mapping[str, str]) -> None:
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "mlmodel-policy", "namespace": self.namespace},
            "data": dict(data),
        }
        self.cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(configmap))

    def _assert_type_checked(self, name: str) -> None:
        deadline = time.monotonic() + POLICY_LOAD_TIMEOUT
        while True:
            policy = json.loads(
                self.cluster.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
            )
            status = policy.get("status") or {}
            if status.get("observedGeneration") == policy["metadata"]["generation"]:
                break
            assert time.monotonic() < deadline, f"{name} was never type-checked"
            time.sleep(0.2)
        assert not (status.get("typeChecking") or {}).get("expressionWarnings"), status

    def apply(self, manifest: Mapping[str, Any], *extra: str) -> tuple[int, str]:
        """`kubectl apply` in this test's namespace: (exit code, what kubectl said)."""
        text = yaml.safe_dump(dict(manifest))
        result = self.cluster.kubectl(
            "apply", "-n", self.namespace, *extra, "-f", "-", input_text=text, check=False
        )
        return result.returncode, result.stderr

    def refuses(self, manifest: Mapping[str, Any], message: str) -> None:
        """`kubectl apply` refuses `manifest` with `message`. A new policy (or ConfigMap)
        takes the API server a moment to load: server-side dry runs are polled until the
        message appears, then the real apply must be refused too."""
        deadline = time.monotonic() + POLICY_LOAD_TIMEOUT
        while True:
            code, stderr = self.apply(manifest, "--dry-run=server")
            if code != 0 and message in stderr:
                break
            assert time.monotonic() < deadline, (
                f"not refused with {message!r} within {POLICY_LOAD_TIMEOUT:.0f} s; "
                f"last answer: {stderr or 'accepted'}"
            )
            time.sleep(0.2)
        self.loaded = True
        code, stderr = self.apply(manifest)
        assert code != 0, "refused in a dry run, accepted for real"
        assert message in stderr, stderr

    def accepts(self, manifest: Mapping[str, Any]) -> None:
        # Accepted before the policy is seen to refuse anything would prove nothing.
        assert self.loaded, "call refuses() first: the policy may not be loaded yet"
        code, stderr = self.apply(manifest)
        assert code == 0, stderr

    def remove(self) -> None:
        if self.installed:
            self.cluster.kubectl(
                "delete",
                "--ignore-not-found",
                "-f",
                "-",
                input_text=yaml.safe_dump_all(self.installed),
                check=False,
            )


KEEPER = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: mlmodel-tests-keep-configmap-params}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [mlops.dev], apiVersions: [v1alpha1], operations: [CREATE], resources: [mlmodels]}
  validations: [{expression: "true"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: mlmodel-tests-keep-configmap-params}
spec:
  policyName: mlmodel-tests-keep-configmap-params
  validationActions: [Deny]
  paramRef: {name: unused, namespace: default, parameterNotFoundAction: Allow}
  matchResources: {namespaceSelector: {matchLabels: {mlops.dev/selects: nothing}}}
"""


@pytest.fixture(scope="session")
def configmap_params_kept(control_plane: ControlPlane) -> Iterator[None]:
    """One binding with ConfigMap parameters for the whole session, selecting nothing.

    Each test removes its own bindings, and the API server (1.36) stops its ConfigMap
    parameter informer for good once no binding uses ConfigMap parameters: from then on
    every binding reads a frozen cache (kubernetes/kubernetes#130887, docs/policies.md).
    """
    control_plane.kubectl("apply", "-f", "-", input_text=KEEPER)
    yield
    control_plane.kubectl("delete", "-f", "-", input_text=KEEPER, check=False)


@pytest.fixture
def admission(
    cluster: ControlPlane, namespace: str, configmap_params_kept: None
) -> Iterator[Admission]:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.wait_condition("crd/mlmodels.mlops.dev", "Established")
    helper = Admission(cluster=cluster, namespace=namespace)
    yield helper
    helper.remove()


def test_the_policies_pass_a_server_side_dry_run_as_shipped(cluster: ControlPlane) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))  # the params'
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(POLICY_DIR), check=False)
    assert result.returncode == 0, result.stderr
    kustomization = yaml.safe_load((POLICY_DIR / "kustomization.yaml").read_text())
    shipped = {p.name for p in POLICY_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped
    for policy in (
        "mlmodel-no-unsafe-pickle",
        "mlmodel-service-accounts",
        "mlmodel-credentials-secrets",
        "mlmodel-prometheus-urls",
        "mlmodel-traffic",
        "mlmodel-scheduling",
    ):
        assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{policy}" in result.stdout
        assert (
            f"validatingadmissionpolicybinding.admissionregistration.k8s.io/{policy}"
            in result.stdout
        )


def test_an_mlmodel_asking_for_unsafe_pickle_is_refused_by_the_policy(
    admission: Admission,
) -> None:
    admission.install("no-unsafe-pickle")
    admission.refuses(
        mlmodel(
            model={
                "uri": "file:///models/iris.joblib",
                "format": "sklearn",
                "allowUnsafePickle": True,
            }
        ),
        "spec.model.allowUnsafePickle is forbidden in this cluster",
    )
    admission.accepts(mlmodel())
    admission.accepts(mlmodel("iris-onnx", model={"format": "onnx"}))


def test_an_mlmodel_created_before_a_policy_keeps_its_annotations_working_but_cannot_change(
    admission: Admission,
) -> None:
    pickled = {"uri": "file:///models/iris.joblib", "format": "sklearn", "allowUnsafePickle": True}
    assert admission.apply(mlmodel("legacy", model=pickled)) == (0, "")
    admission.install("no-unsafe-pickle")
    admission.refuses(mlmodel(model=pickled), "spec.model.allowUnsafePickle is forbidden")
    # The plugin's actions (annotations) and labels still reach it ...
    kubectl, ns = admission.cluster.kubectl, admission.namespace
    kubectl("annotate", "mlmodel", "legacy", "-n", ns, "mlops.dev/pause=abc/1")
    kubectl("label", "mlmodel", "legacy", "-n", ns, "team=fraud")
    # ... but a new spec that still loads the pickle is refused, and a safe one accepted.
    admission.refuses(
        mlmodel("legacy", model={**pickled, "version": "v2"}), "allowUnsafePickle is forbidden"
    )
    admission.accepts(mlmodel("legacy", model={"version": "v2"}))


def test_a_parameterised_policy_without_its_configmap_refuses_every_mlmodel(
    admission: Admission,
) -> None:
    admission.install("service-accounts", configmap=False)
    admission.refuses(mlmodel(), "no params found for policy binding with `Deny`")


def test_an_mlmodel_running_under_an_unlisted_service_account_is_refused(
    admission: Admission,
) -> None:
    ns = admission.namespace
    admission.install("service-accounts", serviceAccountNames=f"model-reader\n{ns}/gpu-runner")
    admission.refuses(
        mlmodel(serving={"serviceAccountName": "ci-deployer"}),
        f"spec.serving.serviceAccountName 'ci-deployer' is not allowed for MLModels in "
        f"namespace {ns}: leave it empty (the namespace's default ServiceAccount) or use one "
        f"of: model-reader, {ns}/gpu-runner",
    )
    admission.accepts(mlmodel("no-account"))
    admission.accepts(mlmodel("default-account", serving={"serviceAccountName": "default"}))
    admission.accepts(mlmodel("anywhere", serving={"serviceAccountName": "model-reader"}))
    admission.accepts(mlmodel("here", serving={"serviceAccountName": "gpu-runner"}))
    # An entry for one namespace is not a bare name for every other.
    admission.refuses(
        mlmodel("there", serving={"serviceAccountName": f"{ns}/gpu-runner"}),
        f"spec.serving.serviceAccountName '{ns}/gpu-runner' is not allowed",
    )


def test_an_mlmodel_using_a_secret_without_the_model_store_prefix_is_refused(
    admission: Admission,
) -> None:
    admission.install("credentials-secrets")  # as shipped: model-store-
    admission.refuses(
        mlmodel(model={"uri": "s3://models/iris.skops", "credentialsSecret": "db-password"}),
        "spec.model.credentialsSecret 'db-password' is not a model-store Secret: "
        "its name must start with model-store-",
    )
    admission.accepts(
        mlmodel(model={"uri": "s3://models/iris.skops", "credentialsSecret": "model-store-s3"})
    )
    admission.accepts(mlmodel("no-credentials"))


def test_an_mlmodel_reading_another_secret_into_its_environment_is_refused(
    admission: Admission,
) -> None:
    admission.install("credentials-secrets", credentialsSecretPrefixes="model-store-, s3-")

    def env(*secrets: str) -> dict[str, Any]:
        return {
            "env": [{"name": "PLAIN", "value": "1"}]
            + [
                {"name": f"S{i}", "valueFrom": {"secretKeyRef": {"name": s, "key": "token"}}}
                for i, s in enumerate(secrets)
            ]
        }

    admission.refuses(
        mlmodel(serving=env("s3-reader", "db-password", "api-token")),
        "spec.serving.env reads Secret(s) 'db-password', 'api-token' through "
        "valueFrom.secretKeyRef: only model-store Secrets may be read, whose names start "
        "with model-store- or s3-",
    )
    admission.accepts(mlmodel(serving=env("model-store-s3", "s3-reader")))


def test_an_mlmodel_sending_analysis_queries_to_an_unlisted_prometheus_is_refused(
    admission: Admission,
) -> None:
    admission.install(
        "prometheus-urls",
        prometheusURLPrefixes="http://prometheus.monitoring:9090,\nhttps://thanos.example/tenant-a/",
    )
    admission.refuses(
        mlmodel(rollout=prometheus("http://metrics.attacker.example:9090")),
        "spec.rollout.analysis.provider.prometheus.url 'http://metrics.attacker.example:9090' "
        "is not an allowed Prometheus: use http://prometheus.monitoring:9090 or "
        "https://thanos.example/tenant-a (or a path under one)",
    )
    for i, url in enumerate(
        [
            "http://prometheus.monitoring:9090",
            "http://prometheus.monitoring:9090/",
            "https://thanos.example/tenant-a",
            "https://thanos.example/tenant-a/api/prom",
        ]
    ):
        admission.accepts(mlmodel(f"iris-{i}", rollout=prometheus(url)))
    admission.accepts(mlmodel("scrape", rollout={"analysis": {"provider": {"scrape": {}}}}))
    # Monitoring after promotion sends its queries too: the same allow-list.
    watched = {"provider": {"prometheus": {"url": "http://metrics.attacker.example:9090"}}}
    admission.refuses(
        mlmodel("monitored", monitoring=watched),
        "spec.monitoring.provider.prometheus.url 'http://metrics.attacker.example:9090' "
        "is not an allowed Prometheus",
    )
    allowed = {"provider": {"prometheus": {"url": "https://thanos.example/tenant-a"}}}
    admission.accepts(mlmodel("monitored", monitoring=allowed))


CRD_PLAIN_URL = "prometheus.url must be an http(s) URL without credentials, query or fragment"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://prometheus.monitoring:90901", "is not an allowed Prometheus"),
        ("http://prometheus.monitoring:9090.attacker.example", "must be a plain http(s) URL"),
        ("https://thanos.example/tenant-ab", "is not an allowed Prometheus"),
        # The CRD itself refuses credentials and queries in the URL, before any policy.
        ("http://prometheus.monitoring:9090@attacker.example/", CRD_PLAIN_URL),
        ("https://thanos.example/tenant-a/../tenant-b", "must be a plain http(s) URL"),
        ("https://thanos.example/tenant-a/%2e%2e/tenant-b", "must be a plain http(s) URL"),
        ("https://thanos.example/tenant-a/?x=1", CRD_PLAIN_URL),
    ],
    ids=["port", "host", "path", "user-info", "dot-dot", "percent", "query"],
)
def test_a_prometheus_url_that_only_starts_like_an_allowed_one_is_refused(
    admission: Admission, url: str, message: str
) -> None:
    admission.install(
        "prometheus-urls",
        prometheusURLPrefixes="http://prometheus.monitoring:9090, https://thanos.example/tenant-a",
    )
    admission.refuses(mlmodel(rollout=prometheus(url)), message)


def test_an_mlmodel_attaching_its_route_to_an_unlisted_gateway_is_refused(
    admission: Admission,
) -> None:
    ns = admission.namespace
    admission.install(
        "traffic",
        gatewayAPIParentRefs="gateways/public, {namespace}/internal",
        hostnameSuffixes="models.example.com",
    )
    admission.refuses(
        mlmodel(
            traffic=gateway_api(
                {"name": "public", "namespace": "gateways"},
                {"name": "admin", "namespace": "gateways"},
                {"name": "web"},
                hostnames=["iris.models.example.com"],
            )
        ),
        "spec.traffic.gatewayAPI.parentRefs names Gateway(s) MLModels may not attach to: "
        f"gateways/admin, {ns}/web; allowed: gateways/public, {ns}/internal",
    )
    admission.accepts(
        mlmodel(
            traffic=gateway_api(
                {"name": "public", "namespace": "gateways", "sectionName": "https"},
                {"name": "internal"},
                hostnames=["iris.models.example.com"],
            )
        )
    )


def test_an_mlmodel_attaching_its_route_to_a_service_instead_of_a_gateway_is_refused(
    admission: Admission,
) -> None:
    admission.install(
        "traffic", gatewayAPIParentRefs="{namespace}/payments", hostnameSuffixes="example.com"
    )
    admission.refuses(
        mlmodel(
            traffic=gateway_api(
                {"name": "payments", "kind": "Service", "group": ""},
                hostnames=["iris.example.com"],
            )
        ),
        "spec.traffic.gatewayAPI.parentRefs may only name Gateways",
    )


def test_an_mlmodel_claiming_a_hostname_outside_the_allowed_domains_is_refused(
    admission: Admission,
) -> None:
    ns = admission.namespace
    admission.install(
        "traffic",
        gatewayAPIParentRefs="gateways/public",
        hostnameSuffixes=".models.example.com, {namespace}.apps.example.com",
    )
    public = {"name": "public", "namespace": "gateways"}
    admission.refuses(
        mlmodel(
            traffic=gateway_api(
                public,
                hostnames=[
                    "iris.models.example.com",
                    "login.example.com",
                    "evilmodels.example.com",
                ],
            )
        ),
        "hostname(s) login.example.com, evilmodels.example.com in spec.traffic are outside "
        f"the domains MLModels in namespace {ns} may use: models.example.com, "
        f"{ns}.apps.example.com",
    )
    admission.accepts(
        mlmodel(
            traffic=gateway_api(
                public,
                hostnames=[
                    "models.example.com",
                    "*.models.example.com",
                    f"iris.{ns}.apps.example.com",
                ],
            )
        )
    )


def test_an_http_route_without_hostnames_is_refused(admission: Admission) -> None:
    admission.install(
        "traffic", gatewayAPIParentRefs="gateways/public", hostnameSuffixes="models.example.com"
    )
    admission.refuses(
        mlmodel(traffic=gateway_api({"name": "public", "namespace": "gateways"}, hostnames=None)),
        "spec.traffic.gatewayAPI.hostnames must list the model's hostnames: an HTTPRoute "
        "without hostnames takes every hostname of the Gateway's listeners",
    )


def test_an_istio_mlmodel_routing_another_namespaces_service_is_refused(
    admission: Admission,
) -> None:
    ns = admission.namespace
    admission.install("traffic")  # as shipped: mesh, hosts of the model's own namespace
    admission.refuses(
        mlmodel(traffic=istio("iris", "payments.bank.svc.cluster.local")),
        f"hostname(s) payments.bank.svc.cluster.local in spec.traffic are outside the "
        f"domains MLModels in namespace {ns} may use: {ns}.svc.cluster.local",
    )
    # "*" is every host of a gateway, not a Service of the model's namespace.
    admission.refuses(
        mlmodel(traffic=istio("*", gateways=["mesh"])),
        "hostname(s) * in spec.traffic are outside the domains",
    )
    admission.accepts(mlmodel(traffic=istio("iris", f"iris.{ns}.svc.cluster.local")))


def test_an_istio_mlmodel_binding_an_unlisted_gateway_is_refused(admission: Admission) -> None:
    ns = admission.namespace
    admission.install(
        "traffic", istioGateways="istio-system/public", hostnameSuffixes="models.example.com"
    )
    admission.refuses(
        mlmodel(traffic=istio("iris.models.example.com", gateways=["istio-system/public", "own"])),
        f"spec.traffic.istio.gateways names gateway(s) MLModels may not bind to: {ns}/own "
        "(no gateways means mesh); allowed: istio-system/public",
    )
    # No gateways is the mesh, which this cluster does not list.
    admission.refuses(
        mlmodel(traffic=istio("iris.models.example.com")),
        "may not bind to: mesh (no gateways means mesh)",
    )
    admission.accepts(
        mlmodel(traffic=istio("iris.models.example.com", gateways=["istio-system/public"]))
    )


def test_an_mlmodel_tolerating_an_unlisted_taint_is_refused(admission: Admission) -> None:
    admission.install("scheduling", tolerationKeys="nvidia.com/gpu")
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    admission.refuses(
        mlmodel(serving={"tolerations": [gpu, {"operator": "Exists"}]}),
        "spec.serving.tolerations may only tolerate the taint keys nvidia.com/gpu; "
        "refused: (no key: every taint)",
    )
    admission.refuses(
        mlmodel(serving={"tolerations": [{"key": "node-role.kubernetes.io/control-plane"}]}),
        "refused: node-role.kubernetes.io/control-plane",
    )
    admission.accepts(mlmodel(serving={"tolerations": [gpu]}))


def test_an_mlmodel_with_an_unlisted_priority_class_is_refused(admission: Admission) -> None:
    admission.install("scheduling", priorityClassNames="model-serving")
    admission.refuses(
        mlmodel(serving={"priorityClassName": "system-node-critical"}),
        "spec.serving.priorityClassName 'system-node-critical' is not allowed for MLModels: "
        "leave it empty or use one of: model-serving",
    )
    admission.accepts(mlmodel(serving={"priorityClassName": "model-serving"}))
    admission.accepts(mlmodel("no-priority", serving={"replicas": 2}))


def test_with_every_policy_and_the_shipped_parameters_a_plain_mlmodel_is_accepted(
    admission: Admission,
) -> None:
    ns = admission.namespace
    for policy in (
        "no-unsafe-pickle",
        "service-accounts",
        "credentials-secrets",
        "prometheus-urls",
        "traffic",
        "scheduling",
    ):
        admission.install(policy)
    pickled = {"format": "sklearn", "allowUnsafePickle": True}
    for refused, message in [
        (mlmodel(model=pickled), "mlmodel-no-unsafe-pickle"),
        (mlmodel(serving={"serviceAccountName": "x"}), "mlmodel-service-accounts"),
        (mlmodel(model={"credentialsSecret": "x"}), "mlmodel-credentials-secrets"),
        (mlmodel(rollout=prometheus("http://x")), "mlmodel-prometheus-urls"),
        (mlmodel(traffic=istio("x.example.com")), "mlmodel-traffic"),
        (mlmodel(serving={"priorityClassName": "x"}), "mlmodel-scheduling"),
    ]:
        admission.refuses(refused, f"ValidatingAdmissionPolicy '{message}'")
    admission.accepts(mlmodel())
    admission.accepts(
        mlmodel(
            "everything-allowed",
            model={"uri": "s3://models/iris.skops", "credentialsSecret": "model-store-s3"},
            serving={"serviceAccountName": "default", "replicas": 2},
            traffic=istio("iris", f"iris.{ns}.svc.cluster.local"),
            rollout=prometheus("http://prometheus.monitoring:9090"),
        )
    )
