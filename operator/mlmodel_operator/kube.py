"""The one module that talks to the Kubernetes API (besides kopf's own watches).

A small aiohttp client over kopf's public login (kubeconfig or in-cluster
ServiceAccount): server-side apply with the operator's field manager, reads,
deletes, status writes and Events. Errors become `ApiError` with the status code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf

from mlmodel_operator.analysis import templates
from mlmodel_operator.naming import FIELD_MANAGER
from mlmodel_operator.routers import router_apis

logger = logging.getLogger(__name__)

# kind -> (API prefix, plural) for everything the operator touches.
RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "MLModel": ("/apis/mlops.dev/v1alpha1", "mlmodels"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    **{kind: ("/apis/mlops.dev/v1alpha1", t.plural) for kind, t in templates.KINDS.items()},
}
# Kinds without a namespace: their path has none (the namespace argument is ignored).
CLUSTER_SCOPED = frozenset(kind for kind, t in templates.KINDS.items() if not t.namespaced)


def _resource(kind: str) -> tuple[str, str]:
    """(API prefix, plural) of a kind: the fixed table, then the routers' own APIs."""
    if kind in RESOURCES:
        return RESOURCES[kind]
    api = router_apis()[kind]
    return api.prefix, api.plural


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    prefix, plural = _resource(kind)
    if kind in CLUSTER_SCOPED:
        path = f"{prefix}/{plural}"
    else:
        path = f"{prefix}/namespaces/{quote(namespace)}/{plural}"
    if name is not None:
        path += f"/{quote(name)}"
    if sub is not None:
        path += f"/{sub}"
    return path


def _cluster_path(kind: str) -> str:
    """The path of a kind in every namespace (a cluster-wide list or watch)."""
    prefix, plural = _resource(kind)
    return f"{prefix}/{plural}"


def resource_of(path: str) -> str:
    """The resource a request path names (`deployments`, `mlmodels`, ...): the label of
    the API request counter, which must stay a small set whatever the names."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]  # after api/v1 or apis/g/v
    if len(rest) >= 3 and rest[0] == "namespaces":
        return rest[2]
    return rest[0] if rest else ""


def login() -> kopf.ConnectionInfo:
    """In-cluster ServiceAccount first, then KUBECONFIG/~/.kube/config (as kopf does)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise RuntimeError("no Kubernetes credentials: not in a pod and no kubeconfig found")
    return info


Items = list[dict[str, Any]]  # (the class's `list` method hides the builtin there)
LIST_PAGE = 500  # objects per page of a list that may be long


