"""Admin access to the Kubernetes API for the e2e environment, and a thin async client.

The pod runner and the load generator talk to the API server with plain HTTP calls
(httpx), authenticated as the control plane's admin: from a running `ControlPlane`
(its server and TLS context) or from a kubeconfig file (`python -m localenv.podrunner`).
Every address is the API server on 127.0.0.1; nothing else is ever dialled here.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml


class Plane(Protocol):
    """What admin access needs of a control plane (`ControlPlane` has it)."""

    @property
    def server(self) -> str: ...

    def ssl_context(self) -> ssl.SSLContext: ...


@dataclass(frozen=True)
class ApiAccess:
    """Where the API server is and how to authenticate to it."""

    server: str
    ssl: ssl.SSLContext
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_plane(cls, plane: Plane) -> ApiAccess:
        return cls(server=plane.server, ssl=plane.ssl_context())

    @classmethod
    def of(cls, source: ApiAccess | Plane) -> ApiAccess:
        """`source` itself, or the admin's access to a running control plane."""
        return source if isinstance(source, ApiAccess) else cls.from_plane(source)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiAccess:
        """The current context of a kubeconfig: client certificate or token, CA bundle."""
        config = yaml.safe_load(path.read_text())
        context_name = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        context = contexts.get(context_name) or next(iter(contexts.values()))
        cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
        user = {u["name"]: u["user"] for u in config.get("users") or []}.get(
            context.get("user"), {}
        )
        scratch = Path(tempfile.mkdtemp(prefix="podrunner-credentials-"))
        scratch.chmod(0o700)

        def material(key: str) -> Path | None:
            source: dict[str, Any] = cluster if key == "certificate-authority" else user
            if data := source.get(f"{key}-data"):
                target = scratch / key
                target.write_bytes(base64.b64decode(data))
                target.chmod(0o600)
                return target
            return Path(source[key]) if source.get(key) else None

        ca = material("certificate-authority")
        context_ssl = ssl.create_default_context(cafile=str(ca) if ca else None)
        cert, key = material("client-certificate"), material("client-key")
        if cert and key:
            context_ssl.load_cert_chain(str(cert), str(key))
        headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        return cls(server=str(cluster["server"]), ssl=context_ssl, headers=headers)


class ApiError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"API answered {status}: {text[:500]}")
        self.status = status


class KubeApi:
    """The handful of verbs the runner and the load generator need, on raw paths."""

    def __init__(self, access: ApiAccess, *, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=access.server,
            verify=access.ssl,
            headers=access.headers,
            timeout=timeout,
            trust_env=False,  # never through a proxy: the API server is on loopback
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        headers = {"Content-Type": content_type} if body is not None else {}
        response = await self._client.request(
            method, path, params=params, json=body, headers=headers
        )
        if response.is_success:
            return response.status_code, response.json() if response.content else None
        if response.status_code in allow:
            return response.status_code, None
        raise ApiError(response.status_code, response.text)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The object at `path`, or None when it does not exist."""
        _, body = await self._send("GET", path, params=params, allow=(404,))
        return body

    async def create(self, path: str, body: dict[str, Any]) -> bool:
        """Create; False when it already existed."""
        status, _ = await self._send("POST", path, body=body, allow=(409,))
        return status != 409

    async def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        """A JSON merge patch (lists are replaced whole); None when the object is gone."""
        _, result = await self._send(
            "PATCH", path, body=body, content_type="application/merge-patch+json", allow=(404,)
        )
        return result

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> bool:
        """Delete; False when it was already gone (or its uid precondition failed)."""
        status, _ = await self._send("DELETE", path, body=body, allow=(404, 409))
        return status not in (404, 409)
