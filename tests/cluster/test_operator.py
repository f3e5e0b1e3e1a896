"""The operator against a real control plane, as its ServiceAccount, driven with kubectl."""

from __future__ import annotations

import datetime as dt
import functools
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv import mlmodel, wait_for
from localenv.controlplane.cluster import ControlPlane
from localenv.faults import FaultyProxy
from localenv.operator_process import RUNTIME_IMAGE, OperatorEnv
from localenv.scenario import get_json
from tests.helpers.kube import (
    apply,
    deployments,
    events_for,
    model_status,
    wait_phase,
)

pytestmark = pytest.mark.cluster

KWOK_INIT_FAILURE = "pod-init-container-running-failed.stage.kwok.x-k8s.io"


def test_an_mlmodel_becomes_a_served_healthy_deployment(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    apply(
        cluster,
        mlmodel(
            "iris",
            namespace,
            serving={
                "replicas": 2,
                "batching": {"maxBatchSize": 16, "maxDelayMs": 1},
                "maxLoopLagMs": 2,
            },
        ),
    )
    status = wait_phase(cluster, namespace, "iris", "Healthy")
    revision = status["stable"]["revision"]
    assert status["stable"]["version"] == "v1"
    assert status["ready"] == "2/2"
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"

    [deployment] = deployments(cluster, namespace)
    assert deployment["metadata"]["name"] == f"iris-{revision}"
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("MLModel", "iris", True)
    pod = deployment["spec"]["template"]["spec"]
    [fetch, convert], [serve] = pod["initContainers"], pod["containers"]
    assert fetch["image"] == convert["image"] == serve["image"] == RUNTIME_IMAGE
    assert fetch["args"][:3] == [
        "fetch",
        "--uri=s3://models/iris/v1/model.skops",
        "--out=/models/source",
    ]
    assert convert["args"][:4] == [
        "convert",
        "--source=/models/source",
        "--format=skops",
        "--out=/models",
    ]
    for init in (fetch, convert):
        assert "--report-file=/dev/termination-log" in init["args"]
    assert serve["args"][0] == "serve"
    assert "--max-batch-size=16" in serve["args"]
    assert "--max-loop-lag-ms=2" in serve["args"]
    assert f"--revision={revision}" in serve["args"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for container in (fetch, convert, serve):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"

    services = {
        s["metadata"]["name"]: s["spec"]["selector"]
        for s in get_json(cluster, "services", "-n", namespace)["items"]
    }
    assert services == {
        "iris": {"mlops.dev/model": "iris"},
        "iris-stable": {"mlops.dev/model": "iris", "mlops.dev/revision": revision},
        "iris-canary": {"mlops.dev/model": "iris", "mlops.dev/revision": revision},
    }
    pdbs = get_json(cluster, "poddisruptionbudgets", "-n", namespace)["items"]
    assert [p["metadata"]["name"] for p in pdbs] == [f"iris-{revision}"]

    table = cluster.kubectl("get", "mlm", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE"]
    assert table[1].split()[:4] == ["iris", "Healthy", "v1", "2/2"]

    reasons = [e["reason"] for e in events_for(cluster, namespace, "iris")]
    assert "Healthy" in reasons


def test_a_failed_conversion_is_reported_with_the_report_message(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    report = {
        "status": "failed",
        "error": "parity",
        "message": "parity failed: 3 of 256 labels differ, worst probability difference 0.41",
    }
    pod_metadata = {
        "labels": {KWOK_INIT_FAILURE: "true"},
        "annotations": {
            f"{KWOK_INIT_FAILURE}/message": json.dumps(report),
            f"{KWOK_INIT_FAILURE}/exit-code": "7",
            f"{KWOK_INIT_FAILURE}/container-name": "convert",
            f"{KWOK_INIT_FAILURE}/reason": "Error",
        },
    }
    apply(cluster, mlmodel("broken", namespace, serving={"podMetadata": pod_metadata}))
    status = wait_phase(cluster, namespace, "broken", "Failed")
    assert "conversion failed (exit 7)" in status["message"]
    assert report["message"] in status["message"]
    assert status["stable"]["conversion"]["error"] == "parity"
    wait_for(
        lambda: any(
            e["reason"] == "Failed" and e["type"] == "Warning" and report["message"] in e["message"]
            for e in events_for(cluster, namespace, "broken")
        ),
        what="a Warning event with the report's message",
    )


def test_a_failing_new_revision_leaves_the_serving_stable_untouched(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace))
    stable = wait_phase(cluster, namespace, "iris", "Healthy")["stable"]["revision"]
    [before] = deployments(cluster, namespace)

    failing_init = {
        "labels": {KWOK_INIT_FAILURE: "true"},
        "annotations": {
            f"{KWOK_INIT_FAILURE}/message": json.dumps({"message": "unsupported model"}),
            f"{KWOK_INIT_FAILURE}/exit-code": "6",
        },
    }
    apply(cluster, mlmodel("iris", namespace, version="v2", serving={"podMetadata": failing_init}))
    status = wait_phase(cluster, namespace, "iris", "RolledBack")
    assert status["stable"]["revision"] == stable
    assert "unsupported model" in status["message"]
    assert f"revision {stable} (v1) keeps serving" in status["message"]
    assert status["canary"]["weight"] == 0
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True"

    by_name = {d["metadata"]["name"]: d for d in deployments(cluster, namespace)}
    kept = by_name[f"iris-{stable}"]
    assert kept["metadata"]["uid"] == before["metadata"]["uid"]
    assert kept["spec"]["template"] == before["spec"]["template"]
    assert kept["status"]["readyReplicas"] == 1
    failed = by_name[f"iris-{status['canary']['revision']}"]
    assert failed["spec"]["replicas"] == 0  # the failed revision is scaled away
    selectors = {
        s["metadata"]["name"]: s["spec"]["selector"]
        for s in get_json(cluster, "services", "-n", namespace)["items"]
    }
    assert selectors["iris-stable"]["mlops.dev/revision"] == stable
    assert selectors["iris-canary"]["mlops.dev/revision"] == stable


def test_deleting_the_mlmodel_removes_everything_it_made(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, serving={"replicas": 2}))
    wait_phase(cluster, namespace, "iris", "Healthy")
    cluster.kubectl("delete", "mlmodel", "iris", "-n", namespace, "--timeout=30s")

    def gone(kind: str) -> bool:
        selector = "mlops.dev/model=iris"
        return not get_json(cluster, kind, "-n", namespace, "-l", selector)["items"]

    for kind in ("deployments", "services", "poddisruptionbudgets", "pods"):
        wait_for(
            functools.partial(gone, kind),
            what=f"{kind} of the deleted MLModel to be garbage-collected",
        )


@pytest.mark.parametrize("when", ["before-ready", "after-ready"])
def test_a_restarted_operator_converges_without_duplicates_and_never_writes_spec(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, when: str
) -> None:
    first = operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace, serving={"replicas": 2}))
    if when == "before-ready":
        wait_for(lambda: deployments(cluster, namespace), what="a Deployment")
    else:
        wait_phase(cluster, namespace, "iris", "Healthy")
    first.stop(signal.SIGKILL)
    snapshot = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"]
        for d in deployments(cluster, namespace)
    }

    second = operators.start(namespace, identity="op-b", lease_seconds=15)
    status = wait_phase(cluster, namespace, "iris", "Healthy", timeout=90)
    assert second.alive()
    [deployment] = deployments(cluster, namespace)
    assert deployment["metadata"]["name"] == f"iris-{status['stable']['revision']}"
    if when == "after-ready":
        # Re-applying the same desired state is a no-op: nothing was rewritten.
        assert snapshot == {
            deployment["metadata"]["name"]: deployment["metadata"]["resourceVersion"]
        }
    assert len(get_json(cluster, "services", "-n", namespace)["items"]) == 3

    body = get_json(cluster, "mlmodel", "iris", "-n", namespace, "--show-managed-fields")
    assert body["metadata"]["generation"] == 1
    operator_fields = [
        m for m in body["metadata"]["managedFields"] if m["manager"] == "mlmodel-operator"
    ]
    assert operator_fields
    assert all(m.get("subresource") == "status" for m in operator_fields)
    assert "finalizers" not in body["metadata"]
    assert not any(k.startswith("kopf") for k in body["metadata"].get("annotations", {}))


