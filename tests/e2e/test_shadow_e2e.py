"""Shadow steps through a real gateway: Traefik mirrors with a TraefikService the traefik
router writes (its Gateway API provider has no RequestMirror filter: an HTTPRoute with
one answers 500 to everything it matches).

Every request goes through the front door (Traefik's entry point, to the IngressRoute
the operator wrote); each answer is counted by the revision that sent it
(`x-mlmodel-revision`). During a mirror step clients get only the stable's answers,
while the canary's own request counter, read from its pod, grows by the mirrored share
of them; a canary whose mirrored predictions diverge is rolled back before a single
client request reaches it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from localenv import LoadGenerator, mlmodel, pods_of, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.gateway import Gateway, gateway_traffic, traefik_traffic
from localenv.loadgen import LoadResult, gateway_url, until_answering
from localenv.models import ShuffledModel, train_shuffled
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.scenario import get_json
from localenv.shares import binomial_bounds
from mlmodel_operator.providers.scrape import read_revision
from tests.helpers.kube import apply, model_status, wait_healthy, wait_phase
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1

pytestmark = pytest.mark.e2e

MIRROR = 40  # percent of the stable's requests copied to the canary
SAMPLE = 400
RATE = 40.0


def host(namespace: str) -> str:
    return f"iris.{namespace}.test"


def through_traefik(namespace: str) -> dict[str, Any]:
    return traefik_traffic(host(namespace))


def canary_requests(cluster: ControlPlane, namespace: str, revision: str) -> float:
    """What the canary's pods counted as answered (200), from their own /metrics."""

    async def read() -> float:
        async with aiohttp.ClientSession() as session:
            snapshot = await read_revision(session, pods_of(cluster, namespace, revision))
        assert snapshot is not None, f"no ready pod of {revision} to read"
        return float(snapshot.requests.get("200", 0.0))

    return asyncio.run(read())


def at_mirror_step(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    """The canary at step 0 (the mirror step), ready, the route carrying weight 0."""

    def reached() -> dict[str, Any] | None:
        canary = model_status(cluster, namespace).get("canary") or {}
        ready = canary.get("readyReplicas", 0) >= max(1, canary.get("replicas", 0))
        ok = canary.get("step") == 0 and canary.get("effectiveWeight") == 0 and ready
        return canary if ok else None

    canary: dict[str, Any] = wait_for(
        reached, timeout=UP_TIMEOUT_S, interval=0.25, what="the mirror step, canary ready"
    )
    return canary


def send(url: str, iris: IrisModels, namespace: str, n: int) -> LoadResult:
    headers = {"host": host(namespace)}
    load = LoadGenerator(url, body=iris.infer_body(), rate=200.0, count=n, headers=headers)
    result = load.start().wait()
    assert result.failures() == {}, result.explain()
    return result


def test_a_mirror_step_copies_its_share_to_the_canary_and_clients_see_only_the_stable(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
) -> None:
    rollout = {
        "steps": [{"mirror": MIRROR, "pause": {}}, {"weight": 100}],
        "scaleDownDelaySeconds": 2,
        "progressDeadlineSeconds": 300,
    }
    traffic = through_traefik(namespace)
    stable, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, traffic=traffic)
    url = gateway_url(gateway.url, "iris")
    asyncio.run(until_answering(url, body=iris.infer_body(), headers={"host": host(namespace)}))
    apply(cluster, mlmodel("iris", namespace, version="v2", model_file=iris.v2, rollout=rollout,
                           traffic=traffic))  # fmt: skip
    canary = str(at_mirror_step(cluster, namespace)["revision"])
    spec = get_traefik_service(cluster, namespace)
    assert spec["mirroring"]["mirrors"] == [
        {"name": "iris-canary", "port": 80, "percent": MIRROR}
    ], spec

    # Traefik reloads at most every 2 s: a few requests until the first copy arrives.
    def mirrored_yet() -> bool:
        send(url, iris, namespace, 5)
        return canary_requests(cluster, namespace, canary) > 0

    wait_for(mirrored_yet, timeout=30, interval=0.5, what="the first mirrored request")
    before = canary_requests(cluster, namespace, canary)
    result = send(url, iris, namespace, SAMPLE)
    assert result.by_revision("200") == {stable: SAMPLE}, result.explain()
    bounds = binomial_bounds(SAMPLE, MIRROR / 100)
    # Copies go out beside the answers, not before them: wait until they have landed.
    wait_for(
        lambda: canary_requests(cluster, namespace, canary) - before >= bounds.low,
        timeout=15,
        what=f"{bounds.low}+ mirrored requests at the canary",
    )
    mirrored = round(canary_requests(cluster, namespace, canary) - before)
    assert mirrored in bounds, (mirrored, str(bounds))
    print(f"\n[shadow] {MIRROR}% of {SAMPLE} mirrored: the canary counted {mirrored} ({bounds})")


