"""The traffic split as carried out, not as written: every request goes through the front
door (the Traefik gateway for the gatewayAPI router, the `iris` Service's ClusterIP
through kube-proxy for the replicas router), each answer is counted by the revision
that sent it (`x-mlmodel-revision`), and shares are judged by binomial 99.9% bounds
(`localenv.shares`). Then the promise itself: no request fails while a canary is
promoted, rolled back from its highest step, or the old stable scaled down, nor when a
pod is deleted while serving; a pod that hangs leaves the Service and comes back."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest

from localenv import LoadGenerator, mlmodel, pods_of, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.gateway import Gateway, gateway_traffic
from localenv.loadgen import LoadResult, gateway_url, service_url, until_answering
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from localenv.prometheus import Prometheus
from localenv.scenario import SERVE_PORT, get_json
from localenv.shares import binomial_bounds
from mlmodel_operator.analysis.exposition import Snapshot, parse
from mlmodel_operator.analysis.loop import ReadRequest
from mlmodel_operator.providers import prometheus as prometheus_provider
from mlmodel_operator.providers.scrape import read_revision
from tests.helpers.kube import apply, model_status, wait_healthy, wait_phase
from tests.helpers.plugin import kubectl_mlmodel
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1

pytestmark = pytest.mark.e2e

STEADY_RATE = 50.0  # requests per second through a rollout that must lose none
SAMPLE = 400  # requests per measured share
# After the API shows a change, kube-proxy (nftables, at most one sync a second) and
# Traefik (its provider throttles to one reload per 2 s) need a moment to carry it out.
PROPAGATION_S = 3.0
VARIANT_HEADER = "x-mlmodel-variant"


def host(namespace: str) -> str:
    """Each test's route claims a hostname of its own: routes of earlier tests, in
    namespaces still being deleted, match the same path and, being older, would win."""
    return f"iris.{namespace}.test"


def routed(namespace: str) -> dict[str, Any]:
    """`spec.traffic` through the gateway, for the test's own hostname."""
    return gateway_traffic(host(namespace))


def to_host(namespace: str, **headers: str) -> dict[str, str]:
    """The headers of a request through the gateway to the test's route."""
    return {"host": host(namespace), **headers}


def manual_rollout(weights: list[int], **extra: Any) -> dict[str, Any]:
    """A step per weight, each held until `kubectl mlmodel promote`; no analysis."""
    return {
        "steps": [{"weight": w, "pause": {}} for w in weights],
        "scaleDownDelaySeconds": 2,
        "progressDeadlineSeconds": 300,
        **extra,
    }


def timed_rollout(weights: list[int], *, hold_s: int = 3, scale_down_s: int = 5) -> dict[str, Any]:
    """A step per weight, each held `hold_s` seconds; no analysis."""
    return {
        "steps": [{"weight": w, "pause": {"duration": f"{hold_s}s"}} for w in weights],
        "scaleDownDelaySeconds": scale_down_s,
        "progressDeadlineSeconds": 300,
    }


