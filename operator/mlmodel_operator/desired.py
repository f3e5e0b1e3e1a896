"""Desired child objects of an MLModel: one Deployment per revision, Services, PDBs, the
HorizontalPodAutoscaler.

Pure: every object is built from scratch with only the fields the operator
cares about, and applied with server-side apply, so fields set by others are left
alone. An autoscaled stable's Deployment is built without `replicas` (the HPA's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlmodel_operator.naming import (
    GRPC_PORT,
    HTTP_PORT,
    MODEL_LABEL,
    REVISION_LABEL,
    SERVICE_PORT,
    VARIANT_LABEL,
    ModelRef,
    base_labels,
    deployment_name,
    owned_metadata,
)
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import Autoscaling, MLModelSpec

MODELS_DIR = "/models"
SOURCE_DIR = f"{MODELS_DIR}/source"  # the fetched file, until convert has read it
PVC_ROOT = "/mnt/pvc"
CREDENTIALS_DIR = "/var/run/secrets/mlmodel/credentials"
PIN_DIR = "/etc/mlmodel/pin"
CONVERT_CACHE_DIR = "/var/cache/mlmodel/convert"
RUNTIME_UID = 65532
# How long endpoints, kube-proxy and gateways take to stop routing here. 5 s was short on
# a real kubelet with a busy control plane: a deleted pod's requests failed to connect
# (36 of 2,119 through the Service) once its network namespace was gone before
# kube-proxy had dropped it (the process runner never showed it).
SHUTDOWN_DELAY_S = 10
DRAIN_TIMEOUT_S = 20
# The kubelet's SIGKILL must come after the delay and the drain.
TERMINATION_GRACE_S = SHUTDOWN_DELAY_S + DRAIN_TIMEOUT_S + 5


def pins_name(model: str) -> str:
    """The ConfigMap holding the model digest each revision pinned at its first fetch."""
    return f"{model}-model-digests"


def _fetch_args(spec: MLModelSpec) -> list[str]:
    model = spec.model
    args = [
        "fetch",
        f"--uri={model.uri}",
        f"--out={SOURCE_DIR}",
        "--report-file=/dev/termination-log",
        f"--mount-root={PVC_ROOT}",
        # The digest the revision's first pod fetched: later pods must fetch the same
        # bytes, or the object at the URI changed under a running revision.
        f"--sha256-file={PIN_DIR}/sha256",
    ]
    if model.sha256:
        args.append(f"--sha256={model.sha256}")
    if reference := spec.conversion.reference:
        # Beside the model in the source directory; convert finds it there.
        args += [f"--reference-uri={reference.uri}", f"--reference-sha256={reference.sha256}"]
    if evaluation := spec.rollout.evaluation:
        args += [
            f"--evaluation-uri={evaluation.dataset_uri}",
            f"--evaluation-sha256={evaluation.dataset_sha256}",
        ]
    return args


def _convert_cache(
    ref: ModelRef, spec: MLModelSpec, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The node's conversion cache of the model's namespace: (volume, convert's mount),
    or None when the administrator set none or the model unpickles.

    One directory per namespace, because whoever writes it decides what later pods of
    the namespace serve (docs/convert.md): the models of one namespace share it, never
    those of another. Never mounted where the model unpickles: pickle runs the file's
    code, which could write the directory (the runtime would not use it there anyway).
    """
    if not settings.convert_cache_host_path or spec.model.allow_unsafe_pickle:
        return None
    volume = {
        "name": "convert-cache",
        "hostPath": {
            "path": f"{settings.convert_cache_host_path}/{ref.namespace}",
            "type": "DirectoryOrCreate",
        },
    }
    return volume, {"name": "convert-cache", "mountPath": CONVERT_CACHE_DIR}


def _convert_args(spec: MLModelSpec) -> list[str]:
    model, parity = spec.model, spec.conversion.parity
    args = [
        "convert",
        f"--source={SOURCE_DIR}",
        f"--format={model.format}",
        f"--out={MODELS_DIR}",
        f"--parity-samples={parity.samples}",
        f"--rtol={parity.rtol:g}",
        f"--atol={parity.atol:g}",
        "--report-file=/dev/termination-log",
    ]
    if model.allow_unsafe_pickle:
        args.append("--allow-unsafe-pickle")
    if spec.conversion.allow_version_mismatch:
        args.append("--allow-version-mismatch")
    args.extend(f"--trust-type={t}" for t in model.trust_types)
    if spec.rollout.evaluation is not None:
        args.append(f"--evaluation-metric={spec.rollout.evaluation.metric}")
    return args


