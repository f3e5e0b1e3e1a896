"""The MLModel spec as frozen dataclasses, parsed once from the object's dict.

Pure: the API server has already applied the CRD's defaults and CEL rules; this
module re-applies defaults (so it also accepts objects from older CRD versions)
and raises `SpecError` for what the schema cannot express.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator.analysis.spec import AnalysisSpec, parse_analysis
from mlmodel_operator.durations import parse_duration
from mlmodel_operator.errors import SpecError
from mlmodel_operator.monitoring import MonitoringSpec, parse_monitoring
from mlmodel_operator.routers import REGISTRY
from mlmodel_operator.webhooks import TYPES as WEBHOOK_TYPES
from mlmodel_operator.webhooks import Hook

# The runtime's model formats (`mlmodel_runtime.convert.formats.REGISTRY`, which the
# operator does not import: it would pull NumPy into the operator's image) and those
# whose loading runs code. A test keeps them equal to the runtime's registry.
MODEL_FORMATS = ("skops", "sklearn", "onnx", "xgboost", "lightgbm")
UNPICKLING_FORMATS = ("sklearn",)


@dataclass(frozen=True)
class ModelSource:
    uri: str
    format: str = "skops"
    version: str = ""
    sha256: str = ""
    credentials_secret: str = ""
    allow_unsafe_pickle: bool = False
    trust_types: tuple[str, ...] = ()

    def to_spec(self) -> dict[str, Any]:
        """spec.model as the API server holds it (the CRD's defaults, format and
        allowUnsafePickle, written out; other fields only when set): what status.history
        keeps and `kubectl mlmodel undo` writes back and compares with."""
        out: dict[str, Any] = {
            "uri": self.uri,
            "format": self.format,
            "allowUnsafePickle": self.allow_unsafe_pickle,
        }
        if self.version:
            out["version"] = self.version
        if self.sha256:
            out["sha256"] = self.sha256
        if self.credentials_secret:
            out["credentialsSecret"] = self.credentials_secret
        if self.trust_types:
            out["trustTypes"] = list(self.trust_types)
        return out

    @property
    def pvc_claim(self) -> str:
        """The claim of a pvc://claim/path URI, else ''."""
        if not self.uri.startswith("pvc://"):
            return ""
        return self.uri[len("pvc://") :].split("/", 1)[0]