def v2(namespace: str, iris: IrisModels, rollout: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return mlmodel("iris", namespace, version="v2", model_file=iris.v2, rollout=rollout, **spec)


def sample(
    url: str, iris: IrisModels, n: int, *, headers: dict[str, str] | None = None, **kw: Any
) -> LoadResult:
    """`n` requests to the front door as fast as it answers them (about 200 a second)."""
    load = LoadGenerator(url, body=iris.infer_body(), rate=200.0, count=n, headers=headers, **kw)
    result = load.start().wait()
    assert result.failures() == {}, result.explain()
    return result


def canary_status(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    return model_status(cluster, namespace).get("canary") or {}


def at_step(cluster: ControlPlane, namespace: str, step: int, weight: int) -> dict[str, Any]:
    """Wait until the canary is ready at `step` and the router carries `weight` (the
    operator reads effectiveWeight back from the route or the ready pods)."""

    def reached() -> dict[str, Any] | None:
        canary = canary_status(cluster, namespace)
        ok = canary.get("step") == step and canary.get("effectiveWeight") == weight
        ready = canary.get("readyReplicas", 0) >= max(1, canary.get("replicas", 0))
        return canary if ok and ready else None

    canary: dict[str, Any] = wait_for(
        reached, timeout=UP_TIMEOUT_S, interval=0.25, what=f"step {step} at {weight}%"
    )
    return canary


def settle(check: Callable[[], bool], *, timeout: float = 20.0) -> float:
    """Seconds until `check` holds (the data plane caught up with the API)."""
    began = time.monotonic()
    wait_for(check, timeout=timeout, interval=0.1, what="the data plane to follow the API")
    return time.monotonic() - began


def endpoint_ready(cluster: ControlPlane, namespace: str, pod_name: str) -> bool | None:
    """The `ready` condition of `pod_name`'s endpoint in the `iris` Service's
    EndpointSlices (None when it has none)."""
    slices = get_json(
        cluster, "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=iris"
    )
    for item in slices["items"]:
        for endpoint in item.get("endpoints") or ():
            if (endpoint.get("targetRef") or {}).get("name") == pod_name:
                return bool((endpoint.get("conditions") or {}).get("ready"))
    return None


def requests_answered(pod_ip: str) -> float:
    """The pod's own count of inference requests answered (its /metrics)."""
    text = httpx.get(f"http://{pod_ip}:{SERVE_PORT}/metrics", timeout=5, trust_env=False).text
    return parse(text).total_requests


def gone(cluster: ControlPlane, namespace: str, revision: str) -> bool:
    return not pods_of(cluster, namespace, revision)


# --- the split, measured ---------------------------------------------------------------


def test_every_step_s_share_through_the_gateway_is_its_weight(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
) -> None:
    weights = [20, 50, 80]
    rollout = manual_rollout(weights)
    stable, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, traffic=routed(namespace))
    url, headers = gateway_url(gateway.url, "iris"), to_host(namespace)
    asyncio.run(until_answering(url, body=iris.infer_body(), headers=headers))
    apply(cluster, v2(namespace, iris, rollout, traffic=routed(namespace)))

    measured: list[str] = []
    for step, weight in enumerate(weights):
        canary = str(at_step(cluster, namespace, step, weight)["revision"])
        bounds = binomial_bounds(SAMPLE, weight / 100)

        def share_reached(weight: int = weight, canary: str = canary) -> bool:
            """Traefik swaps its whole configuration at once, after its provider's
            throttle: a probe within the bounds of the new weight, and outside those of
            the one before (100 requests: 0 is within the bounds of 20% of 50), is
            one that the new configuration answered, at least in part."""
            probe = sample(url, iris, 100, headers=headers)
            return probe.by_revision("200").get(canary, 0) in binomial_bounds(100, weight / 100)

        settle(share_reached)
        answers = sample(url, iris, SAMPLE, headers=headers).by_revision("200")
        assert set(answers) <= {stable, canary}, answers
        assert answers.get(canary, 0) in bounds, (step, weight, answers, str(bounds))
        measured.append(f"{weight}%: {answers.get(canary, 0)}/{SAMPLE} (bounds {bounds})")
        # The pin takes precedence over the split, both ways.
        pinned = sample(url, iris, 50, headers=to_host(namespace, **{VARIANT_HEADER: "canary"}))
        assert pinned.by_revision("200") == {canary: 50}, pinned.counts
        pinned = sample(url, iris, 50, headers=to_host(namespace, **{VARIANT_HEADER: "stable"}))
        assert pinned.by_revision("200") == {stable: 50}, pinned.counts
        kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)

    status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
    promoted = str(status["stable"]["revision"])
    settle(lambda: sample(url, iris, 20, headers=headers).by_revision("200") == {promoted: 20})
    assert sample(url, iris, 100, headers=headers).by_revision("200") == {promoted: 100}
    print("\n[gateway shares] " + "; ".join(measured))


