"""ownership: a child counts as an MLModel's only through controller owner references."""

from __future__ import annotations

from typing import Any

import pytest

from mlmodel_operator.ownership import controlled_by, describe_holder, owned_chain

pytestmark = pytest.mark.unit


def obj(uid: str, owner: tuple[str, str, str] | None = None, **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"n-{uid}", "uid": uid, "labels": labels}
    if owner is not None:
        kind, name, owner_uid = owner
        metadata["ownerReferences"] = [
            {"kind": kind, "name": name, "uid": owner_uid, "controller": True}
        ]
    return {"metadata": metadata}


def test_only_the_controller_reference_with_the_right_uid_counts() -> None:
    mine = obj("d1", ("MLModel", "iris", "m1"))
    assert controlled_by(mine, "m1")
    assert not controlled_by(mine, "m2")
    assert not controlled_by(obj("d2"), "m1")
    # An owner reference that is not the controller does not make an object ours.
    shared = obj("d3", ("MLModel", "iris", "m1"))
    shared["metadata"]["ownerReferences"][0]["controller"] = False
    assert not controlled_by(shared, "m1")


def test_the_holder_of_a_name_is_described_for_people() -> None:
    assert describe_holder(obj("s1")) == "not managed by any MLModel"
    assert describe_holder(obj("s2", ("MLModel", "other", "m9"))) == "controlled by MLModel other"


def test_a_pod_made_by_hand_with_a_revisions_labels_is_nobodys() -> None:
    deployment = obj("dep", ("MLModel", "iris", "m1"))
    replicaset = obj("rs", ("Deployment", "iris-abc", "dep"))
    real = obj("p1", ("ReplicaSet", "iris-abc-1", "rs"), **{"mlops.dev/revision": "abc"})
    forged = obj("p2", None, **{"mlops.dev/revision": "abc"})
    foreign_rs = obj("rs2", ("Deployment", "elsewhere", "other-dep"))
    stray = obj("p3", ("ReplicaSet", "x", "rs2"), **{"mlops.dev/revision": "abc"})
    pods = owned_chain([deployment], [replicaset, foreign_rs], [real, forged, stray])
    assert pods == {"dep": [real]}