@dataclass(frozen=True)
class Parity:
    samples: int = 256
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass(frozen=True)
class Reference:
    """spec.conversion.reference: predictions from the training environment."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class Conversion:
    parity: Parity = Parity()
    allow_version_mismatch: bool = False
    reference: Reference | None = None


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 32
    # No wait: measured to cost throughput at low concurrency and to gain nothing under
    # load (bench/batching_bench.py --sweep, docs/benchmarks.md).
    max_delay_ms: float = 0.0


@dataclass(frozen=True)
class Autoscaling:
    """spec.serving.autoscaling: a HorizontalPodAutoscaler sizes the stable revision between
    `min_replicas` and `max_replicas` by one target, CPU utilisation (percent of the pods'
    CPU request) or inference requests per second per pod (a Pods metric of the custom
    metrics API). The HPA owns the stable's replicas; the operator derives the canary's."""

    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None = None
    requests_per_second: float | None = None
    behavior: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Serving:
    replicas: int = 1
    # None: `replicas` is the stable's size; else the HPA's bounds and target.
    autoscaling: Autoscaling | None = None
    workers: int = 1
    batching: Batching = Batching()
    # Kubernetes-shaped sub-objects are passed through as given (already schema-checked).
    resources: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    priority_class_name: str = ""
    service_account_name: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    # Input features whose histograms the runtime exports for drift (its
    # --drift-max-features): bounded, since each costs ~12 series per pod.
    drift_features: int = 20
    # The runtime's gRPC service (Open Inference Protocol v2) on naming.GRPC_PORT.
    grpc: bool = False
    # The runtime's --max-loop-lag-ms: 0 leaves its event-loop bound off (the runtime's
    # default; why in docs/runtime-api.md, "The event loop").
    max_loop_lag_ms: float = 0.0


@dataclass(frozen=True)
class Step:
    weight: int
    # None: no pause (advance after one analysis interval); inf: wait for a promote.
    pause_seconds: float | None = None
    # A shadow step: this percent of live requests is copied to the canary, whose
    # answers are discarded; clients get only the stable's (weight is 0).
    mirror: int = 0


DEFAULT_STEPS = (Step(10, 60.0), Step(50, 60.0), Step(100, None))


EVALUATION_METRICS = {"accuracy": True, "f1": True, "rmse": False, "mae": False}
"""The runtime's evaluation metrics (`mlmodel_runtime.convert.evaluation.METRICS`) and
whether higher is better; a test keeps the two equal."""


@dataclass(frozen=True)
class Evaluation:
    """spec.rollout.evaluation: each revision scored on a labelled holdout set by its
    init container; a canary worse than the stable by more than `max_degradation` (in
    the metric's units) is rolled back before it gets traffic."""

    dataset_uri: str
    dataset_sha256: str
    metric: str
    max_degradation: float = 0.0

    @property
    def higher_is_better(self) -> bool:
        return EVALUATION_METRICS[self.metric]


@dataclass(frozen=True)
class Rollout:
    steps: tuple[Step, ...] = DEFAULT_STEPS
    progress_deadline_seconds: int = 600
    scale_down_delay_seconds: int = 30
    history_limit: int = 10
    evaluation: Evaluation | None = None
    webhooks: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class Traffic:
    """The router's name and its own settings (`Router.parse` of `spec.traffic.<name>`)."""

    router: str = "replicas"
    settings: Any = None


@dataclass(frozen=True)
class MLModelSpec:
    model: ModelSource
    conversion: Conversion = Conversion()
    serving: Serving = Serving()
    traffic: Traffic = Traffic()
    rollout: Rollout = Rollout()
    # None: steps advance on time, health and people alone.
    analysis: AnalysisSpec | None = None
    # None: the stable is not judged after promotion.
    monitoring: MonitoringSpec | None = None


def _steps(raw: list[Mapping[str, Any]] | None) -> tuple[Step, ...]:
    if not raw:
        return DEFAULT_STEPS
    steps = []
    for item in raw:
        pause = item.get("pause")
        seconds: float | None
        if pause is None:
            seconds = None
        elif "duration" in pause:
            seconds = parse_duration(str(pause["duration"]))
        else:
            seconds = float("inf")
        if ("weight" in item) == ("mirror" in item):
            raise SpecError("each rollout step sets weight or mirror (a shadow step), not both")
        if "mirror" in item:
            mirror = int(item["mirror"])
            if not 1 <= mirror <= 100:
                raise SpecError("rollout.steps mirror must be within 1-100")
            steps.append(Step(weight=0, pause_seconds=seconds, mirror=mirror))
        else:
            steps.append(Step(weight=int(item["weight"]), pause_seconds=seconds))
    weights = [s.weight for s in steps if not s.mirror]
    if weights != sorted(weights) or not all(0 <= w <= 100 for w in weights):
        raise SpecError("rollout.steps weights must be within 0-100 and must not decrease")
    kinds = [0 if s.mirror else 1 for s in steps]
    if kinds != sorted(kinds):
        raise SpecError(
            "rollout.steps: mirror (shadow) steps come before the steps that give the canary "
            "traffic"
        )
    return tuple(steps)


def _reference(
    raw: Mapping[str, Any] | None, model: ModelSource, what: str = "conversion.reference"
) -> Reference | None:
    """A file fetched beside the model (a parity reference, an evaluation dataset)."""
    if not raw:
        return None
    uri, sha256 = str(raw.get("uri", "")), str(raw.get("sha256", ""))
    if not uri or not re.fullmatch("[0-9a-f]{64}", sha256):
        raise SpecError(f"{what} needs a uri and a sha256 of 64 lowercase hex digits")
    if model.format == "onnx":
        raise SpecError(
            f"{what} needs a model with an original to compare (any format but onnx); "
            "an ONNX model is served as is"
        )
    if uri.startswith("pvc://") and uri[len("pvc://") :].split("/", 1)[0] != model.pvc_claim:
        raise SpecError(
            f"{what} on a PVC must be on the model's own claim (only that one is mounted)"
        )
    return Reference(uri=uri, sha256=sha256)


def _evaluation(raw: Mapping[str, Any] | None, model: ModelSource) -> Evaluation | None:
    if not raw:
        return None
    dataset = raw.get("dataset") or {}
    found = _reference(dataset, model, what="rollout.evaluation.dataset")
    metric = str(raw.get("metric", "accuracy"))
    if metric not in EVALUATION_METRICS:
        raise SpecError(
            f"rollout.evaluation.metric {metric!r} is not one of {', '.join(EVALUATION_METRICS)}"
        )
    degradation = float(raw.get("maxDegradation", 0.0))
    if degradation < 0 or not math.isfinite(degradation):
        raise SpecError("rollout.evaluation.maxDegradation must be a number >= 0")
    assert found is not None
    return Evaluation(found.uri, found.sha256, metric, degradation)


def _webhooks(raw: list[Mapping[str, Any]] | None, *, analysed: bool) -> tuple[Hook, ...]:
    hooks = []
    for item in raw or ():
        kind = str(item.get("type", ""))
        if kind not in WEBHOOK_TYPES:
            raise SpecError(
                f"rollout.webhooks type {kind!r} is not one of {', '.join(WEBHOOK_TYPES)}"
            )
        url = str(item.get("url", ""))
        if not re.fullmatch(r"https?://[^/?#@\s]+(/[^?#\s]*)?", url):
            raise SpecError(
                "rollout.webhooks url must be an http(s) URL without credentials, query or fragment"
            )
        timeout = float(item.get("timeoutSeconds", 10))
        if not 1 <= timeout <= 60:
            raise SpecError("rollout.webhooks timeoutSeconds must be within 1-60")
        hooks.append(Hook(type=kind, url=url, timeout_s=timeout))
    if not analysed and any(hook.type == "rollout" for hook in hooks):
        raise SpecError(
            "a rollout webhook is called at each analysis interval and judged with it: "
            "it needs rollout.analysis"
        )
    return tuple(hooks)


def _autoscaling(raw: Mapping[str, Any] | None) -> Autoscaling | None:
    if not raw:
        return None
    if "maxReplicas" not in raw:
        raise SpecError("serving.autoscaling.maxReplicas is required")
    low, high = int(raw.get("minReplicas", 1)), int(raw["maxReplicas"])
    if not 1 <= low <= high:
        raise SpecError(
            f"serving.autoscaling needs 1 <= minReplicas <= maxReplicas, not {low} and {high}"
        )
    cpu, rps = raw.get("cpuUtilization"), raw.get("requestsPerSecond")
    if (cpu is None) == (rps is None):
        raise SpecError("serving.autoscaling needs one target: cpuUtilization or requestsPerSecond")
    if rps is not None and not float(rps) > 0:
        raise SpecError(f"serving.autoscaling.requestsPerSecond must be positive, not {rps}")
    return Autoscaling(
        min_replicas=low,
        max_replicas=high,
        cpu_utilization=None if cpu is None else int(cpu),
        requests_per_second=None if rps is None else float(rps),
        behavior=dict(raw.get("behavior") or {}),
    )


def parse_spec(spec: Mapping[str, Any]) -> MLModelSpec:
    """Parse `.spec` of an MLModel. Raises SpecError with a message for people."""
    model = spec.get("model") or {}
    if not model.get("uri"):
        raise SpecError("spec.model.uri is required")
    fmt = model.get("format", "skops")
    if fmt not in MODEL_FORMATS:
        raise SpecError(f"spec.model.format {fmt!r} is not one of {', '.join(MODEL_FORMATS)}")
    allow_pickle = bool(model.get("allowUnsafePickle", False))
    if fmt in UNPICKLING_FORMATS and not allow_pickle:
        raise SpecError(f"format {fmt} loads a pickle: set model.allowUnsafePickle to true")
    source = ModelSource(
        uri=str(model["uri"]),
        format=fmt,
        version=str(model.get("version", "")),
        sha256=str(model.get("sha256", "")),
        credentials_secret=str(model.get("credentialsSecret", "")),
        allow_unsafe_pickle=allow_pickle,
        trust_types=tuple(str(t) for t in model.get("trustTypes", ())),
    )
    conv = spec.get("conversion") or {}
    parity = conv.get("parity") or {}
    conversion = Conversion(
        parity=Parity(
            samples=int(parity.get("samples", 256)),
            rtol=float(parity.get("rtol", 1e-4)),
            atol=float(parity.get("atol", 1e-5)),
        ),
        allow_version_mismatch=bool(conv.get("allowVersionMismatch", False)),
        reference=_reference(conv.get("reference"), source),
    )
    srv = spec.get("serving") or {}
    batching = srv.get("batching") or {}
    pod_metadata = srv.get("podMetadata") or {}
    if "replicas" in srv and srv.get("autoscaling"):
        raise SpecError(
            "serving.replicas and serving.autoscaling are exclusive: with autoscaling the "
            "HorizontalPodAutoscaler sets the stable's replicas"
        )
    autoscaling = _autoscaling(srv.get("autoscaling"))
    serving = Serving(
        replicas=autoscaling.min_replicas if autoscaling else int(srv.get("replicas", 1)),
        autoscaling=autoscaling,
        workers=int(srv.get("workers", 1)),
        batching=Batching(
            max_batch_size=int(batching.get("maxBatchSize", 32)),
            max_delay_ms=float(batching.get("maxDelayMs", 0.0)),
        ),
        resources=dict(srv.get("resources") or {}),
        node_selector=dict(srv.get("nodeSelector") or {}),
        tolerations=tuple(srv.get("tolerations") or ()),
        affinity=dict(srv.get("affinity") or {}),
        priority_class_name=str(srv.get("priorityClassName", "")),
        service_account_name=str(srv.get("serviceAccountName", "")),
        image_pull_secrets=tuple(str(s["name"]) for s in srv.get("imagePullSecrets") or ()),
        env=tuple(srv.get("env") or ()),
        pod_labels=dict(pod_metadata.get("labels") or {}),
        pod_annotations=dict(pod_metadata.get("annotations") or {}),
        drift_features=int(srv.get("driftFeatures", 20)),
        grpc=bool(srv.get("grpc", False)),
        max_loop_lag_ms=float(srv.get("maxLoopLagMs", 0.0)),
    )
    tr = spec.get("traffic") or {}
    name = str(tr.get("router", "replicas"))
    if name not in REGISTRY:
        raise SpecError(f"traffic.router {name!r} is not one of {', '.join(REGISTRY)}")
    traffic = Traffic(router=name, settings=REGISTRY[name].parse(tr.get(name)))
    if getattr(traffic.settings, "grpc", False) and not serving.grpc:
        raise SpecError(
            f"traffic.{name}.grpc routes the model's gRPC port, which it has only with "
            "serving.grpc: true"
        )
    if autoscaling is not None and name == "replicas":
        raise SpecError(
            "serving.autoscaling needs traffic.router gatewayAPI, istio or traefik: the "
            "replicas router splits traffic by replica counts, which the "
            "HorizontalPodAutoscaler owns"
        )
    ro = spec.get("rollout") or {}
    steps = _steps(ro.get("steps"))
    if any(step.mirror for step in steps) and not REGISTRY[name].mirrors:
        raise SpecError(
            f"traffic.router {name} cannot mirror requests: a mirror step needs a router "
            f"that can ({', '.join(n for n, r in REGISTRY.items() if r.mirrors)})"
        )
    rollout = Rollout(
        steps=steps,
        progress_deadline_seconds=int(ro.get("progressDeadlineSeconds", 600)),
        scale_down_delay_seconds=int(ro.get("scaleDownDelaySeconds", 30)),
        history_limit=int(ro.get("historyLimit", 10)),
        evaluation=_evaluation(ro.get("evaluation"), source),
        webhooks=_webhooks(ro.get("webhooks"), analysed=bool(ro.get("analysis"))),
    )
    return MLModelSpec(
        model=source,
        conversion=conversion,
        serving=serving,
        traffic=traffic,
        rollout=rollout,
        analysis=parse_analysis(ro["analysis"]) if ro.get("analysis") else None,
        monitoring=parse_monitoring(spec.get("monitoring")),
    )


def parse_or_error(spec: Mapping[str, Any]) -> MLModelSpec | SpecError:
    """`parse_spec`, with the error as a value: the controller parses once and hands the
    result to the plan, which turns an error into the MLModel's status."""
    try:
        return parse_spec(spec)
    except SpecError as error:
        return error