def test_the_replicas_router_s_share_through_the_service_is_the_ready_pod_ratio(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    """Four replicas at 25%: one canary pod and three stable ones behind the `iris`
    Service; kube-proxy picks an endpoint at random per connection."""
    rollout = manual_rollout([25])
    serving = {"replicas": 4}
    stable, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, serving=serving)
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    apply(cluster, v2(namespace, iris, rollout, serving=serving))
    canary = str(at_step(cluster, namespace, 0, 25)["revision"])

    def ready(revision: str) -> int:
        return sum(
            endpoint_ready(cluster, namespace, pod["metadata"]["name"]) is True
            for pod in pods_of(cluster, namespace, revision)
        )

    wait_for(
        lambda: (ready(stable), ready(canary)) == (3, 1),
        timeout=UP_TIMEOUT_S,
        what="3 stable and 1 canary endpoints ready",
    )
    time.sleep(PROPAGATION_S)
    result = sample(url, iris, SAMPLE, keep_alive=False)
    answers = result.by_revision("200")
    bounds = binomial_bounds(SAMPLE, 1 / 4)
    assert set(answers) == {stable, canary}, answers
    assert answers[canary] in bounds, (answers, str(bounds))
    print(f"\n[service share] 1 of 4 ready pods canary: {answers[canary]}/{SAMPLE} ({bounds})")


# --- no request lost -------------------------------------------------------------------


def steady_load(
    url: str, iris: IrisModels, *, headers: dict[str, str] | None = None, **kw: Any
) -> LoadGenerator:
    asyncio.run(until_answering(url, body=iris.infer_body(), headers=headers))
    body = iris.infer_body()
    return LoadGenerator(url, body=body, rate=STEADY_RATE, headers=headers, **kw).start()


def test_no_request_fails_through_a_promotion_and_the_old_stable_s_scale_down(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
) -> None:
    rollout = timed_rollout([30, 70], scale_down_s=5)
    old, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, traffic=routed(namespace))
    load = steady_load(gateway_url(gateway.url, "iris"), iris, headers=to_host(namespace))
    try:
        apply(cluster, v2(namespace, iris, rollout, traffic=routed(namespace)))
        status = wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S, interval=0.5)
        promoted_at = time.monotonic()
        new = str(status["stable"]["revision"])
        wait_for(lambda: gone(cluster, namespace, old), timeout=60, what="the old stable's pods")
        scaled_down_at = time.monotonic()
        time.sleep(PROPAGATION_S)
    finally:
        load.stop()
    result = load.wait()
    assert result.failures() == {}, result.explain()
    answers = result.by_revision("200")
    assert answers.get(old, 0) > 0, answers
    assert answers.get(new, 0) > 0, answers
    assert result.last_answer[old] < scaled_down_at, "the old stable answered after it was gone"
    print(
        f"\n[promotion] {result.total} requests at {STEADY_RATE:g}/s, none failed; "
        f"old stable gone {scaled_down_at - promoted_at:.1f} s after promotion "
        f"(scaleDownDelaySeconds 5); answers {answers}"
    )


def test_no_request_fails_through_a_rollback_from_the_highest_step(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    gateway: Gateway,
    iris: IrisModels,
) -> None:
    """The canary holds 90% of the traffic when it is aborted: the stable takes it all
    back, and the canary's pods drain before they go."""
    rollout = manual_rollout([50, 90])
    stable, _ = bring_up_v1(cluster, namespace, iris, operators, rollout, traffic=routed(namespace))
    load = steady_load(gateway_url(gateway.url, "iris"), iris, headers=to_host(namespace))
    try:
        apply(cluster, v2(namespace, iris, rollout, traffic=routed(namespace)))
        at_step(cluster, namespace, 0, 50)
        kubectl_mlmodel(cluster, "promote", "iris", "-n", namespace)
        canary = str(at_step(cluster, namespace, 1, 90)["revision"])
        time.sleep(PROPAGATION_S)
        at_90 = load.snapshot().by_revision("200")
        time.sleep(2)  # the gateway sends 90% to the canary
        until_abort = load.snapshot().by_revision("200")
        held = {rev: n - at_90.get(rev, 0) for rev, n in until_abort.items()}
        kubectl_mlmodel(cluster, "abort", "iris", "-n", namespace)
        wait_phase(cluster, namespace, "iris", "RolledBack", timeout=60)
        wait_for(lambda: gone(cluster, namespace, canary), timeout=60, what="the canary's pods")
        canary_gone_at = time.monotonic()
        time.sleep(PROPAGATION_S)
    finally:
        load.stop()
    result = load.wait()
    assert result.failures() == {}, result.explain()
    assert held.get(canary, 0) > 4 * held.get(stable, 0), held  # it held 90%
    assert result.last_answer[canary] < canary_gone_at
    assert model_status(cluster, namespace)["stable"]["revision"] == stable
    print(f"\n[rollback at 90%] {result.total} requests, none failed; {result.by_revision('200')}")


