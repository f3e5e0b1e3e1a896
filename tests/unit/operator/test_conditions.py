"""merge_conditions: lastTransitionTime moves only when a condition's status changes."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.conditions import Condition, merge_conditions

pytestmark = pytest.mark.unit

EARLIER = "2024-05-01T10:00:00Z"
NOW = "2024-05-01T12:00:00Z"


def previous(type_: str, status: str, since: str | None = EARLIER) -> dict[str, Any]:
    condition = {"type": type_, "status": status, "reason": "Old", "message": "old"}
    if since is not None:
        condition["lastTransitionTime"] = since
    return condition


def test_new_conditions_are_written_in_the_standard_shape() -> None:
    merged = merge_conditions(
        [],
        [Condition("Ready", True, "Serving", "2/2 ready"), Condition("Degraded", False, "Healthy")],
        generation=4,
        now=NOW,
    )

    assert merged == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Serving",
            "message": "2/2 ready",
            "observedGeneration": 4,
            "lastTransitionTime": NOW,
        },
        {
            "type": "Degraded",
            "status": "False",
            "reason": "Healthy",
            "message": "",
            "observedGeneration": 4,
            "lastTransitionTime": NOW,
        },
    ]


@pytest.mark.parametrize(
    ("before", "wanted", "since"),
    [
        (previous("Ready", "True"), Condition("Ready", True, "Serving", "new"), EARLIER),
        # Reason and message may change while the status stays: the transition time stays.
        (previous("Ready", "True"), Condition("Ready", True, "CanaryProgressing", "x"), EARLIER),
        (previous("Ready", "False"), Condition("Ready", False, "Deploying"), EARLIER),
        (previous("Ready", "True"), Condition("Ready", False, "RolledBack"), NOW),
        (previous("Ready", "False"), Condition("Ready", True, "Serving"), NOW),
        (previous("Ready", "Unknown"), Condition("Ready", True, "Serving"), NOW),
        (previous("Ready", "True", since=None), Condition("Ready", True, "Serving"), NOW),
        (previous("Progressing", "True"), Condition("Ready", True, "Serving"), NOW),
    ],
)
def test_last_transition_time_changes_only_with_the_status(
    before: dict[str, Any], wanted: Condition, since: str
) -> None:
    [merged] = merge_conditions([before], [wanted], generation=2, now=NOW)

    assert merged["lastTransitionTime"] == since
    assert (merged["reason"], merged["message"]) == (wanted.reason, wanted.message)
    assert merged["observedGeneration"] == 2


def test_each_condition_keeps_its_own_transition_time() -> None:
    merged = merge_conditions(
        [previous("Ready", "True", "2024-01-01T00:00:00Z"), previous("Degraded", "False")],
        [Condition("Degraded", True, "CrashLoop"), Condition("Ready", True, "Serving")],
        generation=3,
        now=NOW,
    )

    assert {c["type"]: c["lastTransitionTime"] for c in merged} == {
        "Degraded": NOW,
        "Ready": "2024-01-01T00:00:00Z",
    }
    assert [c["type"] for c in merged] == ["Degraded", "Ready"]  # in the order wanted
