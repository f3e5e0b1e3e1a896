"""status.history through plan(): each rollout attempt one entry, opened when it starts,
closed once with how it ended; a failed revision's conversion report outlives its pods."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator import history, rollout
from mlmodel_operator.reconcile import Observed
from tests.unit.operator.test_reconcile import (
    R1,
    R2,
    R3,
    T0,
    V1,
    V2,
    V3,
    canary_at_first_step,
    conversion_failed_pod,
    deployment,
    healthy_v1,
    model_spec,
    run,
)

pytestmark = pytest.mark.unit


def entries(status: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(e["revision"], e["attempt"], e["outcome"]) for e in status.get("history") or ()]


def test_the_first_revision_is_recorded_as_deployed_with_its_model_source() -> None:
    status = healthy_v1()
    assert entries(status) == [(R1, 1, "Deployed")]
    [first] = status["history"]
    assert first["model"] == {"uri": "s3://models/iris/v1/model.skops", "format": "skops",
                              "version": "v1", "allowUnsafePickle": False}  # fmt: skip
    assert first["startedAt"] == first["finishedAt"] == "2024-05-01T09:59:00Z"
    assert first["reason"] == "the first revision"


def test_a_canary_is_progressing_from_its_start_and_promoted_once() -> None:
    first_step, observed = canary_at_first_step()
    assert entries(first_step.status) == [(R1, 1, "Deployed"), (R2, 1, "Progressing")]
    progressing = first_step.status["history"][-1]
    assert "finishedAt" not in progressing
    assert progressing["model"]["uri"] == "s3://models/iris/v2/model.skops"
    promote = {rollout.PROMOTE: f"{R2}/1/full"}
    promoted = run(V2, first_step.status, observed=observed, now_s=T0 + 5, annotations=promote)
    assert promoted.status["stable"]["revision"] == R2
    assert entries(promoted.status) == [(R1, 1, "Deployed"), (R2, 1, "Promoted")]
    assert promoted.status["history"][-1]["finishedAt"] == "2024-05-01T10:00:05Z"
    # Later reconciles leave a closed history as it is.
    again = run(V2, promoted.status, observed={R2: Observed(deployment(4))}, now_s=T0 + 60)
    assert again.status["history"] == promoted.status["history"]


def test_a_rolled_back_revision_keeps_its_conversion_report_after_its_pods_are_gone() -> None:
    first_step, _ = canary_at_first_step()
    failing = {
        R1: Observed(deployment(3)),
        R2: Observed(deployment(1, ready=0), pods=[conversion_failed_pod()]),
    }
    rolled_back = run(V2, first_step.status, observed=failing, now_s=T0 + 10)
    assert entries(rolled_back.status)[-1] == (R2, 1, "RolledBack")
    last = rolled_back.status["history"][-1]
    assert "predicts differently" in last["reason"]
    assert last["conversion"]["message"] == "the ONNX model predicts differently"
    gone = {R1: Observed(deployment(4)), R2: Observed(deployment(0))}
    later = run(V2, rolled_back.status, observed=gone, now_s=T0 + 60)
    assert later.status["history"][-1]["conversion"] == last["conversion"]


def test_a_persons_abort_is_aborted_and_a_retry_is_a_new_attempt() -> None:
    first_step, _ = canary_at_first_step()
    observed = {R1: Observed(deployment(3)), R2: Observed(deployment(1))}
    abort = {rollout.ABORT: f"{R2}/1"}
    aborted = run(V2, first_step.status, observed=observed, now_s=T0 + 10, annotations=abort)
    assert entries(aborted.status)[-1] == (R2, 1, "Aborted")
    assert aborted.status["history"][-1]["reason"] == "aborted by a person"
    assert "conversion" not in aborted.status["history"][-1]
    retry = {**abort, rollout.RETRY: f"{R2}/1"}
    retried = run(V2, aborted.status, observed=observed, now_s=T0 + 20, annotations=retry)
    assert entries(retried.status)[-2:] == [(R2, 1, "Aborted"), (R2, 2, "Progressing")]


def test_a_canary_replaced_mid_rollout_is_superseded_by_the_new_one() -> None:
    first_step, observed = canary_at_first_step()
    replaced = run(V3, first_step.status, observed=observed, now_s=T0 + 10)
    assert entries(replaced.status)[-2:] == [(R2, 1, "Superseded"), (R3, 1, "Progressing")]
    assert (
        replaced.status["history"][-2]["reason"] == f"replaced by revision {R3} before it finished"
    )


def test_going_back_to_the_stable_mid_rollout_supersedes_the_canary() -> None:
    first_step, observed = canary_at_first_step()
    back = run(V1, first_step.status, observed=observed, now_s=T0 + 10)
    assert entries(back.status) == [(R1, 1, "Deployed"), (R2, 1, "Superseded")]


def test_a_first_revision_that_never_served_is_superseded_by_its_replacement() -> None:
    broken = {R1: Observed(deployment(4, ready=0), pods=[conversion_failed_pod()])}
    failed = run(V1, observed=broken)
    replaced = run(V2, failed.status, observed={**broken, R2: Observed(deployment(1))}, now_s=T0)
    assert entries(replaced.status) == [(R1, 1, "Superseded"), (R2, 1, "Deployed")]
    assert replaced.status["history"][0]["reason"] == f"never served; replaced by revision {R2}"
    assert replaced.status["history"][1]["reason"] == f"replaces revision {R1}, which never served"


def test_only_the_newest_entries_are_kept() -> None:
    status = healthy_v1()
    ready = {R1: Observed(deployment(4))}
    for version, now in (("v2", T0), ("v3", T0 + 10), ("v4", T0 + 20)):
        spec = model_spec(version, historyLimit=2)
        status = run(spec, status, observed=ready, now_s=now).status
    assert [e["version"] for e in status["history"]] == ["v3", "v4"]
    assert entries(status)[-1][2] == "Progressing"
    status = run(model_spec("v4", historyLimit=0), status, observed=ready, now_s=T0 + 30).status
    assert "history" not in status


def test_entries_read_back_as_written_and_junk_is_dropped() -> None:
    entry = history.Entry(
        revision="abc",
        version="v7",
        attempt=2,
        outcome=history.Outcome.ROLLED_BACK,
        started=T0,
        finished=T0 + 90,
        reason="error-rate 0.2 > max 0.05",
        digest="f" * 64,
        model={"uri": "s3://m/v7.skops", "format": "skops"},
        conversion={"status": "failed"},
    )
    assert history.from_status([entry.to_dict()]) == (entry,)
    assert entry.to_dict()["finishedAt"] == "2024-05-01T10:01:30Z"
    junk = [{"revision": "x", "outcome": "Exploded"}, {"outcome": "Promoted"}, entry.to_dict()]
    assert history.from_status(junk) == (entry,)
    assert history.from_status(None) == ()


def test_a_revision_rolled_out_again_later_is_a_new_entry() -> None:
    """After an undo the same revision starts again at attempt 1: a rollout of its own."""
    first_step, observed = canary_at_first_step()
    promote2 = {rollout.PROMOTE: f"{R2}/1/full"}
    v2 = run(V2, first_step.status, observed=observed, now_s=T0 + 5, annotations=promote2)
    ready = {R1: Observed(deployment(4)), R2: Observed(deployment(4)), R3: Observed(deployment(4))}
    v3_canary = run(V3, v2.status, observed=ready, now_s=T0 + 60)
    promote3 = {rollout.PROMOTE: f"{R3}/1/full"}
    v3 = run(V3, v3_canary.status, observed=ready, now_s=T0 + 65, annotations=promote3)
    assert v3.status["stable"]["revision"] == R3
    undone = run(V2, v3.status, observed=ready, now_s=T0 + 120)
    assert entries(undone.status) == [
        (R1, 1, "Deployed"),
        (R2, 1, "Promoted"),
        (R3, 1, "Promoted"),
        (R2, 1, "Progressing"),
    ]
    assert undone.status["history"][-1]["startedAt"] == "2024-05-01T10:02:00Z"
