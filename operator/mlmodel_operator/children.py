"""The MLModels' children, kept from watches so that a reconcile does not list them.

A reconcile used to list seven kinds of its model's children by label (Deployments,
ReplicaSets, Pods, Services, PodDisruptionBudgets, ConfigMaps, HPAs). The API server
answers such a list by scanning every object of the kind in the namespace, so with
2,000 models most of its CPU went on those scans and the reconcile workers waited on
them (docs/benchmarks.md, "Scale"). Here each kind is listed once and then watched, in
each watched namespace or cluster-wide, as client-go's informers do, and a reconcile
reads its model's children from memory.

What keeps the store true:

- A watch resumes from the last resource version it saw (bookmarks keep that recent).
  When the API server no longer has it (410 Gone), the kind is listed again and its
  store replaced, so an object deleted meanwhile goes too.
- While a kind has not been listed yet, or its watch has failed and not been resumed,
  `of_model` answers None and the reconcile lists that kind itself, as before: nothing
  is decided on a store known to be behind. A kind the operator may not watch (RBAC
  from before this) therefore stays on lists, with a warning.
- What the operator applies goes into the store from the API's answer (`written`), so
  the next reconcile sees its own writes even before the watch brings them; an event
  older than what the store holds is ignored.
- Memory: what is kept is only what the operator reads (`KEEP`): of a Deployment's
  managedFields only who applies its `replicas` (`MANAGED_PATHS`, for the autoscaling
  hand-over), ReplicaSets without their spec (only their ownership is read), Pods with
  only their containers' names and ports of their spec (scrape reads the port), no
  managedFields of any other kind. Each object is kept as compressed JSON and parsed
  again when a reconcile reads it, which costs about what the copy a reader needs
  anyway would: for 2,000 models' children as the scale bench makes them, the store
  holds about 16 MiB, against 63 MiB for the same objects kept as dicts with their
  strings interned, and about three times that as parsed from a list. A new reader
  of a Pod or ReplicaSet field, or of another managed field, must be added to `KEEP`
  or `MANAGED_PATHS`.

Events of Deployments and Pods also ask for their model to be reconciled, once the
store has them (`on_change`): kopf's watches of them did that before, and could run
ahead of this store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator import naming
from mlmodel_operator.kube import RESOURCES, ApiError, KubeClient

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)

OWNED_SELECTOR = f"{naming.MANAGED_BY}={naming.OPERATOR}"
# Kinds the operator creates, selected as it labels them; ReplicaSets and Pods carry
# the model's label from the pod template (and are matched by it, as before).
SELECTORS: dict[str, str] = {
    "Deployment": OWNED_SELECTOR,
    "Service": OWNED_SELECTOR,
    "PodDisruptionBudget": OWNED_SELECTOR,
    "ConfigMap": OWNED_SELECTOR,
    "HorizontalPodAutoscaler": OWNED_SELECTOR,
    "ReplicaSet": naming.MODEL_LABEL,
    "Pod": naming.MODEL_LABEL,
}
TRIGGERS = frozenset({"Deployment", "Pod"})  # kinds whose changes reconcile their model
WATCH_TIMEOUT_S = 300  # the API server ends a watch after this; it is resumed at once
BACKOFF_S = (0.5, 30.0)  # after a failed list or watch: first wait, longest wait


def resource_name(kind: str) -> str:
    """`pods.v1`, `deployments.v1.apps`: how kopf names a resource in its logs, and the
    label of the watch-expiry counter."""
    prefix, plural = RESOURCES[kind]
    group_version = prefix.removeprefix("/apis/").removeprefix("/api/").split("/")
    return ".".join([plural, *reversed(group_version)])


def _number(version: str) -> int | None:
    """A resourceVersion as a number, to tell a late event (None: not one)."""
    try:
        return int(version)
    except ValueError:
        return None


def _model_of(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(naming.MODEL_LABEL, ""))


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj


def _replicaset(obj: dict[str, Any]) -> dict[str, Any]:
    """Read for its ownership only (`ownership.owned_chain`)."""
    kept: dict[str, Any] = {
        k: obj[k] for k in ("apiVersion", "kind", "metadata", "status") if k in obj
    }
    return _without_managed_fields(kept)


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    """Read for its status (`health`, readiness), its metadata (ownership, names) and
    its containers' ports (`providers.scrape`)."""
    spec = obj.get("spec") or {}
    containers = [
        {k: c[k] for k in ("name", "ports") if k in c} for c in spec.get("containers") or ()
    ]
    return _without_managed_fields({**obj, "spec": {"containers": containers}})


