"""Rollout webhooks in the plan: a pre-rollout gate holds the canary at 0% until it says
yes, confirm-promotion holds the promotion, a person's promote passes both, a rollout
webhook is asked with the reading that ends each interval and its no fails the
interval, and a promotion or rollback notifies once, with one payload shape."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator import rollout
from mlmodel_operator.analysis.exposition import Snapshot
from mlmodel_operator.analysis.loop import Reading
from mlmodel_operator.errors import SpecError
from mlmodel_operator.gates import key_of
from mlmodel_operator.reconcile import Observed, Plan
from mlmodel_operator.settings import Settings
from mlmodel_operator.spec import parse_spec
from mlmodel_operator.webhooks import Answer, Hook
from tests.unit.operator.test_reconcile import (
    R1,
    R2,
    T0,
    conversion_failed_pod,
    deployment,
    healthy_v1,
    model_spec,
    run,
)

pytestmark = pytest.mark.unit

RECEIVER = "http://hooks.example:8080"
SETTINGS = Settings(resync_seconds=300.0, allowed_webhook_urls=(RECEIVER,))
ONE_STEP = [{"weight": 50, "pause": {"duration": "10s"}}]


def hooked(*types: str, **rollout_extra: Any) -> dict[str, Any]:
    hooks = [{"type": t, "url": f"{RECEIVER}/{t}", "timeoutSeconds": 2} for t in types]
    spec = model_spec("v2", webhooks=hooks, **rollout_extra)
    spec["rollout"]["steps"] = ONE_STEP
    return spec


def yes(at: float = T0) -> Answer:
    return Answer(True, 200, "answered HTTP 200", at)


def no(at: float = T0) -> Answer:
    return Answer(False, 503, "answered HTTP 503", at)


READY = {R1: Observed(deployment(4)), R2: Observed(deployment(2))}


def waiting(spec: dict[str, Any]) -> Plan:
    """v2 canaried over a healthy v1, its pods not ready yet."""
    observed = {R1: Observed(deployment(4))}
    return run(spec, healthy_v1(), observed=observed, now_s=T0 - 5, settings=SETTINGS)


def again(spec: dict[str, Any], before: Plan, now_s: float, **kwargs: Any) -> Plan:
    kwargs.setdefault("observed", READY)
    return run(spec, before.status, now_s=now_s, settings=SETTINGS, **kwargs)


def key(spec: dict[str, Any], kind: str) -> str:
    [hook] = [h for h in parse_spec(spec).rollout.webhooks if h.type == kind]
    state = rollout.CanaryState(revision=R2, version="v2")
    return key_of(hook, state)


def test_a_pre_rollout_webhook_holds_the_canary_at_zero_until_it_answers_yes() -> None:
    spec = hooked("pre-rollout")
    asked = again(spec, waiting(spec), T0)
    [call] = asked.gates
    assert call.hook.url == f"{RECEIVER}/pre-rollout"
    assert call.body["type"] == "pre-rollout"
    assert call.body["canaryRevision"] == R2
    assert call.body["stableRevision"] == R1
    assert call.body["step"] is None
    assert asked.status["canary"]["step"] == -1
    assert asked.status["canary"]["weight"] == 0
    assert "waiting for the pre-rollout webhook" in asked.status["message"]

    refused = again(spec, asked, T0 + 1, webhook_answers={call.key: no()})
    assert refused.status["phase"] == "Paused"
    assert refused.status["canary"]["weight"] == 0
    assert "held by the pre-rollout webhook" in refused.status["message"]
    assert "answered HTTP 503" in refused.status["message"]
    assert [c.key for c in refused.gates] == [call.key]  # still asked, so asked again

    allowed = again(spec, refused, T0 + 12, webhook_answers={call.key: yes()})
    assert allowed.status["canary"]["step"] == 0
    assert allowed.status["canary"]["weight"] == 50
    assert allowed.gates  # asked once more this reconcile; dropped from the next
    later = again(spec, allowed, T0 + 13, webhook_answers={call.key: yes()})
    assert later.gates == ()


def test_confirm_promotion_holds_the_last_step_and_a_persons_promote_passes_it() -> None:
    spec = hooked("confirm-promotion", "promoted")
    started = again(spec, waiting(spec), T0)
    assert started.status["canary"]["step"] == 0
    assert started.gates == ()  # nothing to confirm before the promotion
    held = again(spec, started, T0 + 11)
    [call] = held.gates
    assert call.body["type"] == "confirm-promotion"
    assert call.body["step"] == 1
    assert call.body["weight"] == 50
    assert held.status["stable"]["revision"] == R1
    assert "waiting for the confirm-promotion webhook" in held.status["message"]
    assert held.notifications == ()

    refused = again(spec, held, T0 + 12, webhook_answers={call.key: no()})
    assert refused.status["phase"] == "Paused"
    assert refused.status["stable"]["revision"] == R1

    confirmed = again(spec, refused, T0 + 23, webhook_answers={call.key: yes()})
    assert confirmed.status["stable"]["revision"] == R2
    [note] = confirmed.notifications
    assert note.body["type"] == "promoted"
    assert note.body["canaryRevision"] == R2
    assert note.body["phase"] == "Promoted"

    by_person = again(
        spec,
        refused,
        T0 + 13,
        webhook_answers={call.key: no()},
        annotations={rollout.PROMOTE: f"{R2}/1/full"},
    )
    assert by_person.status["stable"]["revision"] == R2


def test_a_rollback_notifies_once_and_a_failed_notification_changes_nothing() -> None:
    spec = hooked("rolled-back", "promoted")
    started = again(spec, waiting(spec), T0)
    broken = {
        R1: Observed(deployment(4)),
        R2: Observed(deployment(2, ready=0), [conversion_failed_pod()]),
    }
    rolled = again(spec, started, T0 + 1, observed=broken)
    assert rolled.status["phase"] == "RolledBack"
    [note] = rolled.notifications
    assert note.hook.type == "rolled-back"
    assert note.body["phase"] == "RolledBack"
    assert "predicts differently" in note.body["message"]
    assert note.key == key(spec, "rolled-back")
    # The next reconcile says nothing more (the caller also sends once per key).
    after = again(spec, rolled, T0 + 2, observed=broken)
    assert after.notifications == ()


ANALYSIS = {"interval": "5s", "minSamples": 10, "failureLimit": 0,
            "metrics": [{"name": "error-rate", "max": 0.05}]}  # fmt: skip


def reading(stable: float, canary: float, at: float, **answers: Answer) -> Reading:
    return Reading(
        stable=Snapshot(requests={"200": stable}),
        canary=Snapshot(requests={"200": canary}),
        taken_at=at,
        webhooks={f"{RECEIVER}/{k}": a for k, a in answers.items()},
    )


def test_a_rollout_webhook_is_asked_at_each_interval_end_and_its_no_fails_the_interval() -> None:
    spec = hooked("rollout", analysis=ANALYSIS)
    started = again(spec, waiting(spec), T0)
    opened = again(spec, started, T0 + 0.5, metrics=reading(100, 0, T0 + 0.5))
    assert opened.read is not None
    [(hook, body)] = opened.read.webhooks  # the read due at the interval's end
    assert hook == Hook("rollout", f"{RECEIVER}/rollout", 2.0)
    assert body["type"] == "rollout"
    assert body["step"] == 1
    assert opened.read.due == pytest.approx(T0 + 5.5)
    passed = again(spec, opened, T0 + 6, metrics=reading(200, 100, T0 + 6, rollout=yes()))
    assert passed.status["analysis"]["verdict"] == "Pass"
    names = [m["name"] for m in passed.status["analysis"]["metrics"]]
    assert names == ["error-rate", f"webhook {RECEIVER}/rollout"]
    failed = again(spec, passed, T0 + 12, metrics=reading(300, 200, T0 + 12, rollout=no()))
    assert failed.status["phase"] == "RolledBack"
    assert f"rollout webhook {RECEIVER}/rollout answered HTTP 503" in failed.status["message"]


def test_a_rollout_webhook_needs_an_analysis_and_every_url_needs_the_allow_list() -> None:
    with pytest.raises(SpecError, match=r"needs rollout\.analysis"):
        parse_spec(hooked("rollout"))
    spec = hooked("pre-rollout")
    refused = run(spec, healthy_v1(), observed={R1: Observed(deployment(4))}, now_s=T0)
    assert refused.status["phase"] == "Degraded"
    assert (
        "pre-rollout webhook http://hooks.example:8080/pre-rollout is not allowed"
        in (refused.status["message"])
    )
    assert "--allowed-webhook-urls" in refused.status["message"]
    assert refused.apply == []
