"""gRPC through the front door: the GRPCRoute the operator writes, carried out by Traefik.

An MLModel with `serving.grpc` and `traffic.gatewayAPI.grpc` is served by runtime
processes on the pod runner's node; every call goes to the Traefik gateway as h2c,
with the model's hostname as its authority. Each answer is counted by the revision
that sent it (the `x-mlmodel-revision` trailing metadata), the canary's share is judged
by binomial 99.9% bounds, pins by `x-mlmodel-variant` metadata go to their side, and
Triton's client (an independent one) gets the same answers through the gateway as
REST clients do through the HTTPRoute beside it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from localenv import wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.gateway import PORT, Gateway, gateway_traffic
from localenv.loadgen import gateway_url, until_answering
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.sandbox import GATEWAY_IP
from localenv.scenario import get_json
from localenv.shares import binomial_bounds
from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb
from tests.e2e.test_traffic_e2e import VARIANT_HEADER, at_step, manual_rollout, sample, v2
from tests.helpers.kube import apply, wait_healthy
from tests.helpers.plugin import kubectl_mlmodel
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1

pytestmark = pytest.mark.e2e

SAMPLE = 400
INFER = "/inference.GRPCInferenceService/ModelInfer"


def host(namespace: str) -> str:
    return f"iris-grpc.{namespace}.test"


def traffic(namespace: str) -> dict[str, Any]:
    routed = gateway_traffic(host(namespace))
    routed["gatewayAPI"]["grpc"] = True
    return routed


SERVING = {"replicas": 1, "grpc": True}


def channel_options(namespace: str) -> list[tuple[str, Any]]:
    # The authority is the route's hostname; no proxy from the environment.
    return [("grpc.default_authority", host(namespace)), ("grpc.enable_http_proxy", 0)]


@pytest.fixture
def grpc_channel(namespace: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"{GATEWAY_IP}:{PORT}", options=channel_options(namespace)) as chan:
        yield chan


def infer_request(iris: IrisModels) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[len(iris.rows), 4])
    tensor.contents.fp32_contents.extend(np.asarray(iris.rows, np.float32).reshape(-1).tolist())
    request.outputs.add(name="label")
    return request


def by_revision(
    chan: grpc.Channel, request: pb.ModelInferRequest, n: int, **metadata: str
) -> collections.Counter[str]:
    """Answers of `n` calls through the gateway, by the revision that answered."""
    call = chan.unary_unary(
        INFER,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        _, answered = call.with_call(request, metadata=tuple(metadata.items()), timeout=10)
        revision = dict(answered.trailing_metadata() or ()).get("x-mlmodel-revision", "?")
        counts[str(revision)] += 1
    return counts


def test_the_grpc_route_splits_calls_by_the_canary_weight_and_pins_by_metadata(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
    grpc_channel: grpc.Channel,
) -> None:
    rollout = manual_rollout([30])
    stable, _ = bring_up_v1(
        cluster, namespace, iris, operators, rollout, traffic=traffic(namespace), serving=SERVING
    )
    route = get_json(cluster, "grpcroutes", "iris", "-n", namespace)
    assert route["spec"]["hostnames"] == [host(namespace)]
    request = infer_request(iris)
    wait_for(
        lambda: _answers(grpc_channel, request),
        timeout=30,
        interval=0.5,
        what="the gateway to route gRPC calls to the model",
    )
    assert by_revision(grpc_channel, request, 20) == {stable: 20}

    # Triton's client through the gateway: the labels of the rows, as REST gives them.
    client = triton.InferenceServerClient(
        f"{GATEWAY_IP}:{PORT}", channel_args=channel_options(namespace)
    )
    rows = triton.InferInput("input", [len(iris.rows), 4], "FP32")
    rows.set_data_from_numpy(np.asarray(iris.rows, np.float32))
    result = client.infer("iris", [rows], outputs=[triton.InferRequestedOutput("label")])
    assert result.as_numpy("label").tolist() == iris.labels
    assert client.is_model_ready("iris")
    url, headers = gateway_url(gateway.url, "iris"), {"host": host(namespace)}
    asyncio.run(until_answering(url, body=iris.infer_body(), headers=headers))
    assert sample(url, iris, 20, headers=headers).by_revision("200") == {stable: 20}

    apply(cluster, v2(namespace, iris, rollout, traffic=traffic(namespace), serving=SERVING))
    canary = str(at_step(cluster, namespace, 0, 30)["revision"])

    def share_reached() -> bool:
        probe = by_revision(grpc_channel, request, 100)
        return probe.get(canary, 0) in binomial_bounds(100, 0.3)

    wait_for(share_reached, timeout=30, interval=0.2, what="Traefik to carry the 30% split")
    answers = by_revision(grpc_channel, request, SAMPLE)
    bounds = binomial_bounds(SAMPLE, 0.3)
    assert set(answers) == {stable, canary}, answers
    assert answers[canary] in bounds, (answers, str(bounds))
    pinned = by_revision(grpc_channel, request, 30, **{VARIANT_HEADER: "canary"})
    assert pinned == {canary: 30}
    pinned = by_revision(grpc_channel, request, 30, **{VARIANT_HEADER: "stable"})
    assert pinned == {stable: 30}
    print(f"\n[grpc share] 30%: {answers[canary]}/{SAMPLE} (bounds {bounds})")

    kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
    wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
    wait_for(
        lambda: by_revision(grpc_channel, request, 20) == {canary: 20},
        timeout=30,
        interval=0.5,
        what="every gRPC call to go to the promoted revision",
    )


def _answers(chan: grpc.Channel, request: pb.ModelInferRequest) -> bool:
    try:
        by_revision(chan, request, 1)
    except grpc.RpcError:
        return False
    return True
