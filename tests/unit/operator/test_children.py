"""The store of the models' children (children.ChildCache): kept from a list and a
watch, never behind on the operator's own writes, replaced whole after a 410, and not
read at all while it may be behind."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from mlmodel_operator import naming, ownership
from mlmodel_operator.children import (
    KEEP,
    SELECTORS,
    ChildCache,
    Expired,
    Store,
    resource_name,
)
from mlmodel_operator.kube import ApiError, KubeClient

pytestmark = pytest.mark.unit


def obj(kind: str, name: str, model: str, version: int, ns: str = "ns") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": str(version),
            "labels": {naming.MODEL_LABEL: model, naming.MANAGED_BY: naming.OPERATOR},
            "managedFields": [{"manager": "kube-controller-manager"}],
        },
        "status": {"v": version},
    }


def test_the_store_keeps_the_newest_version_by_model_without_managed_fields() -> None:
    store = Store()
    assert store.put(obj("Pod", "iris-a", "iris", 5)) == ("ns", "iris")
    assert store.put(obj("Pod", "iris-a", "iris", 4)) is None  # a late event
    store.put(obj("Pod", "wine-a", "wine", 6))
    [pod] = store.of_model("ns", "iris")
    assert pod["status"] == {"v": 5}
    assert "managedFields" not in pod["metadata"]
    pod["status"]["v"] = 99  # the reader's copy, not the store's
    assert store.of_model("ns", "iris")[0]["status"] == {"v": 5}
    assert store.remove(obj("Pod", "iris-a", "iris", 7)) == ("ns", "iris")
    assert store.of_model("ns", "iris") == []
    assert [p["metadata"]["name"] for p in store.of_model("ns", "wine")] == ["wine-a"]


def test_a_replace_drops_what_went_in_the_gap_and_names_only_the_models_that_changed() -> None:
    store = Store()
    for o in (obj("Pod", "a", "iris", 1), obj("Pod", "b", "wine", 2), obj("Pod", "c", "cart", 3)):
        store.put(o)
    store.put(obj("Pod", "x", "iris", 4, ns="other"))
    touched = store.replace(
        "ns", [obj("Pod", "a", "iris", 1), obj("Pod", "c", "cart", 9), obj("Pod", "d", "new", 9)]
    )
    assert touched == {("ns", "wine"), ("ns", "cart"), ("ns", "new")}  # not iris: unchanged
    assert store.of_model("ns", "wine") == []
    assert len(store.of_model("other", "iris")) == 1  # another namespace's scope


class FakeApi:
    """A list and a scripted sequence of watch requests, each a list of events or an
    error, as the API server would answer them."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, str, str]] = []
        self.done = asyncio.Event()

    async def list_with_version(
        self, kind: str, namespace: str, *, selector: str, each: Any
    ) -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", kind, selector))
        return [each(item) for item in self.lists.pop(0)], "100"

    async def watch(
        self, kind: str, namespace: str, *, selector: str, resource_version: str, timeout_s: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(("watch", kind, resource_version))
        if not self.watches:
            self.done.set()
            await asyncio.sleep(3600)
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            if isinstance(event, Exception):
                raise event  # the stream cut midway
            yield event


def cache_of(api: FakeApi, changed: list[tuple[str, str]], expired: list[str]) -> ChildCache:
    return ChildCache(
        cast(KubeClient, api),
        ("ns",),
        on_change=lambda ns, model: changed.append((ns, model)),
        on_expiry=expired.append,
    )


def test_a_pod_watch_lists_then_follows_and_lists_again_after_410() -> None:
    api = FakeApi(
        lists=[
            [obj("Pod", "a", "iris", 90), obj("Pod", "b", "wine", 95)],
            [obj("Pod", "c", "cart", 300)],
        ],
        watches=[
            [
                {"type": "MODIFIED", "object": obj("Pod", "a", "iris", 101)},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "150"}}},
            ],
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
        ],
    )
    changed: list[tuple[str, str]] = []
    expired: list[str] = []

    async def scenario() -> tuple[list[dict[str, Any]] | None, ...]:
        cache = cache_of(api, changed, expired)
        before = cache.of_model("Pod", "ns", "iris")
        task = asyncio.create_task(cache._reflect("Pod", "ns"))
        await asyncio.wait_for(api.done.wait(), 5)
        after = (cache.of_model("Pod", "ns", "iris"), cache.of_model("Pod", "ns", "cart"))
        task.cancel()
        return before, *after

    before, iris, cart = asyncio.run(scenario())
    assert before is None  # not listed yet: the reconcile lists
    assert api.calls == [
        ("list", "Pod", naming.MODEL_LABEL),
        ("watch", "Pod", "100"),
        ("watch", "Pod", "150"),  # resumed from the bookmark
        ("list", "Pod", naming.MODEL_LABEL),  # after the 410
        ("watch", "Pod", "100"),
    ]
    assert iris == []  # deleted while the watch was away: gone with the relist
    assert cart is not None
    assert [p["metadata"]["name"] for p in cart] == ["c"]
    assert expired == ["pods.v1"]
    iris_, wine_, cart_ = ("ns", "iris"), ("ns", "wine"), ("ns", "cart")
    assert sorted(changed[:2]) == [iris_, wine_]  # listed
    assert changed[2] == iris_  # modified
    assert sorted(changed[3:]) == [cart_, iris_, wine_]  # came or went in the gap


