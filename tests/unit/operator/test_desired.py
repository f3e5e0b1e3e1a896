"""The Deployment, Services and PodDisruptionBudget of an MLModel, as a cluster admin reads them."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.desired import deployment, disruption_budget, services
from mlmodel_operator.naming import ModelRef
from mlmodel_operator.settings import DEFAULT_RESOURCES, Settings
from mlmodel_operator.spec import parse_spec

pytestmark = pytest.mark.unit

REF = ModelRef(name="iris", namespace="models", uid="0b5c6a3e-uid")
REVISION = "7f3c9a1e2d"
IMAGE = "registry.example/mlmodel-runtime:1.2.3"
SETTINGS = Settings(runtime_image=IMAGE, image_pull_policy="Always")
SELECTOR_LABELS = {
    "app.kubernetes.io/managed-by": "mlmodel-operator",
    "mlops.dev/model": "iris",
    "mlops.dev/revision": REVISION,
}


def build(
    model: dict[str, Any] | None = None,
    *,
    serving: dict[str, Any] | None = None,
    variant: str = "stable",
    replicas: int = 2,
    settings: Settings = SETTINGS,
    **sections: Any,
) -> dict[str, Any]:
    raw = {
        "model": {"uri": "s3://models/iris/v1/model.skops", **(model or {})},
        "serving": serving or {},
        **sections,
    }
    return deployment(
        REF,
        parse_spec(raw),
        revision=REVISION,
        variant=variant,
        replicas=replicas,
        settings=settings,
    )


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def containers(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(fetch, convert, serve): the two init containers, then the serving one."""
    fetch, convert = pod_spec(manifest)["initContainers"]
    [serve] = pod_spec(manifest)["containers"]
    return fetch, convert, serve


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def volumes(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(manifest)["volumes"]}


# --- the Deployment and its labels ------------------------------------------------------------


def test_one_deployment_per_revision_named_model_dash_revision() -> None:
    manifest = build(replicas=3)

    assert (manifest["apiVersion"], manifest["kind"]) == ("apps/v1", "Deployment")
    assert manifest["metadata"]["name"] == f"iris-{REVISION}"
    assert manifest["metadata"]["namespace"] == "models"
    assert manifest["spec"]["replicas"] == 3
    assert manifest["spec"]["progressDeadlineSeconds"] == 600