class KubeClient:
    """`on_response(method, resource, status)` is told of every answer: the operator's
    API request counter, which says what one reconcile costs the API server."""

    def __init__(
        self,
        info: kopf.ConnectionInfo | None = None,
        *,
        on_response: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self._info = info or login()
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._on_response = on_response

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": "mlmodel-operator", **self._info.as_http_headers()}
            self._session = aiohttp.ClientSession(
                base_url=self._info.server.rstrip("/"),
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=32),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        session = await self._open()
        url = path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with session.request(method, url, data=data, headers=headers) as response:
            text = await response.text()
            if self._on_response is not None:
                self._on_response(method, resource_of(path), response.status)
            if response.status == 401:
                # A rotated ServiceAccount token: log in again next time.
                self._info = login()
                await session.close()
            if response.status >= 400:
                try:
                    message = json.loads(text).get("message", text)
                except json.JSONDecodeError:
                    message = text
                raise ApiError(response.status, f"{method} {path}: {message}")
            return json.loads(text) if text else None

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", _path(kind, namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return result

    async def list(self, kind: str, namespace: str, *, selector: str = "") -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        result = await self.request("GET", _path(kind, namespace), params=params)
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    async def list_with_version(
        self,
        kind: str,
        namespace: str,
        *,
        selector: str = "",
        each: Callable[[dict[str, Any]], dict[str, Any]] = lambda item: item,
    ) -> tuple[Items, str]:
        """A list and the resource version it was read at (where a watch resumes);
        `namespace` "" lists every namespace. In pages, each item through `each` as its
        page comes: the whole answer for thousands of Pods, parsed at once, would raise
        the operator's memory for good (freed Python memory is seldom given back)."""
        path = _path(kind, namespace) if namespace else _cluster_path(kind)
        items: Items = []
        token = ""
        while True:
            params = {"limit": str(LIST_PAGE)}
            if selector:
                params["labelSelector"] = selector
            if token:
                params["continue"] = token
            result = await self.request("GET", path, params=params)
            items.extend(each(item) for item in result.get("items") or ())
            token = str(result["metadata"].get("continue") or "")
            if not token:
                return items, str(result["metadata"]["resourceVersion"])

    async def watch(
        self,
        kind: str,
        namespace: str,
        *,
        selector: str,
        resource_version: str,
        timeout_s: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, from `resource_version` on, until the API
        server ends it (after `timeout_s`) or the connection fails. Its own session
        without a total timeout: the requests' 30 s would cut every watch, and their
        connection limit must not be taken by streams that stay open."""
        if self._watch_session is None or self._watch_session.closed:
            self._watch_session = aiohttp.ClientSession(
                base_url=self._info.server.rstrip("/"),
                headers={"User-Agent": "mlmodel-operator", **self._info.as_http_headers()},
                connector=aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=0),
                # A stream silent this long is hung: bookmarks come every minute or so.
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_s + 30),
            )
        path = _path(kind, namespace) if namespace else _cluster_path(kind)
        params = {
            "watch": "1",
            "labelSelector": selector,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
        }
        async with self._watch_session.get(path, params=params) as response:
            if self._on_response is not None:
                self._on_response("WATCH", resource_of(path), response.status)
            if response.status >= 400:
                text = await response.text()
                if response.status == 401:
                    self._info = login()
                    await self._watch_session.close()
                raise ApiError(response.status, f"WATCH {path}: {text[:200]}")
            # Lines are split here, not by aiohttp's readline: an object can be longer
            # than its line limit.
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)

    async def apply(
        self, obj: Mapping[str, Any], *, manager: str = FIELD_MANAGER, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking conflicting fields;
        with `force` False a conflict is an ApiError 409 and changes nothing."""
        metadata = obj["metadata"]
        result: dict[str, Any] = await self.request(
            "PATCH",
            _path(obj["kind"], metadata["namespace"], metadata["name"]),
            body=obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": manager, "force": "true" if force else "false"},
        )
        return result

    async def apply_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str = "",
    ) -> None:
        """Server-side apply of the status subresource. With `resource_version` the write
        is conditional: the API answers 409 if the object changed since it was read."""
        prefix, _ = _resource(kind)
        metadata = {"name": name, "namespace": namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": prefix.removeprefix("/apis/"),
            "kind": kind,
            "metadata": metadata,
            "status": status,
        }
        await self.request(
            "PATCH",
            _path(kind, namespace, name, "status"),
            body=body,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        """Set replicas through the scale subresource, leaving the rest of the object as is.
        False when the object is gone (deleted since it was listed): nothing to scale."""
        try:
            await self.request(
                "PATCH",
                _path(kind, namespace, name, "scale"),
                body={"spec": {"replicas": replicas}},
                content_type="application/merge-patch+json",
            )
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def delete(self, kind: str, namespace: str, name: str, *, uid: str = "") -> bool:
        """Delete, with `uid` as a precondition when given: an object recreated under the
        same name since it was read (by someone else) is left alone (409)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", _path(kind, namespace, name), body=body)
        except ApiError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def event(
        self,
        *,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
    ) -> None:
        """Post a core/v1 Event about `involved` (an object's dict); failures are logged only."""
        metadata = involved["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.request("POST", _path("Event", metadata["namespace"]), body=body)
        except (ApiError, aiohttp.ClientError) as error:
            logger.warning("could not post event %s for %s: %s", reason, metadata["name"], error)