def test_a_failing_watch_makes_the_reconciles_list_until_it_resumes() -> None:
    api = FakeApi(
        lists=[[obj("Deployment", "d", "iris", 90)]],
        watches=[
            ApiError(500, "etcd away"),
            [{"type": "ADDED", "object": obj("Service", "s", "iris", 101)}],
        ],
    )
    seen: list[list[dict[str, Any]] | None] = []

    async def scenario() -> None:
        cache = cache_of(api, [], [])
        task = asyncio.create_task(cache._reflect("Service", "ns"))
        for _ in range(50):
            seen.append(cache.of_model("Service", "ns", "iris"))
            await asyncio.sleep(0.02)
        await asyncio.wait_for(api.done.wait(), 5)
        seen.append(cache.of_model("Service", "ns", "iris"))
        task.cancel()

    asyncio.run(scenario())
    assert None in seen  # during the back-off after the failure
    assert seen[-1] is not None
    assert len(seen[-1]) == 2
    assert api.calls[0] == ("list", "Service", SELECTORS["Service"])
    assert [c[0] for c in api.calls] == ["list", "watch", "watch", "watch"]  # no relist


def test_a_stream_cut_midway_resumes_after_its_last_event() -> None:
    api = FakeApi(
        lists=[[]],
        watches=[
            [{"type": "ADDED", "object": obj("Pod", "a", "iris", 101)}, ConnectionResetError()],
        ],
    )

    async def scenario() -> None:
        task = asyncio.create_task(cache_of(api, [], [])._reflect("Pod", "ns"))
        await asyncio.wait_for(api.done.wait(), 5)
        task.cancel()

    asyncio.run(scenario())
    assert api.calls[1:] == [("watch", "Pod", "100"), ("watch", "Pod", "101")]


def test_only_deployments_and_pods_reconcile_their_model_and_errors_are_not_swallowed() -> None:
    changed: list[tuple[str, str]] = []
    cache = cache_of(FakeApi([], []), changed, [])
    cache.apply_event("Service", {"type": "ADDED", "object": obj("Service", "s", "iris", 1)}, "")
    cache.apply_event(
        "Deployment", {"type": "ADDED", "object": obj("Deployment", "d", "iris", 1)}, ""
    )
    assert changed == [("ns", "iris")]
    with pytest.raises(Expired):
        cache.apply_event("Pod", {"type": "ERROR", "object": {"code": 410}}, "1")
    with pytest.raises(ApiError):
        cache.apply_event("Pod", {"type": "ERROR", "object": {"code": 500, "message": "x"}}, "1")


def test_the_operators_own_write_is_read_back_before_the_watch_brings_it() -> None:
    cache = cache_of(FakeApi([], []), [], [])
    cache._synced.add(("Deployment", "ns"))
    cache.written(obj("Deployment", "iris-abc", "iris", 7))
    cache.apply_event(
        "Deployment", {"type": "MODIFIED", "object": obj("Deployment", "iris-abc", "iris", 6)}, ""
    )
    [deployment] = cache.of_model("Deployment", "ns", "iris") or []
    assert deployment["metadata"]["resourceVersion"] == "7"
    assert cache.of_model("HTTPRoute", "ns", "iris") is None  # not a stored kind: listed