def test_the_mlmodel_is_the_controlling_owner() -> None:
    [owner] = build()["metadata"]["ownerReferences"]

    assert owner == {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "name": "iris",
        "uid": "0b5c6a3e-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize("variant", ["stable", "canary"])
def test_the_variant_label_is_on_the_deployment_only(variant: str) -> None:
    manifest = build(variant=variant)
    pod_labels = manifest["spec"]["template"]["metadata"]["labels"]

    assert manifest["metadata"]["labels"] == {**SELECTOR_LABELS, "mlops.dev/variant": variant}
    assert "mlops.dev/variant" not in pod_labels
    assert pod_labels.items() >= SELECTOR_LABELS.items()


def test_promoting_a_canary_does_not_change_its_pod_template() -> None:
    canary, stable = build(variant="canary"), build(variant="stable")

    assert canary["spec"]["template"] == stable["spec"]["template"]
    assert canary["spec"]["selector"] == stable["spec"]["selector"]


def test_the_selector_is_model_and_revision_and_matches_the_pods() -> None:
    manifest = build()
    selector = manifest["spec"]["selector"]["matchLabels"]

    assert selector == {"mlops.dev/model": "iris", "mlops.dev/revision": REVISION}
    assert manifest["spec"]["template"]["metadata"]["labels"].items() >= selector.items()


def test_user_pod_labels_are_kept_but_cannot_override_the_operators() -> None:
    hijack = {
        "team": "fraud",
        "mlops.dev/model": "other",
        "mlops.dev/revision": "0000000000",
        "app.kubernetes.io/managed-by": "helm",
    }
    manifest = build(serving={"podMetadata": {"labels": hijack}})
    labels = manifest["spec"]["template"]["metadata"]["labels"]

    assert labels["team"] == "fraud"
    assert labels.items() >= SELECTOR_LABELS.items()
    assert labels.items() >= manifest["spec"]["selector"]["matchLabels"].items()


def test_pods_carry_prometheus_annotations_and_the_users() -> None:
    manifest = build(
        serving={"podMetadata": {"annotations": {"owner": "ml-team", "prometheus.io/port": "9"}}}
    )
    annotations = manifest["spec"]["template"]["metadata"]["annotations"]

    assert annotations == {
        "owner": "ml-team",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }


# --- the init containers: fetch, then convert ---------------------------------------------------


def test_one_init_container_fetches_and_another_converts_into_the_shared_volume() -> None:
    fetch, convert, serve = containers(build())

    assert (fetch["name"], convert["name"]) == ("fetch", "convert")
    for init in (fetch, convert):
        assert init["image"] == serve["image"] == IMAGE
        assert init["imagePullPolicy"] == serve["imagePullPolicy"] == "Always"
        assert init["command"] == serve["command"] == ["mlmodel-runtime"]
        assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert serve["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert mounts(init)["models"]["mountPath"] == "/models"
    assert fetch["args"] == [
        "fetch",
        "--uri=s3://models/iris/v1/model.skops",
        "--out=/models/source",
        "--report-file=/dev/termination-log",
        "--mount-root=/mnt/pvc",
        "--sha256-file=/etc/mlmodel/pin/sha256",
    ]
    assert convert["args"] == [
        "convert",
        "--source=/models/source",
        "--format=skops",
        "--out=/models",
        "--parity-samples=256",
        "--rtol=0.0001",
        "--atol=1e-05",
        "--report-file=/dev/termination-log",
    ]
    assert mounts(serve)["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert volumes(build())["models"] == {"name": "models", "emptyDir": {}}


def test_the_fetch_container_reads_the_digest_its_revision_pinned_if_any() -> None:
    manifest = build()
    fetch, convert, serve = containers(manifest)

    assert volumes(manifest)["pin"] == {
        "name": "pin",
        "configMap": {
            "name": "iris-model-digests",
            "items": [{"key": REVISION, "path": "sha256"}],
            "optional": True,
        },
    }
    assert mounts(fetch)["pin"] == {
        "name": "pin",
        "mountPath": "/etc/mlmodel/pin",
        "readOnly": True,
    }
    assert "pin" not in mounts(convert)
    assert "pin" not in mounts(serve)


@pytest.mark.parametrize(
    ("model", "conversion", "present", "absent"),
    [
        ({}, {}, [], ["--allow-unsafe-pickle", "--trust-type", "--allow-version"]),
        (
            {"format": "sklearn", "allowUnsafePickle": True},
            {},
            ["--format=sklearn", "--allow-unsafe-pickle"],
            [],
        ),
        (
            {"trustTypes": ["numpy.dtype", "sklearn.tree._tree.Tree"]},
            {},
            ["--trust-type=numpy.dtype", "--trust-type=sklearn.tree._tree.Tree"],
            ["--allow-unsafe-pickle"],
        ),
        ({}, {"allowVersionMismatch": True}, ["--allow-version-mismatch"], []),
        (
            {},
            {"parity": {"samples": 64, "rtol": 0.01, "atol": 0.5}},
            ["--parity-samples=64", "--rtol=0.01", "--atol=0.5"],
            [],
        ),
    ],
)
def test_conversion_flags_appear_only_when_set(
    model: dict[str, Any], conversion: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    _, convert, _ = containers(build(model, conversion=conversion))

    for flag in present:
        assert flag in convert["args"]
    for prefix in absent:
        assert not [a for a in convert["args"] if a.startswith(prefix)]


@pytest.mark.parametrize(("model", "present"), [({}, False), ({"sha256": "ab" * 32}, True)])
def test_an_expected_digest_is_checked_where_the_model_is_fetched(
    model: dict[str, Any], present: bool
) -> None:
    fetch, convert, _ = containers(build(model))

    assert (f"--sha256={'ab' * 32}" in fetch["args"]) is present
    assert not [a for a in convert["args"] if a.startswith("--sha256")]


def test_each_trusted_type_is_its_own_flag_in_order() -> None:
    _, convert, _ = containers(build({"trustTypes": ["a.B", "c.D", "e.F"]}))

    assert [a for a in convert["args"] if a.startswith("--trust-type")] == [
        "--trust-type=a.B",
        "--trust-type=c.D",
        "--trust-type=e.F",
    ]


def test_credentials_reach_the_fetch_container_only_never_the_one_parsing_the_model() -> None:
    manifest = build({"credentialsSecret": "s3-credentials"})
    fetch, convert, serve = containers(manifest)

    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert mounts(fetch)["credentials"] == {
        "name": "credentials",
        "mountPath": "/var/run/secrets/mlmodel/credentials",
        "readOnly": True,
    }
    assert volumes(manifest)["credentials"] == {
        "name": "credentials",
        "secret": {"secretName": "s3-credentials"},
    }
    for container in (convert, serve):
        assert "envFrom" not in container
        assert "credentials" not in mounts(container)
        assert "s3-credentials" not in repr(container)


def test_without_credentials_no_secret_is_mounted_anywhere() -> None:
    manifest = build()
    fetch, _, _ = containers(manifest)

    assert "envFrom" not in fetch
    assert not [v for v in pod_spec(manifest)["volumes"] if "secret" in v]
    assert "credentials" not in mounts(fetch)


def test_a_pvc_uri_mounts_the_claim_read_only_into_the_fetch_container_only() -> None:
    manifest = build({"uri": "pvc://models-claim/iris/v1/model.skops"})
    fetch, convert, serve = containers(manifest)

    assert volumes(manifest)["model-pvc"] == {
        "name": "model-pvc",
        "persistentVolumeClaim": {"claimName": "models-claim", "readOnly": True},
    }
    assert mounts(fetch)["model-pvc"] == {
        "name": "model-pvc",
        "mountPath": "/mnt/pvc/models-claim",
        "readOnly": True,
    }
    assert "--uri=pvc://models-claim/iris/v1/model.skops" in fetch["args"]
    assert "model-pvc" not in mounts(convert)
    assert "model-pvc" not in mounts(serve)


@pytest.mark.parametrize(
    "uri", ["s3://models/iris.skops", "https://example.com/iris.skops", "file:///m/iris.skops"]
)
def test_other_uris_mount_no_claim(uri: str) -> None:
    manifest = build({"uri": uri})

    assert not [v for v in pod_spec(manifest)["volumes"] if "persistentVolumeClaim" in v]


# --- the serving container ------------------------------------------------------------------


def test_the_serving_container_serves_the_converted_model() -> None:
    _, _, serve = containers(
        build(
            {"version": "v2"},
            serving={
                "workers": 3,
                "batching": {"maxBatchSize": 8, "maxDelayMs": 1.5},
                "driftFeatures": 50,
            },
        )
    )

    assert serve["name"] == "serve"
    assert serve["args"] == [
        "serve",
        "--model-dir=/models",
        "--name=iris",
        "--version=v2",
        f"--revision={REVISION}",
        "--host=0.0.0.0",
        "--port=8080",
        "--workers=3",
        "--max-batch-size=8",
        "--max-batch-delay-ms=1.5",
        "--drift-max-features=50",
        "--shutdown-delay-s=10",
        "--drain-timeout-s=20",
    ]
    assert serve["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_without_a_version_the_revision_is_the_version_shown() -> None:
    _, _, serve = containers(build())

    assert "--version=" + REVISION in serve["args"]


def test_probes_use_the_v2_health_endpoints_on_the_named_port() -> None:
    _, _, serve = containers(build())

    assert serve["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert serve["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert serve["livenessProbe"]["failureThreshold"] >= 1
    assert serve["readinessProbe"]["periodSeconds"] <= serve["livenessProbe"]["periodSeconds"]


def test_a_new_pod_is_probed_every_second_and_a_busy_one_given_four() -> None:
    """Ready soon after the server answers; out of the endpoints only after 4 s of misses."""
    _, _, serve = containers(build())
    ready = serve["readinessProbe"]
    assert (ready["periodSeconds"], ready["failureThreshold"]) == (1, 4)


def test_user_env_goes_to_the_serving_container_only() -> None:
    env = [{"name": "OMP_NUM_THREADS", "value": "1"}]
    fetch, convert, serve = containers(build(serving={"env": env}))

    assert serve["env"] == env
    assert "env" not in fetch
    assert "env" not in convert


# --- security, resources, scheduling ------------------------------------------------------------


def test_every_container_runs_restricted() -> None:
    manifest = build({"credentialsSecret": "s3", "uri": "pvc://claim/m.skops"})

    for container in containers(manifest):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert (
            mounts(container)["tmp"]["mountPath"] == "/tmp"
        )  # writable despite the read-only root
    pod = pod_spec(manifest)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False


def test_resources_default_to_the_operators_settings() -> None:
    for container in containers(build()):
        assert container["resources"] == SETTINGS.default_resources == DEFAULT_RESOURCES

    custom = Settings(default_resources={"requests": {"cpu": "1"}})
    for container in containers(build(settings=custom)):
        assert container["resources"] == {"requests": {"cpu": "1"}}


def test_resources_in_the_spec_win_over_the_defaults() -> None:
    resources = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}

    for container in containers(build(serving={"resources": resources})):
        assert container["resources"] == resources


@pytest.mark.parametrize(
    ("serving", "field", "expected"),
    [
        ({"nodeSelector": {"pool": "ml"}}, "nodeSelector", {"pool": "ml"}),
        (
            {"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
            "tolerations",
            [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        (
            {
                "affinity": {
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}
                }
            },
            "affinity",
            {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        ),
        ({"priorityClassName": "ml-serving"}, "priorityClassName", "ml-serving"),
        (
            {"imagePullSecrets": [{"name": "registry"}, {"name": "mirror"}]},
            "imagePullSecrets",
            [{"name": "registry"}, {"name": "mirror"}],
        ),
        ({"serviceAccountName": "iris-runtime"}, "serviceAccountName", "iris-runtime"),
    ],
)
def test_scheduling_fields_pass_through_and_are_absent_when_unset(
    serving: dict[str, Any], field: str, expected: Any
) -> None:
    assert pod_spec(build(serving=serving))[field] == expected
    assert field not in pod_spec(build())


# --- Services and the disruption budget --------------------------------------------------------


def selectors(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["spec"]["selector"] for o in objects}


@pytest.mark.parametrize(
    ("canary", "canary_selects"),
    [("c41d2e8f00", "c41d2e8f00"), (None, REVISION)],
)
def test_services_select_the_model_the_stable_and_the_canary(
    canary: str | None, canary_selects: str
) -> None:
    made = services(REF, stable=REVISION, canary=canary)

    assert selectors(made) == {
        "iris": {"mlops.dev/model": "iris"},
        "iris-stable": {"mlops.dev/model": "iris", "mlops.dev/revision": REVISION},
        "iris-canary": {"mlops.dev/model": "iris", "mlops.dev/revision": canary_selects},
    }
    for service in made:
        assert service["kind"] == "Service"
        assert service["metadata"]["namespace"] == "models"
        assert service["metadata"]["ownerReferences"][0]["controller"] is True
        assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlmodel-operator"
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
        ]


def test_the_service_selectors_match_the_pods_of_their_revision() -> None:
    pods = build()["spec"]["template"]["metadata"]["labels"]

    for selector in selectors(services(REF, stable=REVISION, canary=None)).values():
        assert pods.items() >= selector.items()


def test_a_disruption_budget_per_revision_covers_its_pods() -> None:
    budget = disruption_budget(REF, REVISION)
    pods = build()["spec"]["template"]["metadata"]["labels"]

    assert budget["kind"] == "PodDisruptionBudget"
    assert budget["metadata"]["name"] == f"iris-{REVISION}"
    assert budget["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == {
        "mlops.dev/model": "iris",
        "mlops.dev/revision": REVISION,
    }
    assert pods.items() >= budget["spec"]["selector"]["matchLabels"].items()


def test_a_terminating_pod_answers_until_traffic_has_left_it_then_drains() -> None:
    """The kubelet's SIGKILL comes only after serve's shutdown delay and drain."""
    manifest = build()
    _, _, serve = containers(manifest)
    delay = int(next(a for a in serve["args"] if a.startswith("--shutdown-delay-s=")).split("=")[1])
    drain = int(next(a for a in serve["args"] if a.startswith("--drain-timeout-s=")).split("=")[1])
    assert delay >= 5
    assert pod_spec(manifest)["terminationGracePeriodSeconds"] > delay + drain


def test_a_parity_reference_is_fetched_beside_the_model_and_found_there_by_convert() -> None:
    reference = {"uri": "s3://models/iris/reference.npz", "sha256": "cd" * 32}
    fetch, convert, _ = containers(build({}, conversion={"reference": reference}))

    assert fetch["args"][-2:] == [
        "--reference-uri=s3://models/iris/reference.npz",
        f"--reference-sha256={'cd' * 32}",
    ]
    assert not [a for a in convert["args"] if a.startswith("--reference")]


# --- gRPC ------------------------------------------------------------------------------------


def test_grpc_is_off_unless_asked() -> None:
    *_, serve = containers(build())
    assert not any(arg.startswith("--grpc-port") for arg in serve["args"])
    assert [p["name"] for p in serve["ports"]] == ["http"]


def test_serving_grpc_opens_the_runtimes_grpc_port() -> None:
    *_, serve = containers(build(serving={"grpc": True}))
    assert "--grpc-port=9000" in serve["args"]
    assert serve["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 9000, "protocol": "TCP"},
    ]


def test_the_event_loop_bound_is_passed_only_when_set() -> None:
    # Off, no argument at all: the pod template (and so the revision) of every model
    # that does not ask stays what it was before the field existed.
    *_, serve = containers(build())
    assert not any(arg.startswith("--max-loop-lag-ms") for arg in serve["args"])
    *_, serve = containers(build(serving={"maxLoopLagMs": 2}))
    assert "--max-loop-lag-ms=2" in serve["args"]
    *_, serve = containers(build(serving={"maxLoopLagMs": 0.5}))
    assert "--max-loop-lag-ms=0.5" in serve["args"]


def test_grpc_services_have_an_h2c_port() -> None:
    for service in services(REF, stable=REVISION, canary=None, grpc=True):
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {
                "name": "grpc",
                "port": 9000,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            },
        ]


# --- the node's conversion cache ---------------------------------------------------------------

CACHED = Settings(runtime_image=IMAGE, convert_cache_host_path="/var/cache/mlmodel")


def test_without_a_cache_setting_no_pod_mounts_a_node_directory() -> None:
    manifest = build()
    _, convert, _ = containers(manifest)

    assert not [v for v in pod_spec(manifest)["volumes"] if "hostPath" in v]
    assert not [a for a in convert["args"] if a.startswith("--cache-dir")]


def test_the_cache_is_the_namespaces_node_directory_mounted_into_convert_only() -> None:
    manifest = build(settings=CACHED)
    fetch, convert, serve = containers(manifest)

    assert volumes(manifest)["convert-cache"] == {
        "name": "convert-cache",
        "hostPath": {"path": "/var/cache/mlmodel/models", "type": "DirectoryOrCreate"},
    }
    assert mounts(convert)["convert-cache"] == {
        "name": "convert-cache",
        "mountPath": "/var/cache/mlmodel/convert",
    }
    assert convert["args"][-1] == "--cache-dir=/var/cache/mlmodel/convert"
    # Neither the container holding the store's credentials nor the server sees it.
    assert "convert-cache" not in mounts(fetch)
    assert "convert-cache" not in mounts(serve)


def test_a_model_that_unpickles_never_gets_the_cache() -> None:
    """Unpickling runs the file's code: with the directory mounted it could plant a
    conversion for the namespace's other models."""
    manifest = build(
        {"uri": "s3://models/iris/v1/model.pkl", "format": "sklearn", "allowUnsafePickle": True},
        settings=CACHED,
    )
    _, convert, _ = containers(manifest)

    assert "convert-cache" not in volumes(manifest)
    assert "convert-cache" not in mounts(convert)
    assert not [a for a in convert["args"] if a.startswith("--cache-dir")]


def test_the_cache_adds_only_its_flag_to_the_convert_arguments() -> None:
    plain, cached = containers(build())[1], containers(build(settings=CACHED))[1]
    assert cached["args"] == [*plain["args"], "--cache-dir=/var/cache/mlmodel/convert"]