def _serve_args(ref: ModelRef, spec: MLModelSpec, revision: str) -> list[str]:
    serving = spec.serving
    return [
        "serve",
        f"--model-dir={MODELS_DIR}",
        f"--name={ref.name}",
        f"--version={spec.model.version or revision}",
        f"--revision={revision}",
        "--host=0.0.0.0",
        f"--port={HTTP_PORT}",
        f"--workers={serving.workers}",
        f"--max-batch-size={serving.batching.max_batch_size}",
        f"--max-batch-delay-ms={serving.batching.max_delay_ms:g}",
        f"--drift-max-features={serving.drift_features}",
        # Only when asked: an argument added for everyone would change every revision.
        *([f"--grpc-port={GRPC_PORT}"] if serving.grpc else []),
        *([f"--max-loop-lag-ms={serving.max_loop_lag_ms:g}"] if serving.max_loop_lag_ms else []),
        # On SIGTERM keep answering (unready) while endpoints and gateways stop sending
        # here, then finish what is in flight: no request is refused during a rollout.
        f"--shutdown-delay-s={SHUTDOWN_DELAY_S}",
        f"--drain-timeout-s={DRAIN_TIMEOUT_S}",
    ]


_CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        # A loaded server answers a probe within a second or so (JSON decoding holds the
        # GIL); a tighter timeout would take busy pods out of service.
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _runtime_container(
    name: str, args: list[str], resources: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """An init container running `mlmodel-runtime`: its report is the termination message."""
    return {
        "name": name,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mlmodel-runtime"],
        "args": args,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _CONTAINER_SECURITY,
        "resources": dict(resources or settings.default_resources),
    }


def digest_pins(ref: ModelRef, pins: Mapping[str, str]) -> dict[str, Any]:
    """The ConfigMap of pinned model digests, by revision (mounted by each revision's fetch
    container, one key each)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned_metadata(ref, pins_name(ref.name), base_labels(ref.name)),
        "data": dict(sorted(pins.items())),
    }


def pod_template(
    ref: ModelRef, spec: MLModelSpec, revision: str, settings: Settings
) -> dict[str, Any]:
    serving = spec.serving
    labels = {
        **serving.pod_labels,
        **base_labels(ref.name),
        REVISION_LABEL: revision,
        "app.kubernetes.io/name": "mlmodel-runtime",
    }
    annotations = {
        **serving.pod_annotations,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    volumes: list[dict[str, Any]] = [
        {"name": "models", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "pin",
            "configMap": {
                "name": pins_name(ref.name),
                "items": [{"key": revision, "path": "sha256"}],
                "optional": True,  # absent until the revision's first pod has fetched
            },
        },
    ]
    work_mounts = [
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    # Fetching and converting are two containers, so that the one that parses the model
    # file (the attack surface) cannot read the credentials the other one needed.
    fetch: dict[str, Any] = {
        **_runtime_container("fetch", _fetch_args(spec), serving.resources, settings),
        "volumeMounts": [*work_mounts, {"name": "pin", "mountPath": PIN_DIR, "readOnly": True}],
    }
    if spec.model.credentials_secret:
        secret = spec.model.credentials_secret
        fetch["envFrom"] = [{"secretRef": {"name": secret}}]
        volumes.append({"name": "credentials", "secret": {"secretName": secret}})
        fetch["volumeMounts"].append(
            {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}
        )
    if claim := spec.model.pvc_claim:
        volumes.append(
            {"name": "model-pvc", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        fetch["volumeMounts"].append(
            {"name": "model-pvc", "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True}
        )
    convert = {
        **_runtime_container("convert", _convert_args(spec), serving.resources, settings),
        "volumeMounts": list(work_mounts),
    }
    if cache := _convert_cache(ref, spec, settings):
        volumes.append(cache[0])
        convert["volumeMounts"].append(cache[1])
        convert["args"].append(f"--cache-dir={CONVERT_CACHE_DIR}")
    serve: dict[str, Any] = {
        "name": "serve",
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mlmodel-runtime"],
        "args": _serve_args(ref, spec, revision),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            *(
                [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}]
                if serving.grpc
                else []
            ),
        ],
        # Every second: a new pod is Ready about a second sooner than with 2 s (the
        # server answers ~0.4 s after it starts, after the kubelet's first probe), and
        # four misses keep the 4 s a busy pod is given before it leaves the endpoints.
        "readinessProbe": _probe("/v2/health/ready", period=1, failures=4),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        # A server that exits at start says why in its log's last line: status quotes it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _CONTAINER_SECURITY,
        "resources": dict(serving.resources or settings.default_resources),
        "volumeMounts": [
            {"name": "models", "mountPath": MODELS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if serving.env:
        serve["env"] = [dict(e) for e in serving.env]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [fetch, convert],
        "containers": [serve],
        "volumes": volumes,
    }
    if serving.service_account_name:
        pod_spec["serviceAccountName"] = serving.service_account_name
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in serving.tolerations]
    if serving.affinity:
        pod_spec["affinity"] = dict(serving.affinity)
    if serving.priority_class_name:
        pod_spec["priorityClassName"] = serving.priority_class_name
    if serving.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in serving.image_pull_secrets]
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def deployment(
    ref: ModelRef,
    spec: MLModelSpec,
    *,
    revision: str,
    variant: str,
    replicas: int | None,
    settings: Settings,
) -> dict[str, Any]:
    """The Deployment of one revision. Its variant label is on the Deployment only:
    promoting a canary relabels the Deployment without restarting its pods. `replicas`
    None leaves the field out: the applied configuration then claims no ownership of it
    (an autoscaled stable, whose replicas the HPA sets)."""
    selector = {MODEL_LABEL: ref.name, REVISION_LABEL: revision}
    built: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owned_metadata(
            ref,
            deployment_name(ref.name, revision),
            {**base_labels(ref.name), REVISION_LABEL: revision, VARIANT_LABEL: variant},
        ),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 1,
            "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": pod_template(ref, spec, revision, settings),
        },
    }
    if replicas is None:
        del built["spec"]["replicas"]
    return built


def _quantity(value: float) -> str:
    """A Kubernetes quantity for a per-pod target: 12 -> "12", 2.5 -> "2500m"."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


# The Pods metric of the custom metrics API a requestsPerSecond target reads; an adapter
# derives it from the runtime's mlmodel_requests_total (docs/autoscaling.md).
REQUESTS_PER_SECOND_METRIC = "mlmodel_requests_per_second"


def autoscaler(ref: ModelRef, autoscaling: Autoscaling, revision: str) -> dict[str, Any]:
    """The HorizontalPodAutoscaler (autoscaling/v2) of the stable revision `revision`,
    named as the MLModel: a promotion points the same HPA at the new stable, so its
    recommendations and stabilisation windows carry over."""
    if autoscaling.cpu_utilization is not None:
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": autoscaling.cpu_utilization,
                },
            },
        }
    else:
        assert autoscaling.requests_per_second is not None
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": REQUESTS_PER_SECOND_METRIC},
                "target": {
                    "type": "AverageValue",
                    "averageValue": _quantity(autoscaling.requests_per_second),
                },
            },
        }
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment_name(ref.name, revision),
        },
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": [metric],
    }
    if autoscaling.behavior:
        spec["behavior"] = dict(autoscaling.behavior)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owned_metadata(
            ref, ref.name, {**base_labels(ref.name), REVISION_LABEL: revision}
        ),
        "spec": spec,
    }