def test_owned_kinds_are_selected_by_the_api_server_as_the_operator_labels_them() -> None:
    managed = "app.kubernetes.io/managed-by=mlmodel-operator"
    assert {kind for kind, sel in SELECTORS.items() if sel == managed} == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
        "HorizontalPodAutoscaler",
    }
    assert SELECTORS["Pod"] == SELECTORS["ReplicaSet"] == naming.MODEL_LABEL  # has the label


def test_resources_are_named_as_kopf_names_them() -> None:
    assert resource_name("Pod") == "pods.v1"
    assert resource_name("Deployment") == "deployments.v1.apps"
    assert resource_name("HorizontalPodAutoscaler") == "horizontalpodautoscalers.v2.autoscaling"


def test_the_store_keeps_what_the_operator_reads_of_each_kind() -> None:
    cache = cache_of(FakeApi([], []), [], [])
    for kind in ("Deployment", "ReplicaSet", "Pod", "Service"):
        cache._synced.add((kind, "ns"))
        full = obj(kind, f"{kind.lower()}-1", "iris", 1)
        full["spec"] = {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "serve"}]}},
            "containers": [
                {
                    "name": "serve",
                    "image": "runtime",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
        }
        cache.apply_event(kind, {"type": "ADDED", "object": full}, "")
    [deployment] = cache.of_model("Deployment", "ns", "iris") or []
    [replicaset] = cache.of_model("ReplicaSet", "ns", "iris") or []
    [pod] = cache.of_model("Pod", "ns", "iris") or []
    [service] = cache.of_model("Service", "ns", "iris") or []
    assert deployment["metadata"]["managedFields"] == [
        {"manager": "kube-controller-manager", "fieldsV1": {}}
    ]
    assert deployment["spec"]["template"] == {"spec": {"containers": [{"name": "serve"}]}}
    assert "spec" not in replicaset
    assert replicaset["metadata"]["labels"][naming.MODEL_LABEL] == "iris"
    assert pod["spec"] == {
        "containers": [{"name": "serve", "ports": [{"name": "http", "containerPort": 8080}]}]
    }
    assert pod["status"] == {"v": 1}
    assert "managedFields" not in pod["metadata"]
    assert "managedFields" not in service["metadata"]
    assert service["spec"]["replicas"] == 1


def managed(manager: str, operation: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2026-12-04T09:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


@pytest.mark.parametrize("operator_owns_replicas", [True, False])
def test_a_stored_deployment_says_who_applies_its_replicas_as_the_listed_one_does(
    operator_owns_replicas: bool,
) -> None:
    """The autoscaling hand-over reads it (`ownership.applies_field`); the rest of the
    managedFields, most of a Deployment's size, is not kept."""
    template: dict[str, Any] = {
        "f:spec": {"f:containers": {'k:{"name":"serve"}': {".": {}, "f:image": {}}}}
    }
    spec: dict[str, Any] = {"f:template": template}
    if operator_owns_replicas:
        spec["f:replicas"] = {}
    ours = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": spec}
    full = obj("Deployment", "iris-abc", "iris", 3)
    full["metadata"]["managedFields"] = [
        managed(naming.FIELD_MANAGER, "Apply", ours),
        managed("kube-controller-manager", "Update", {"f:status": {"f:replicas": {}}}),
        managed("mlmodel-operator-handover", "Apply", {"f:spec": {"f:paused": {}}}),
    ]
    store = Store(KEEP["Deployment"])
    store.put(copy.deepcopy(full))
    [kept] = store.of_model("ns", "iris")
    for manager in (naming.FIELD_MANAGER, "mlmodel-operator-handover"):
        path = ("spec", "replicas")
        assert ownership.applies_field(kept, manager, path) == ownership.applies_field(
            full, manager, path
        )
    assert ownership.applies_field(kept, naming.FIELD_MANAGER, ("spec", "replicas")) is (
        operator_owns_replicas
    )
    assert "f:template" not in str(kept["metadata"]["managedFields"])
