"""Rollout webhooks with real processes: the operator calls a real HTTP receiver (in this
test's process, on the sandbox's loopback) while real canaries take load through the
Service.

- a promoted rollout: the pre-rollout gate answers 503 at first and the canary stays
  at 0% (Paused, no pod of it serving a request) until it answers 200; the rollout
  webhook is asked at each analysis interval; confirm-promotion is asked before the
  promotion; the `promoted` notification fails every time and is retried, yet blocks
  nothing;
- a rolled-back rollout: the rollout webhook answers 500, the interval fails and the
  canary is rolled back; `rolled-back` is notified once.

Every call's payload has the documented keys, and the calls arrive in rollout order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from localenv import LoadGenerator, mlmodel
from localenv.controlplane.cluster import ControlPlane
from localenv.operator_process import OperatorEnv
from localenv.podrunner import PodRunner
from tests.helpers.kube import apply, model_status, wait_healthy
from tests.helpers.serving import UP_TIMEOUT_S, IrisModels, bring_up_v1, start_load
from tests.helpers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

KEYS = {"type", "name", "namespace", "stableRevision", "canaryRevision", "attempt", "step",
        "steps", "weight", "phase", "message", "timestamp"}  # fmt: skip
TYPES = ("pre-rollout", "rollout", "confirm-promotion", "promoted", "rolled-back")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def hooked_rollout(receiver: WebhookReceiver) -> dict[str, Any]:
    return {
        "steps": [{"weight": 50, "pause": {"duration": "6s"}}, {"weight": 100}],
        "scaleDownDelaySeconds": 1,
        "progressDeadlineSeconds": 180,
        "analysis": {
            "interval": "2s",
            "minSamples": 5,
            "failureLimit": 0,
            "metrics": [{"name": "error-rate", "max": 0.01}],
        },
        "webhooks": [
            {"type": kind, "url": receiver.url(f"/{kind}"), "timeoutSeconds": 2} for kind in TYPES
        ],
    }


def v2_under_load(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    iris: IrisModels,
    receiver: WebhookReceiver,
    answers: dict[str, int],
) -> LoadGenerator:
    """v1 serving with the hooks (a first revision calls none), the receiver answering
    `answers` (path -> status), load through the Service, then v2 applied."""
    rollout = hooked_rollout(receiver)
    bring_up_v1(cluster, namespace, iris, operators, rollout)
    assert receiver.calls() == []
    for path, status in answers.items():
        receiver.respond(path, status)
    load = start_load(cluster, namespace, iris, seconds=120)
    apply(cluster, mlmodel("iris", namespace, version="v2", model_file=iris.v2, rollout=rollout))
    return load


def order(receiver: WebhookReceiver) -> list[str]:
    """The types called, in order, consecutive repeats folded."""
    kinds: list[str] = []
    for call in receiver.calls():
        if not kinds or kinds[-1] != call.body["type"]:
            kinds.append(call.body["type"])
    return kinds


def test_gates_hold_and_release_and_a_failing_notification_blocks_nothing(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    receiver: WebhookReceiver,
) -> None:
    answers = {"/pre-rollout": 503, "/promoted": 500}
    load = v2_under_load(cluster, namespace, operators, iris, receiver, answers)
    try:
        receiver.wait_for(2, "/pre-rollout", timeout=UP_TIMEOUT_S)  # refused, asked again
        status = model_status(cluster, namespace)
        assert status["phase"] == "Paused", status
        assert status["canary"]["weight"] == 0, status
        assert "held by the pre-rollout webhook" in status["message"], status
        assert "answered HTTP 503" in status["message"], status
        receiver.respond("/pre-rollout", 200)
        wait_healthy(cluster, namespace, "v2", timeout=UP_TIMEOUT_S)
        # The failing notification is retried, after the promotion it did not hold up.
        receiver.wait_for(3, "/promoted", timeout=30)
    finally:
        load.stop()
    result = load.wait()
    assert not result.failures(), result.explain()
    kinds = order(receiver)
    assert kinds[:3] == ["pre-rollout", "rollout", "confirm-promotion"], kinds
    assert kinds[-1] == "promoted", kinds
    # The analysis goes on while the promotion is asked for (docs/rollouts.md, as in
    # Flagger): an interval can end between the question and its answer.
    assert set(kinds[3:-1]) <= {"rollout", "confirm-promotion"}, kinds
    for call in receiver.calls():
        assert set(call.body) == KEYS, call.body
        assert call.body["name"] == "iris"
        assert call.headers.get("Content-Type") == "application/json"
    held = receiver.calls("/pre-rollout")
    assert [c.body["weight"] for c in held] == [0] * len(held)
    assert {c.body["step"] for c in receiver.calls("/rollout")} <= {1, 2}
    [confirm, *_] = receiver.calls("/confirm-promotion")
    assert confirm.body["step"] == 2
    notes = receiver.calls("/promoted")
    assert {n.body["phase"] for n in notes} == {"Promoted"}
    assert len({n.body["timestamp"] for n in notes}) == 1  # the same event, retried
    assert receiver.calls("/rolled-back") == []


def test_a_rollout_webhook_saying_no_rolls_the_canary_back_and_it_is_notified_once(
    cluster: ControlPlane,
    namespace: str,
    operators: OperatorEnv,
    runner: PodRunner,
    iris: IrisModels,
    receiver: WebhookReceiver,
) -> None:
    load = v2_under_load(cluster, namespace, operators, iris, receiver, {"/rollout": 500})
    try:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while (status := model_status(cluster, namespace)).get("phase") != "RolledBack":
            assert time.monotonic() < deadline, status
            time.sleep(0.25)
        receiver.wait_for(1, "/rolled-back", timeout=10)
        time.sleep(3)  # later reconciles say nothing more
    finally:
        load.stop()
    result = load.wait()
    assert not result.failures(), result.explain()
    assert "rollout webhook" in status["message"], status
    assert "answered HTTP 500" in status["message"], status
    assert order(receiver) == ["pre-rollout", "rollout", "rolled-back"]
    [note] = receiver.calls("/rolled-back")
    assert note.body["phase"] == "RolledBack"
    assert note.body["canaryRevision"] == status["canary"]["revision"]
    assert receiver.calls("/confirm-promotion") == []
    assert receiver.calls("/promoted") == []