def test_two_operators_never_both_act_and_the_standby_takes_over(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    leader = operators.start(namespace, identity="op-a", lease_seconds=4)
    wait_for(lambda: "became the leader" in leader.output(), what="op-a to lead")
    standby = operators.start(namespace, identity="op-b", lease_seconds=4)
    wait_for(lambda: "waiting to lead" in standby.output(), what="op-b to start")
    apply(cluster, mlmodel("iris", namespace))
    wait_phase(cluster, namespace, "iris", "Healthy")
    assert "became the leader" not in standby.output()
    assert "waiting to lead" in standby.output()
    lease = get_json(cluster, "lease", f"lease-{namespace}", "-n", "mlmodel-system")
    assert lease["spec"]["holderIdentity"] == "op-a"

    assert leader.stop(signal.SIGTERM) == 0  # a clean stop gives the Lease up
    wait_for(lambda: "became the leader" in standby.output(), timeout=30, what="op-b to take over")
    apply(cluster, mlmodel("iris", namespace, serving={"replicas": 3}))
    status = wait_for(
        lambda: (s := model_status(cluster, namespace, "iris")).get("ready") == "3/3" and s,
        what="the new leader to scale the model",
    )
    assert status["phase"] == "Healthy"


def test_a_killed_leader_is_replaced_after_the_lease_expires(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    leader = operators.start(namespace, identity="op-a", lease_seconds=4)
    wait_for(lambda: "became the leader" in leader.output(), what="op-a to lead")
    standby = operators.start(namespace, identity="op-b", lease_seconds=4)
    leader.stop(signal.SIGKILL)
    wait_for(
        lambda: "became the leader" in standby.output(),
        timeout=30,
        what="op-b to take over after the lease expired",
    )
    apply(cluster, mlmodel("iris", namespace))
    wait_phase(cluster, namespace, "iris", "Healthy")


def test_a_leader_paused_past_its_lease_stops_acting_when_it_wakes(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    """SIGSTOP stands for a long GC pause or a frozen node: the standby takes over once
    the lease expires, and the old leader, woken up, writes nothing and exits."""
    leader = operators.start(namespace, identity="op-a", lease_seconds=3)
    wait_for(lambda: "became the leader" in leader.output(), what="op-a to lead")
    apply(cluster, mlmodel("iris", namespace))
    wait_phase(cluster, namespace, "iris", "Healthy")
    standby = operators.start(namespace, identity="op-b", lease_seconds=3)
    leader.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: "became the leader" in standby.output(),
            timeout=30,
            what="op-b to take over from the paused leader",
        )
        apply(cluster, mlmodel("iris", namespace, serving={"replicas": 2}))
        wait_for(
            lambda: model_status(cluster, namespace, "iris").get("ready") == "2/2",
            what="the new leader to scale the model",
        )
    finally:
        leader.process.send_signal(signal.SIGCONT)
    assert leader.process.wait(timeout=20) == 1
    assert "lease ran out" in leader.output() or "not the leader" in leader.output()
    lease = get_json(cluster, "lease", f"lease-{namespace}", "-n", "mlmodel-system")
    assert lease["spec"]["holderIdentity"] == "op-b"
    assert model_status(cluster, namespace, "iris")["ready"] == "2/2"


def log_time(output: str, text: str) -> dt.datetime:
    """When the operator logged the first line containing `text`."""
    [line, *_] = [line for line in output.splitlines() if text in line]
    return dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def test_a_leader_cut_off_from_the_api_server_stops_acting_before_the_standby_starts(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv, tmp_path: Path
) -> None:
    """A partition between the leader and the API server (its connections through a
    `FaultyProxy` that stops answering): it cannot renew, stops acting when its lease
    runs out on its own clock and exits; the standby, reaching the API server, takes
    over only after that, so there are never two writers."""
    api_port = int(cluster.server.rsplit(":", 1)[1])
    proxy = FaultyProxy("127.0.0.1", api_port).start()
    cut_off = operators.kubeconfig_via(proxy.port, tmp_path / "through-proxy.kubeconfig")
    try:
        leader = operators.start(namespace, identity="op-a", lease_seconds=3, kubeconfig=cut_off)
        wait_for(lambda: "became the leader" in leader.output(), what="op-a to lead")
        apply(cluster, mlmodel("iris", namespace))
        wait_phase(cluster, namespace, "iris", "Healthy")
        standby = operators.start(namespace, identity="op-b", lease_seconds=3)
        proxy.mode = "hang"
        wait_for(
            lambda: "became the leader" in standby.output(),
            timeout=30,
            what="op-b to take over from the cut-off leader",
        )
        apply(cluster, mlmodel("iris", namespace, serving={"replicas": 2}))
        wait_for(
            lambda: model_status(cluster, namespace, "iris").get("ready") == "2/2",
            what="the new leader to scale the model",
        )
        assert leader.process.wait(timeout=20) == 1
    finally:
        proxy.close()
    stopped = log_time(leader.output(), "the lease had left")
    took_over = log_time(standby.output(), "became the leader")
    assert stopped < took_over, (stopped, took_over)
    lease = get_json(cluster, "lease", f"lease-{namespace}", "-n", "mlmodel-system")
    assert lease["spec"]["holderIdentity"] == "op-b"


def test_status_written_by_the_operator_survives_pruning(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace))
    status = wait_phase(cluster, namespace, "iris", "Healthy")
    assert set(status) >= {
        "phase",
        "observedGeneration",
        "message",
        "ready",
        "revision",
        "stable",
        "conditions",
    }
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Progressing", "Degraded"}
    assert all(c["lastTransitionTime"] for c in status["conditions"])


def test_the_service_account_can_do_only_what_the_operator_needs(
    cluster: ControlPlane, operators: OperatorEnv
) -> None:
    def can(verb: str, resource: str, namespace: str = "default") -> bool:
        resource, _, sub = resource.partition("/")
        result = cluster.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            *([f"--subresource={sub}"] if sub else []),
            "-n",
            namespace,
            kubeconfig=operators.kubeconfig,
            check=False,
        )
        return result.stdout.strip() == "yes"

    allowed = [
        ("watch", "mlmodels.mlops.dev"),
        ("patch", "mlmodels.mlops.dev/status"),
        ("create", "deployments.apps"),
        ("patch", "deployments.apps"),
        ("delete", "deployments.apps"),
        ("create", "services"),
        ("patch", "services"),
        ("delete", "services"),  # a revision's own Service goes with its Deployment
        ("list", "pods"),
        ("create", "events"),
        ("create", "poddisruptionbudgets.policy"),
        ("create", "horizontalpodautoscalers.autoscaling"),
        ("delete", "horizontalpodautoscalers.autoscaling"),
        ("create", "configmaps"),  # the model digests each revision pinned
        ("list", "replicasets.apps"),
        # The children's kinds are listed once and watched (children.ChildCache).
        *(
            ("watch", kind)
            for kind in (
                "deployments.apps",
                "replicasets.apps",
                "pods",
                "services",
                "poddisruptionbudgets.policy",
                "horizontalpodautoscalers.autoscaling",
                "configmaps",
            )
        ),
    ]
    forbidden = [
        ("update", "mlmodels.mlops.dev"),  # spec belongs to people and GitOps
        ("patch", "mlmodels.mlops.dev"),
        ("delete", "mlmodels.mlops.dev"),
        ("create", "mlmodels.mlops.dev"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "secrets"),
        ("delete", "pods"),
        ("create", "pods"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "pods/exec"),
        ("delete", "configmaps"),
        ("patch", "replicasets.apps"),
    ]
    assert [p for p in allowed if not can(*p)] == []
    assert [p for p in forbidden if can(*p)] == []
    assert can("update", "leases.coordination.k8s.io", "mlmodel-system")
    assert not can("update", "leases.coordination.k8s.io", "default")

    rules = cluster.kubectl(
        "auth", "can-i", "--list", "-n", "default", kubeconfig=operators.kubeconfig
    ).stdout
    own_rules = [line for line in rules.splitlines() if "mlops.dev" in line or "apps" in line]
    assert own_rules
    assert not any("[*]" in line for line in own_rules)


