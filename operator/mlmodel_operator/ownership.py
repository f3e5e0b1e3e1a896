"""Which objects belong to which MLModel, decided by the controller owner reference.

Pure. Labels say what an object is meant for, but anyone who can create objects in a
namespace can copy them; the controller owner reference's uid names exactly one
MLModel (or ReplicaSet, or Deployment) and cannot collide. So the operator counts a
child as its own, reads its metrics, scales it or deletes it only when the child is
controlled by the uid it expects, and never takes over a name held by anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == uid


def uid_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def describe_holder(obj: Mapping[str, Any]) -> str:
    """Who holds an object, for a message to the person whose MLModel wants the name."""
    ref = controller_of(obj)
    if ref is None:
        return "not managed by any MLModel"
    return f"controlled by {ref.get('kind', '?')} {ref.get('name', '?')}"


def owned_chain(
    deployments: Iterable[Mapping[str, Any]],
    replicasets: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
) -> dict[str, list[Mapping[str, Any]]]:
    """The pods of each Deployment (by Deployment uid) through the ReplicaSets it controls.

    A pod counts only when its controller is a ReplicaSet whose controller is one of
    `deployments`: a pod made by hand with the same labels is nobody's, so its metrics
    are never read and its crash loop never rolls a revision back.
    """
    wanted = {uid_of(d) for d in deployments}
    parent: dict[str, str] = {}
    for replicaset in replicasets:
        ref = controller_of(replicaset)
        if ref is not None and ref.get("kind") == "Deployment" and ref.get("uid") in wanted:
            parent[uid_of(replicaset)] = str(ref["uid"])
    found: dict[str, list[Mapping[str, Any]]] = {uid: [] for uid in wanted}
    for pod in pods:
        ref = controller_of(pod)
        if ref is not None and ref.get("kind") == "ReplicaSet" and ref.get("uid") in parent:
            found[parent[str(ref["uid"])]].append(pod)
    return found


def applies_field(obj: Mapping[str, Any], manager: str, path: Iterable[str]) -> bool:
    """Whether `manager`'s server-side apply owns the field at `path` (e.g. spec, replicas)
    of `obj`, by its managedFields. A field an apply owns is removed when the next apply
    of the same manager leaves it out: what a hand-over must know first."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        fields: Mapping[str, Any] | None = entry.get("fieldsV1") or {}
        for key in path:
            fields = (fields or {}).get(f"f:{key}")
            if fields is None:
                break
        else:
            return True
    return False