# The field manager that holds an autoscaled Deployment's replicas between the operator's
# letting go and the HPA's first write (Kubernetes' documented ownership hand-over: the
# manager vanishes by itself once the HPA sets the field).
HANDOVER_MANAGER = "handover-to-hpa"


def replicas_handover(ref: ModelRef, revision: str, replicas: int) -> dict[str, Any]:
    """The applied configuration `HANDOVER_MANAGER` applies to claim `replicas` of a
    Deployment the operator is about to apply without it: otherwise the API server would
    reset the field to its default of 1 until the HPA noticed."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(ref.name, revision), "namespace": ref.namespace},
        "spec": {"replicas": replicas},
    }


# The gRPC port speaks HTTP/2 without TLS: gateways (Gateway API's GRPCRoute backends,
# Traefik, Envoy) read appProtocol to open h2c connections to it.
_GRPC_SERVICE_PORT = {
    "name": "grpc",
    "port": GRPC_PORT,
    "targetPort": "grpc",
    "protocol": "TCP",
    "appProtocol": "kubernetes.io/h2c",
}


def service(
    ref: ModelRef, name: str, selector: dict[str, str], *, grpc: bool = False
) -> dict[str, Any]:
    ports = [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}]
    if grpc:
        ports.append(dict(_GRPC_SERVICE_PORT))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owned_metadata(ref, name, base_labels(ref.name)),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }


def services(
    ref: ModelRef,
    *,
    stable: str,
    canary: str | None,
    grpc: bool = False,
    revisions: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """`<name>` selects every revision (the replicas router splits by replica count),
    `<name>-stable` the stable one, `<name>-canary` the canary, or stable when there
    is none (as Argo Rollouts does), so a router can always name both; and one
    `<name>-<revision>` for each of `revisions` (for a router that splits by revision:
    its selector never moves). With `grpc` each also has the gRPC port."""
    model = {MODEL_LABEL: ref.name}
    return [
        service(ref, ref.name, model, grpc=grpc),
        service(ref, f"{ref.name}-stable", {**model, REVISION_LABEL: stable}, grpc=grpc),
        service(ref, f"{ref.name}-canary", {**model, REVISION_LABEL: canary or stable}, grpc=grpc),
        *(
            service(
                ref,
                revision_service(ref.name, revision),
                {**model, REVISION_LABEL: revision},
                grpc=grpc,
            )
            for revision in revisions
        ),
    ]


def revision_service(model: str, revision: str) -> str:
    """The Service that selects one revision's pods: named as its Deployment is."""
    return deployment_name(model, revision)


def disruption_budget(ref: ModelRef, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": owned_metadata(
            ref,
            deployment_name(ref.name, revision),
            {**base_labels(ref.name), REVISION_LABEL: revision},
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {MODEL_LABEL: ref.name, REVISION_LABEL: revision}},
        },
    }
