"""parse_spec: the defaults a user gets, the durations and steps they may write, what is refused."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from mlmodel_operator.analysis.spec import parse_analysis
from mlmodel_operator.durations import parse_duration
from mlmodel_operator.errors import SpecError
from mlmodel_operator.revision import revision_of
from mlmodel_operator.spec import (
    DEFAULT_STEPS,
    MODEL_FORMATS,
    UNPICKLING_FORMATS,
    Step,
    parse_spec,
)
from mlmodel_runtime.convert.formats import REGISTRY

pytestmark = pytest.mark.unit

URI = "s3://models/iris/v1/model.skops"


def spec(**sections: Any) -> dict[str, Any]:
    return {"model": {"uri": URI}, **sections}


def test_a_spec_with_only_a_uri_gets_every_default() -> None:
    parsed = parse_spec(spec())

    assert parsed.model.uri == URI
    assert parsed.model.format == "skops"
    assert (parsed.model.sha256, parsed.model.credentials_secret, parsed.model.version) == ("",) * 3
    assert parsed.model.allow_unsafe_pickle is False
    assert parsed.model.trust_types == ()
    parity = parsed.conversion.parity
    assert (parity.samples, parity.rtol, parity.atol) == (256, 1e-4, 1e-5)
    assert parsed.conversion.allow_version_mismatch is False
    assert (parsed.serving.replicas, parsed.serving.workers) == (1, 1)
    assert (parsed.serving.batching.max_batch_size, parsed.serving.batching.max_delay_ms) == (
        32,
        0.0,
    )
    assert parsed.serving.resources == {}
    assert parsed.traffic.router == "replicas"
    assert (
        parsed.rollout.steps == DEFAULT_STEPS == (Step(10, 60.0), Step(50, 60.0), Step(100, None))
    )
    assert parsed.rollout.progress_deadline_seconds == 600
    assert parsed.rollout.scale_down_delay_seconds == 30
    assert parsed.analysis is None


def test_every_section_written_is_read() -> None:
    parsed = parse_spec(
        {
            "model": {
                "uri": "pvc://models-claim/iris/model.pkl",
                "format": "sklearn",
                "allowUnsafePickle": True,
                "version": "v2",
                "sha256": "ab" * 32,
                "credentialsSecret": "s3-credentials",
                "trustTypes": ["numpy.dtype", "sklearn.tree._tree.Tree"],
            },
            "conversion": {
                "parity": {"samples": 64, "rtol": 0.01, "atol": 0.001},
                "allowVersionMismatch": True,
            },
            "serving": {
                "replicas": 3,
                "workers": 2,
                "batching": {"maxBatchSize": 8, "maxDelayMs": 5},
                "resources": {"limits": {"memory": "2Gi"}},
                "imagePullSecrets": [{"name": "registry"}],
                "podMetadata": {"labels": {"team": "fraud"}, "annotations": {"a": "b"}},
            },
            "rollout": {
                "progressDeadlineSeconds": 120,
                "scaleDownDelaySeconds": 0,
                "analysis": {"interval": "30s"},
            },
        }
    )

    assert parsed.model.pvc_claim == "models-claim"
    assert parsed.model.allow_unsafe_pickle is True
    assert parsed.model.trust_types == ("numpy.dtype", "sklearn.tree._tree.Tree")
    assert (parsed.model.version, parsed.model.credentials_secret) == ("v2", "s3-credentials")
    assert parsed.conversion.parity.samples == 64
    assert parsed.conversion.allow_version_mismatch is True
    assert (parsed.serving.replicas, parsed.serving.workers) == (3, 2)
    assert parsed.serving.batching.max_delay_ms == 5.0
    assert parsed.serving.image_pull_secrets == ("registry",)
    assert parsed.serving.pod_labels == {"team": "fraud"}
    assert parsed.serving.pod_annotations == {"a": "b"}
    assert parsed.rollout.progress_deadline_seconds == 120
    assert parsed.rollout.scale_down_delay_seconds == 0
    assert parsed.analysis == parse_analysis({"interval": "30s"})


@pytest.mark.parametrize(
    ("uri", "claim"),
    [
        ("pvc://models-claim/iris/model.skops", "models-claim"),
        ("pvc://models-claim", "models-claim"),
        ("s3://models-claim/iris/model.skops", ""),
        ("file:///mnt/models/iris.skops", ""),
    ],
)
def test_pvc_claim_is_the_first_segment_of_a_pvc_uri(uri: str, claim: str) -> None:
    assert parse_spec({"model": {"uri": uri}}).model.pvc_claim == claim


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("1.5h", 5400.0),
        ("0s", 0.0),
    ],
)
def test_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "30", "s", "1d", "30S", "-5s", "1h 30m", " 30s", "30s ", "m30", "1.s", "30sec", "1h-30m"],
)
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(SpecError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("pause", "seconds"),
    [
        ({}, math.inf),  # wait for a person to promote
        ({"duration": "2m"}, 120.0),
        ({"duration": "1h30m"}, 5400.0),
        (None, None),  # no pause: advance after one analysis interval
    ],
)
def test_a_step_pause_is_a_duration_a_promote_or_nothing(
    pause: dict[str, str] | None, seconds: float | None
) -> None:
    step: dict[str, Any] = {"weight": 20} if pause is None else {"weight": 20, "pause": pause}

    [parsed] = parse_spec(spec(rollout={"steps": [step]})).rollout.steps

    assert parsed == Step(weight=20, pause_seconds=seconds)


def test_steps_keep_their_order_and_weights() -> None:
    steps = [{"weight": 5, "pause": {"duration": "30s"}}, {"weight": 5}, {"weight": 100}]

    parsed = parse_spec(spec(rollout={"steps": steps})).rollout.steps

    assert parsed == (Step(5, 30.0), Step(5, None), Step(100, None))


def test_an_empty_step_list_means_the_default_steps() -> None:
    assert parse_spec(spec(rollout={"steps": []})).rollout.steps == DEFAULT_STEPS


@pytest.mark.parametrize(
    "weights",
    [[50, 10], [10, 50, 20, 100], [101], [-1, 50]],
)
def test_decreasing_or_out_of_range_weights_are_refused(weights: list[int]) -> None:
    steps = [{"weight": w} for w in weights]

    with pytest.raises(SpecError, match="must not decrease"):
        parse_spec(spec(rollout={"steps": steps}))


def test_a_bad_pause_duration_is_refused() -> None:
    with pytest.raises(SpecError, match="'2 minutes' is not a duration"):
        parse_spec(spec(rollout={"steps": [{"weight": 10, "pause": {"duration": "2 minutes"}}]}))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({}, "spec.model.uri is required"),
        ({"uri": ""}, "spec.model.uri is required"),
        ({"uri": URI, "format": "pickle"}, "'pickle' is not one of skops, sklearn, onnx"),
        ({"uri": URI, "format": "sklearn"}, "set model.allowUnsafePickle to true"),
        (
            {"uri": URI, "format": "sklearn", "allowUnsafePickle": False},
            "set model.allowUnsafePickle to true",
        ),
    ],
)
def test_an_unusable_model_section_is_refused_with_what_to_change(
    model: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec({"model": model})


def test_a_spec_without_a_model_section_is_refused() -> None:
    with pytest.raises(SpecError, match=re.escape("spec.model.uri is required")):
        parse_spec({})


@pytest.mark.parametrize("fmt", ["skops", "onnx"])
def test_formats_that_are_not_pickles_need_no_opt_in(fmt: str) -> None:
    assert parse_spec({"model": {"uri": URI, "format": fmt}}).model.format == fmt


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"router": "gatewayAPI"}, "gatewayAPI needs traffic.gatewayAPI.parentRefs"),
        ({"router": "gatewayAPI", "gatewayAPI": {"parentRefs": []}}, "needs traffic.gatewayAPI"),
        ({"router": "gatewayAPI", "istio": {"hosts": ["x"]}}, "needs traffic.gatewayAPI"),
        ({"router": "istio"}, "istio needs traffic.istio.hosts"),
        ({"router": "istio", "istio": {"hosts": []}}, "istio needs traffic.istio.hosts"),
    ],
)
def test_a_router_without_its_settings_is_refused(traffic: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(spec(traffic=traffic))


@pytest.mark.parametrize(
    "traffic",
    [
        {},
        {"router": "replicas"},
        {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "web"}]}},
        {"router": "istio", "istio": {"hosts": ["iris.example.com"]}},
    ],
)
def test_a_router_with_its_settings_is_accepted(traffic: dict[str, Any]) -> None:
    parsed = parse_spec(spec(traffic=traffic))

    assert parsed.traffic.router == traffic.get("router", "replicas")


def test_the_operator_knows_exactly_the_runtimes_model_formats() -> None:
    assert list(MODEL_FORMATS) == list(REGISTRY)
    assert [name for name, f in REGISTRY.items() if f.unpickles] == list(UNPICKLING_FORMATS)


def test_a_parity_reference_is_read_and_changes_the_revision_material() -> None:
    reference = {"uri": "s3://models/iris/reference.npz", "sha256": "ab" * 32}
    parsed = parse_spec(spec(conversion={"reference": reference}))
    assert parsed.conversion.reference is not None
    assert (parsed.conversion.reference.uri, parsed.conversion.reference.sha256) == (
        reference["uri"],
        reference["sha256"],
    )
    assert parse_spec(spec()).conversion.reference is None
    # Another reference is another proof: a new revision, rolled out as a canary.
    other = {**reference, "sha256": "cd" * 32}
    revisions = {
        revision_of(parse_spec(spec(conversion={"reference": r})), "image")
        for r in (reference, other)
    }
    assert len(revisions) == 2


@pytest.mark.parametrize(
    ("model", "reference", "message"),
    [
        ({}, {"uri": "s3://b/r.npz"}, "needs a uri and a sha256"),
        ({"uri": "s3://b/m.onnx", "format": "onnx"}, {"uri": "s3://b/r.npz", "sha256": "a" * 64},
         "an ONNX model is served as is"),
        ({"uri": "pvc://models/m.skops"}, {"uri": "pvc://other/r.npz", "sha256": "a" * 64},
         "on the model's own claim"),
    ],
)  # fmt: skip
def test_a_parity_reference_that_cannot_work_is_refused(
    model: dict[str, Any], reference: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec({"model": {"uri": URI, **model}, "conversion": {"reference": reference}})


def test_grpc_is_read_and_changes_the_revision_only_when_on() -> None:
    assert parse_spec(spec()).serving.grpc is False
    assert parse_spec(spec(serving={"grpc": True})).serving.grpc is True
    # The revision of a model without gRPC is what it was before the field existed
    # (computed with the operator of the commit before it, whose default delay was 2 ms),
    # so an upgrade rolls nothing for it.
    serving = {"workers": 2, "batching": {"maxBatchSize": 32, "maxDelayMs": 2}}
    assert revision_of(parse_spec(spec(serving=serving)), "image") == "c07d61eb2d"
    with_grpc = {**serving, "grpc": True}
    assert revision_of(parse_spec(spec(serving=with_grpc)), "image") != "c07d61eb2d"


def test_the_loop_bound_is_read_and_changes_the_revision_only_when_set() -> None:
    assert parse_spec(spec()).serving.max_loop_lag_ms == 0
    assert parse_spec(spec(serving={"maxLoopLagMs": 2})).serving.max_loop_lag_ms == 2
    # The same material as in the gRPC test above: unset (or 0, the CRD's default, which
    # the API server writes into every stored model) rolls nothing out on an upgrade.
    serving = {"workers": 2, "batching": {"maxBatchSize": 32, "maxDelayMs": 2}}
    assert revision_of(parse_spec(spec(serving={**serving, "maxLoopLagMs": 0})), "image") == (
        "c07d61eb2d"
    )
    bounded = {**serving, "maxLoopLagMs": 2}
    assert revision_of(parse_spec(spec(serving=bounded)), "image") != "c07d61eb2d"


def test_a_grpc_route_needs_the_grpc_port() -> None:
    traffic = {
        "router": "gatewayAPI",
        "gatewayAPI": {
            "parentRefs": [{"name": "web"}],
            "hostnames": ["iris.example.com"],
            "grpc": True,
        },
    }
    with pytest.raises(SpecError, match=re.escape("only with serving.grpc: true")):
        parse_spec(spec(traffic=traffic))
    assert parse_spec(spec(traffic=traffic, serving={"grpc": True})).traffic.settings.grpc