@pytest.mark.parametrize("front_door", ["gateway", "service"])
def test_no_request_fails_when_a_serving_pod_is_deleted(
    request: pytest.FixtureRequest,
    front_door: str,
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    """`kubectl delete pod` while it serves: SIGTERM at once, while its endpoint is still
    being removed from kube-proxy's rules or the gateway's backends; its replacement
    starts. Serve keeps answering (unready) for --shutdown-delay-s, then drains."""
    spec: dict[str, Any] = {"serving": {"replicas": 2}}
    headers: dict[str, str] | None = None
    if front_door == "gateway":
        spec["traffic"], headers = routed(namespace), to_host(namespace)
        url = gateway_url(request.getfixturevalue("gateway").url, "iris")
    revision, _ = bring_up_v1(cluster, namespace, iris, operators, manual_rollout([50]), **spec)
    if front_door == "service":
        url = asyncio.run(service_url(cluster, namespace, "iris"))
    load = steady_load(url, iris, headers=headers, keep_alive=front_door == "gateway")
    try:
        time.sleep(2)
        victim = pods_of(cluster, namespace, revision)[0]["metadata"]["name"]
        deleted_at = time.monotonic()
        cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
        deleted_in = time.monotonic() - deleted_at

        def replaced() -> bool:
            names = [p["metadata"]["name"] for p in pods_of(cluster, namespace, revision)]
            return (
                victim not in names
                and sum(endpoint_ready(cluster, namespace, name) is True for name in names) == 2
            )

        wait_for(replaced, timeout=UP_TIMEOUT_S, what="the deleted pod's replacement")
        time.sleep(PROPAGATION_S)
    finally:
        load.stop()
    result = load.wait()
    assert result.failures() == {}, result.explain()
    print(
        f"\n[pod deleted, {front_door}] {result.total} requests, none failed; "
        f"the deletion took {deleted_in:.1f} s (shutdown delay, drain, final delete)"
    )


def test_a_hung_pod_leaves_the_service_and_comes_back_when_it_answers_again(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
) -> None:
    """SIGSTOP one of two pods' serve: its readiness probe times out, the controller
    manager marks its endpoint not ready, kube-proxy stops sending to it, and every
    request sent from then on is answered by the other pod. SIGCONT: it turns ready,
    returns to the EndpointSlice and gets requests again. (Requests it took before it
    was marked not ready are lost, as they would be in any cluster.)"""
    revision, _ = bring_up_v1(
        cluster, namespace, iris, operators, manual_rollout([50]), serving={"replicas": 2}
    )
    hung, other = pods_of(cluster, namespace, revision)
    name, ip = hung["metadata"]["name"], hung["status"]["podIP"]
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    load = steady_load(url, iris, keep_alive=False)
    try:
        time.sleep(2)
        runner.signal_container(namespace, name, "serve", signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_for(
            lambda: endpoint_ready(cluster, namespace, name) is False,
            timeout=30,
            what="the hung pod's endpoint to turn not ready",
        )
        unready_after = time.monotonic() - stopped_at
        time.sleep(PROPAGATION_S)
        quiet_from = time.monotonic()
        time.sleep(5)
        quiet = load.snapshot()
        runner.signal_container(namespace, name, "serve", signal.SIGCONT)
        quiet_until = time.monotonic()
        wait_for(
            lambda: endpoint_ready(cluster, namespace, name) is True,
            timeout=30,
            what="the pod's endpoint to turn ready again",
        )
        time.sleep(PROPAGATION_S)
        answered = requests_answered(ip)
        wait_for(
            lambda: requests_answered(ip) >= answered + 10,
            timeout=20,
            what="the pod to get requests again",
        )
    finally:
        load.stop()
    result = load.wait()
    late = [f for f in result.first_failures if f.sent_at >= quiet_from]
    assert not late, result.explain()
    sent_while_quiet = [f for f in quiet.first_failures if quiet_from <= f.sent_at <= quiet_until]
    assert not sent_while_quiet
    assert result.by_revision("200").get(revision, 0) > 0
    print(
        f"\n[hung pod] endpoint not ready {unready_after:.1f} s after SIGSTOP (probe: 3 s "
        f"timeout, 2 failures); requests lost before that: {sum(result.failures().values())}; "
        f"none after; {other['metadata']['name']} answered meanwhile"
    )


# --- two counts of one revision -----------------------------------------------------------


def test_the_scrape_provider_and_prometheus_count_the_same_requests(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    prometheus: Prometheus,
    iris: IrisModels,
) -> None:
    """Requests through the Service to two pods of one revision: the operator's scrape
    provider (every ready pod's /metrics, added up) and Prometheus (the pods found by
    Kubernetes service discovery, scraped every second) read the same total, which is
    what the load generator got answered."""
    revision, _ = bring_up_v1(
        cluster, namespace, iris, operators, manual_rollout([50]), serving={"replicas": 2}
    )
    url = asyncio.run(service_url(cluster, namespace, "iris"))
    asyncio.run(until_answering(url, body=iris.infer_body()))
    result = sample(url, iris, 300, keep_alive=False)
    sent = result.by_revision("200")[revision] + 1  # and the one until_answering got

    async def scraped() -> float:
        async with aiohttp.ClientSession() as session:
            snapshot = await read_revision(session, pods_of(cluster, namespace, revision))
        assert snapshot is not None
        return snapshot.requests.get("200", 0.0)

    by_scrape = asyncio.run(scraped())
    query = (
        f'sum(mlmodel_requests_total{{namespace="{namespace}",'
        f'mlops_dev_revision="{revision}",code="200"}})'
    )

    def by_prometheus() -> float:
        values = prometheus.query(query)
        return float(values[0]["value"][1]) if values else -1.0

    wait_for(lambda: by_prometheus() == by_scrape, timeout=20, what="Prometheus to catch up")
    assert by_scrape == sent, (by_scrape, sent)

    async def both_providers() -> tuple[Snapshot, Snapshot]:
        """The whole snapshot each provider reads for the analysis, the revision as
        both sides: requests, shed requests and pods agree."""
        request = ReadRequest(
            "prometheus", revision, revision, due=0.0, prometheus_url=prometheus.url
        )
        async with aiohttp.ClientSession() as session:
            from_pods = await read_revision(session, pods_of(cluster, namespace, revision))
            reading = await prometheus_provider.read(
                session, request, namespace=namespace, name="iris"
            )
        assert from_pods is not None
        assert reading.stable is not None, reading.error
        return from_pods, reading.stable

    from_pods, queried = asyncio.run(both_providers())
    assert (from_pods.pods, queried.pods) == (2.0, 2.0)
    assert (
        from_pods.shed
        == queried.shed
        == {
            "concurrency": 0.0,
            "memory": 0.0,
            "queue": 0.0,
            "loop": 0.0,
        }
    )
    assert from_pods.requests == queried.requests
    print(
        f"\n[two counts] scrape provider {by_scrape:g}, Prometheus {by_prometheus():g}, sent {sent}"
    )