def get_traefik_service(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = get_json(cluster, "traefikservice", "iris", "-n", namespace)["spec"]
    return spec


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> ShuffledModel:
    return train_shuffled(tmp_path_factory.mktemp("shuffled"))


def test_a_mirrored_canary_that_diverges_is_rolled_back_before_it_serves_a_client(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
    shuffled: ShuffledModel,
) -> None:
    rollout = {
        "steps": [{"mirror": 100, "pause": {"duration": "5m"}}, {"weight": 50}, {"weight": 100}],
        "scaleDownDelaySeconds": 2,
        "progressDeadlineSeconds": 300,
        "analysis": {
            "interval": "2s",
            "minSamples": 5,
            "failureLimit": 0,
            "metrics": [
                {"name": "error-rate", "max": 0.01},
                {"name": "prediction-divergence", "max": 0.1},
            ],
        },
    }
    traffic = through_traefik(namespace)
    stable, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, traffic=traffic)
    url = gateway_url(gateway.url, "iris")
    headers = {"host": host(namespace)}
    asyncio.run(until_answering(url, body=iris.infer_body(), headers=headers))
    load = LoadGenerator(url, body=iris.infer_body(), rate=RATE, headers=headers).start()
    try:
        apply(cluster, mlmodel("iris", namespace, version="v2", model_file=shuffled.path,
                               rollout=rollout, traffic=traffic))  # fmt: skip
        status = wait_phase(cluster, namespace, "iris", "RolledBack", timeout=UP_TIMEOUT_S)
    finally:
        load.stop()
    result = load.wait()
    assert "prediction-divergence" in status["message"], status
    assert status["stable"]["revision"] == stable
    [entry] = [e for e in status["history"] if e["version"] == "v2"]
    assert entry["outcome"] == "RolledBack", entry
    # The canary was judged on copies alone: no client got an answer from it.
    assert result.by_revision() == {stable: result.total}, result.explain()
    assert result.failures() == {}, result.explain()
    assert result.total > 0


def test_a_gateway_api_mirror_step_on_traefik_is_refused_then_the_traefik_router_serves(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
) -> None:
    """The gatewayAPI router's mirror step on this Traefik would fail every request (a
    RequestMirror filter makes Traefik answer the route with 500): the operator reads the
    Gateway's class, refuses with a status naming the traefik router, writes nothing;
    the same MLModel with the traefik router serves."""
    rollout = {"steps": [{"mirror": 50, "pause": {}}, {"weight": 100}]}
    operators.start(namespace)
    gateway_routed = gateway_traffic(host(namespace))
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=iris.v1,
                           rollout=rollout, traffic=gateway_routed))  # fmt: skip
    status = wait_for(
        lambda: (s := model_status(cluster, namespace)).get("phase") == "Degraded" and s,
        timeout=60,
        what="the refusal",
    )
    assert "traffic.router traefik" in status["message"], status
    assert "traefik.io/gateway-controller" in status["message"], status
    assert get_json(cluster, "httproutes", "-n", namespace)["items"] == []
    assert get_json(cluster, "deployments", "-n", namespace)["items"] == []
    apply(cluster, mlmodel("iris", namespace, version="v1", model_file=iris.v1,
                           rollout=rollout, traffic=through_traefik(namespace)))  # fmt: skip
    wait_healthy(cluster, namespace, "v1", timeout=UP_TIMEOUT_S, interval=0.5)
    url = gateway_url(gateway.url, "iris")
    asyncio.run(until_answering(url, body=iris.infer_body(), headers={"host": host(namespace)}))