INVALID = [
    ("no-uri", {"model": {"format": "skops"}}, "spec.model.uri: Required value"),
    ("bad-scheme", {"model": {"uri": "ftp://host/m.skops"}}, "model.uri must start with"),
    ("bad-format", {"model": {"uri": "s3://b/m", "format": "pmml"}}, 'Unsupported value: "pmml"'),
    (
        "pickle-without-opt-in",
        {"model": {"uri": "s3://b/m.pkl", "format": "sklearn"}},
        "format sklearn loads a pickle, which can run arbitrary code",
    ),
    (
        "opt-in-without-pickle",
        {"model": {"uri": "s3://b/m.skops", "allowUnsafePickle": True}},
        "model.allowUnsafePickle applies only to format sklearn",
    ),
    (
        "short-sha",
        {"model": {"uri": "s3://b/m", "sha256": "abc123"}},
        "model.sha256 must be 64 lowercase hexadecimal digits",
    ),
    (
        "weight-over-100",
        {"rollout": {"steps": [{"weight": 150}]}},
        "spec.rollout.steps[0].weight: Invalid value: 150",
    ),
    (
        "decreasing-weights",
        {"rollout": {"steps": [{"weight": 50}, {"weight": 20}]}},
        "rollout.steps weights must not decrease",
    ),
    (
        "bad-pause",
        {"rollout": {"steps": [{"weight": 10, "pause": {"duration": "two minutes"}}]}},
        "pause.duration must be a duration such as 30s, 2m or 1h30m",
    ),
    (
        "gateway-without-settings",
        {"traffic": {"router": "gatewayAPI"}},
        "traffic.router gatewayAPI needs traffic.gatewayAPI.parentRefs",
    ),
    (
        "istio-without-settings",
        {"traffic": {"router": "istio"}},
        "traffic.router istio needs traffic.istio.hosts",
    ),
    (
        "grpc-route-without-hostnames",
        {
            "serving": {"grpc": True},
            "traffic": {
                "router": "gatewayAPI",
                "gatewayAPI": {"parentRefs": [{"name": "web"}], "grpc": True},
            },
        },
        "traffic.gatewayAPI.grpc needs traffic.gatewayAPI.hostnames",
    ),
    (
        "grpc-route-without-grpc-port",
        {
            "traffic": {
                "router": "gatewayAPI",
                "gatewayAPI": {
                    "parentRefs": [{"name": "web"}],
                    "hostnames": ["i.example"],
                    "grpc": True,
                },
            },
        },
        "traffic.gatewayAPI.grpc routes the model's gRPC port, which it has only with serving.grpc",
    ),
    ("unknown-router", {"traffic": {"router": "nginx"}}, 'Unsupported value: "nginx"'),
    (
        "zero-samples",
        {"conversion": {"parity": {"samples": 0}}},
        "spec.conversion.parity.samples: Invalid value: 0",
    ),
    (
        "step-with-weight-and-mirror",
        {"rollout": {"steps": [{"weight": 10, "mirror": 10}]}},
        "each rollout step sets weight or mirror (a shadow step), not both",
    ),
    (
        "mirror-after-weight",
        {
            "traffic": {"router": "istio", "istio": {"hosts": ["iris.example.com"]}},
            "rollout": {"steps": [{"weight": 10}, {"mirror": 50}]},
        },
        "mirror (shadow) steps come before the steps that give the canary traffic",
    ),
    (
        "mirror-with-replicas-router",
        {"rollout": {"steps": [{"mirror": 50}, {"weight": 100}]}},
        "mirror steps need traffic.router gatewayAPI, istio or traefik",
    ),
    (
        "reference-without-digest",
        {"conversion": {"reference": {"uri": "s3://b/reference.npz"}}},
        "spec.conversion.reference.sha256: Required value",
    ),
    (
        "reference-short-digest",
        {"conversion": {"reference": {"uri": "s3://b/r.npz", "sha256": "abc"}}},
        "conversion.reference.sha256 must be 64 lowercase hexadecimal digits",
    ),
    (
        "reference-bad-scheme",
        {"conversion": {"reference": {"uri": "ftp://h/r.npz", "sha256": "a" * 64}}},
        "conversion.reference.uri must start with",
    ),
    (
        "reference-for-onnx",
        {
            "model": {"uri": "s3://b/m.onnx", "format": "onnx"},
            "conversion": {"reference": {"uri": "s3://b/r.npz", "sha256": "a" * 64}},
        },
        "conversion.reference needs a model with an original to compare",
    ),
    (
        "custom-metric-without-query",
        {"rollout": {"analysis": {"metrics": [{"name": "custom", "max": 1}]}}},
        "a custom metric needs prometheus.query",
    ),
    (
        "custom-metric-without-prometheus",
        {
            "rollout": {
                "analysis": {
                    "metrics": [{"name": "custom", "max": 1, "prometheus": {"query": "up"}}]
                }
            }
        },
        "custom metrics need rollout.analysis.provider.prometheus",
    ),
    (
        "negative-replicas",
        {"serving": {"replicas": -1}},
        "spec.serving.replicas: Invalid value: -1",
    ),
    ("x" * 51, {}, "an MLModel name has at most 50 characters"),
    (
        "bad-on-inconclusive",
        {"rollout": {"analysis": {"onInconclusive": "ignore"}}},
        'Unsupported value: "ignore"',
    ),
    (
        "uri-with-credentials",
        {"model": {"uri": "https://user:secret@models.example/iris.skops"}},
        "model.uri must not carry credentials",
    ),
    (
        "negative-loop-lag",
        {"serving": {"maxLoopLagMs": -1}},
        "spec.serving.maxLoopLagMs in body should be greater than or equal to 0",
    ),
    (
        "interval-1ms",
        {"rollout": {"analysis": {"interval": "1ms"}}},
        "analysis.interval must be at least 1s",
    ),
    (
        "prometheus-url-with-token",
        {
            "rollout": {
                "analysis": {
                    "provider": {"prometheus": {"url": "http://p.monitoring:9090/?token=x"}}
                }
            }
        },
        "prometheus.url must be an http(s) URL without credentials",
    ),
]