# Paths in a Deployment's managedFields that are read (`ownership.applies_field`).
MANAGED_PATHS: tuple[tuple[str, ...], ...] = (("spec", "replicas"),)


def _only_paths(fields: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """The part of a managedFields entry's fieldsV1 tree along `paths`."""
    kept: dict[str, Any] = {}
    for path in paths:
        source: Any = fields
        target = kept
        for depth, key in enumerate(path):
            name = f"f:{key}"
            if not isinstance(source, Mapping) or name not in source:
                break
            if depth == len(path) - 1:
                target[name] = source[name]
            else:
                source, target = source[name], target.setdefault(name, {})
    return kept


def _deployment(obj: dict[str, Any]) -> dict[str, Any]:
    """Kept whole (an apply is compared with every field it sets) but for managedFields,
    of which only who owns `MANAGED_PATHS`."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and metadata.get("managedFields"):
        metadata["managedFields"] = [
            {
                **{k: entry[k] for k in ("manager", "operation") if k in entry},
                "fieldsV1": _only_paths(entry.get("fieldsV1") or {}, MANAGED_PATHS),
            }
            for entry in metadata["managedFields"]
        ]
    return obj


# kind -> what of an object the store keeps (the rest: the object without managedFields).
KEEP: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "Pod": _pod,
}


@dataclass(frozen=True)
class Entry:
    """One object as the store holds it: compressed, with what indexes it."""

    model: str
    version: str  # its resourceVersion
    data: bytes  # zlib of its JSON (what `keep` kept of it)

    def object(self) -> dict[str, Any]:
        """A fresh copy: the reconcile may change it."""
        return json.loads(zlib.decompress(self.data))  # type: ignore[no-any-return]


@dataclass
class Store:
    """One kind's objects that carry a model's label, by name and by model."""

    keep: Callable[[dict[str, Any]], dict[str, Any]] = _without_managed_fields
    objects: dict[Key, Entry] = field(default_factory=dict)
    by_model: dict[Key, dict[str, Entry]] = field(default_factory=dict)

    def put(self, obj: dict[str, Any]) -> Key | None:
        """Keep `obj` unless the store has a newer version; returns its model's key."""
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        version = str(metadata.get("resourceVersion") or "")
        old = self.objects.get(key)
        if old is not None:
            new_number, old_number = _number(version), _number(old.version)
            if new_number is not None and old_number is not None and new_number < old_number:
                return None  # a late event: the store already has what came after it
            self._unindex(key, old)
        model = _model_of(obj)
        if not model:
            self.objects.pop(key, None)
            return None
        data = json.dumps(self.keep(obj), separators=(",", ":")).encode()
        entry = Entry(model, version, zlib.compress(data, 1))
        self.objects[key] = entry
        self.by_model.setdefault((key[0], model), {})[key[1]] = entry
        return (key[0], model)

    def remove(self, obj: Mapping[str, Any]) -> Key | None:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        old = self.objects.pop(key, None)
        if old is None:
            return None
        self._unindex(key, old)
        return (key[0], old.model)

    def replace(self, namespace: str, items: Iterable[dict[str, Any]]) -> set[Key]:
        """The objects of `namespace` ("" for every one) are exactly `items` now; returns
        the models whose children changed, came or went."""
        before = {
            key: entry
            for key, entry in self.objects.items()
            if not namespace or key[0] == namespace
        }
        for key, entry in before.items():
            self.objects.pop(key)
            self._unindex(key, entry)
        touched: set[Key] = set()
        for obj in items:
            metadata = obj.get("metadata") or {}
            key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            old = before.pop(key, None)
            model = self.put(obj)
            if model is not None and (
                old is None or (old.version, old.model) != (self.objects[key].version, model[1])
            ):
                touched.add(model)
        touched.update((key[0], entry.model) for key, entry in before.items())
        return touched

    def of_model(self, namespace: str, model: str) -> list[dict[str, Any]]:
        return [entry.object() for entry in self.by_model.get((namespace, model), {}).values()]

    def _unindex(self, key: Key, entry: Entry) -> None:
        model_key = (key[0], entry.model)
        names = self.by_model.get(model_key)
        if names is not None:
            names.pop(key[1], None)
            if not names:
                del self.by_model[model_key]


class Expired(Exception):
    """The watch's resource version is gone from the API server (410 Gone)."""


class ChildCache:
    """One list-and-watch per cached kind and scope; `namespaces` empty: cluster-wide."""

    def __init__(
        self,
        client: KubeClient,
        namespaces: tuple[str, ...],
        *,
        on_change: Callable[[str, str], None],
        on_expiry: Callable[[str], None],
    ) -> None:
        self._client = client
        self._scopes = namespaces or ("",)
        self._on_change = on_change
        self._on_expiry = on_expiry
        self._stores = {kind: Store(KEEP.get(kind, _without_managed_fields)) for kind in SELECTORS}
        self._synced: set[tuple[str, str]] = set()  # (kind, scope) listed and watching
        self._resume: dict[tuple[str, str], str] = {}  # (kind, scope) -> resource version
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._reflect(kind, scope), name=f"watch-{kind}-{scope or '*'}")
            for kind in SELECTORS
            for scope in self._scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def of_model(self, kind: str, namespace: str, model: str) -> list[dict[str, Any]] | None:
        """The model's children of `kind`, or None when the store may be behind (the
        caller lists them instead)."""
        if kind not in self._stores:
            return None
        scope = namespace if namespace in self._scopes else ""
        if (kind, scope) not in self._synced:
            return None
        return self._stores[kind].of_model(namespace, model)

    def written(self, obj: Mapping[str, Any] | None) -> None:
        """The API's answer to the operator's own write of a child."""
        if obj is not None and (store := self._stores.get(str(obj.get("kind", "")))):
            store.put(copy.deepcopy(dict(obj)))

    async def _reflect(self, kind: str, scope: str) -> None:
        store, selector, resource = self._stores[kind], SELECTORS[kind], resource_name(kind)
        wait, warned = BACKOFF_S[0], False
        self._resume[(kind, scope)] = ""
        while True:
            version = self._resume[(kind, scope)]
            try:
                if not version:
                    items, version = await self._client.list_with_version(
                        kind, scope, selector=selector, each=store.keep
                    )
                    touched = store.replace(scope, items)
                    self._resume[(kind, scope)] = version
                    self._changed(kind, touched)
                # Resuming replays what was missed at once; until then the store is
                # as far behind as any watch's.
                self._synced.add((kind, scope))
                await self._watch(kind, scope, version)
                wait, warned = BACKOFF_S[0], False
            except Expired:
                self._on_expiry(resource)
                logger.info(
                    "the watch of %s %s expired (410 Gone): listing them all again",
                    resource,
                    f"in {scope}" if scope else "cluster-wide",
                )
                self._synced.discard((kind, scope))
                self._resume[(kind, scope)] = ""
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the API server away, RBAC, a broken stream
                self._synced.discard((kind, scope))
                forbidden = isinstance(error, ApiError) and error.status == 403
                log = logger.warning if forbidden and not warned else logger.debug
                where = scope or "all namespaces"
                log(
                    "cannot list or watch %s (%s), reconciles list them: %s", resource, where, error
                )
                warned = warned or forbidden
                await asyncio.sleep(wait)
                wait = min(wait * 2, BACKOFF_S[1])

    async def _watch(self, kind: str, scope: str, version: str) -> None:
        """Apply one watch request's events to the store, keeping the version to resume
        from after each (a stream cut midway resumes after its last event)."""
        events = self._client.watch(
            kind,
            scope,
            selector=SELECTORS[kind],
            resource_version=version,
            timeout_s=WATCH_TIMEOUT_S,
        )
        try:
            async for event in events:
                version = self.apply_event(kind, event, version)
                self._resume[(kind, scope)] = version
        except ApiError as error:
            if error.status == 410:
                raise Expired() from error
            raise

    def apply_event(self, kind: str, event: Mapping[str, Any], version: str) -> str:
        """One watch event into the store; the resource version to resume from after it."""
        type_, obj = event.get("type"), event.get("object") or {}
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise Expired()
            raise ApiError(int(obj.get("code") or 500), str(obj.get("message", obj)))
        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if type_ == "BOOKMARK":
            return version
        store = self._stores[kind]
        model = store.remove(obj) if type_ == "DELETED" else store.put(obj)
        if model is not None:
            self._changed(kind, {model})
        return version

    def _changed(self, kind: str, models: Iterable[Key]) -> None:
        if kind in TRIGGERS:
            for namespace, model in models:
                self._on_change(namespace, model)