@pytest.mark.parametrize(("name", "spec", "message"), INVALID, ids=[i[0][:20] for i in INVALID])
def test_kubectl_apply_refuses_an_invalid_mlmodel_with_a_clear_message(
    cluster: ControlPlane, operators: OperatorEnv, name: str, spec: dict[str, Any], message: str
) -> None:
    manifest = mlmodel(name, "default")
    manifest["spec"].update(spec)  # a section given replaces the builder's whole
    result = cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0, f"{name} was accepted"
    assert message in result.stderr


def test_an_mlmodel_never_takes_over_a_service_it_did_not_create(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    """An MLModel named like an existing Service must not rewrite its selector or adopt it
    (it would then be deleted with the MLModel)."""
    operators.start(namespace)
    cluster.kubectl("create", "service", "clusterip", "redis", "--tcp=6379:6379", "-n", namespace)
    apply(cluster, mlmodel("redis", namespace))
    status = wait_phase(cluster, namespace, "redis", "Degraded")
    assert "Service redis (not managed by any MLModel) already exists" in status["message"]
    service = get_json(cluster, "service", "redis", "-n", namespace)
    assert service["spec"]["selector"] == {"app": "redis"}
    assert "ownerReferences" not in service["metadata"]
    assert deployments(cluster, namespace) == []
    reasons = [e["reason"] for e in events_for(cluster, namespace, "redis")]
    assert "NameTaken" in reasons


def test_two_mlmodels_whose_service_names_collide_do_not_steal_from_each_other(
    cluster: ControlPlane, namespace: str, operators: OperatorEnv
) -> None:
    """`iris` owns Service `iris-canary`; an MLModel named `iris-canary` must not take it."""
    operators.start(namespace)
    apply(cluster, mlmodel("iris", namespace))
    wait_phase(cluster, namespace, "iris", "Healthy")
    before = get_json(cluster, "service", "iris-canary", "-n", namespace)
    apply(cluster, mlmodel("iris-canary", namespace))
    status = wait_phase(cluster, namespace, "iris-canary", "Degraded")
    assert "Service iris-canary (controlled by MLModel iris)" in status["message"]
    after = get_json(cluster, "service", "iris-canary", "-n", namespace)
    assert after["spec"]["selector"] == before["spec"]["selector"]
    assert after["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
    assert wait_phase(cluster, namespace, "iris", "Healthy")
