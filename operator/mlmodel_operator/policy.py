"""The cluster administrator's policies, checked against an MLModel before anything is done.

Pure. Whoever may create MLModels chooses URLs the operator will contact, hostnames and
gateways their routes claim, and whether a pickle is unpickled; the operator acts on
their behalf with its own permissions, so the administrator's flags (`settings.py`)
bound those choices. A violation blocks the MLModel with a message saying which policy
refused what; nothing is applied and a stable that serves keeps serving. The
ValidatingAdmissionPolicy examples in manifests/policies/ refuse the same things at
`kubectl apply` time; these checks hold even where no such policy is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mlmodel_operator.routers import router_for
from mlmodel_operator.settings import Settings

if TYPE_CHECKING:  # spec.py imports webhooks.py, which imports this module
    from mlmodel_operator.spec import MLModelSpec


def _parts(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = str(parts.port or (443 if scheme == "https" else 80))
    except ValueError:  # a port that is not a number: "*" in an allow-list entry
        port = parts.netloc.rsplit(":", 1)[-1]
    return scheme, host, port, parts.path.rstrip("/")


def url_allowed(url: str, allowed: Iterable[str]) -> bool:
    """`url` has the scheme, host and port of an allowed entry and lies under its path.

    Entries are URLs; a port of `*` allows every port of that host. Userinfo, a query or
    a fragment in `url` is never allowed: none is needed to reach a Prometheus API.
    """
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment:
        return False
    scheme, host, port, path = _parts(url)
    for entry in allowed:
        want_scheme, want_host, want_port, want_path = _parts(entry)
        if (scheme, host) != (want_scheme, want_host) or want_port not in ("*", port):
            continue
        if path == want_path or path.startswith(want_path + "/") or not want_path:
            return True
    return False


def display_url(url: str) -> str:
    """A URL without userinfo, query or fragment, fit to appear in status and Events."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def allowed_prometheus(settings: Settings) -> tuple[str, ...]:
    return tuple(u for u in (settings.prometheus_url, *settings.allowed_prometheus_urls) if u)


def _hostname_allowed(hostname: str, allowed: Iterable[str]) -> bool:
    hostname = hostname.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if hostname.endswith(pattern[1:]) and hostname != pattern[2:]:
                return True
        elif hostname == pattern:
            return True
    return False


def violations(
    spec: MLModelSpec, *, namespace: str, prometheus_urls: Sequence[str], settings: Settings
) -> list[str]:
    """Why the administrator's policies refuse this MLModel (empty: they do not).

    `prometheus_urls`: the URLs its analysis and monitoring would read."""
    found = []
    if settings.forbid_unsafe_pickle and spec.model.allow_unsafe_pickle:
        found.append(
            "model.allowUnsafePickle is forbidden in this cluster (--forbid-unsafe-pickle); "
            "save the model with skops"
        )
    for prometheus_url in dict.fromkeys(u for u in prometheus_urls if u):
        if url_allowed(prometheus_url, allowed_prometheus(settings)):
            continue
        allowed = ", ".join(allowed_prometheus(settings)) or "none is configured"
        found.append(
            f"Prometheus URL {display_url(prometheus_url)} is not allowed by the operator's policy "
            f"(allowed: {allowed}; see --allowed-prometheus-urls)"
        )
    for hook in spec.rollout.webhooks:
        if not url_allowed(hook.url, settings.allowed_webhook_urls):
            allowed = ", ".join(settings.allowed_webhook_urls) or "none is configured"
            found.append(
                f"{hook.type} webhook {display_url(hook.url)} is not allowed by the operator's "
                f"policy (allowed: {allowed}; see --allowed-webhook-urls)"
            )
    claims = router_for(spec.traffic.router).attachments(spec.traffic.settings, namespace)
    if settings.allowed_gateways:
        for gateway in claims.gateways:
            if gateway not in settings.allowed_gateways:
                found.append(
                    f"gateway {gateway} is not one MLModels may attach to (--allowed-gateways)"
                )
    if settings.allowed_hostnames:
        for hostname in claims.hostnames:
            if not _hostname_allowed(hostname, settings.allowed_hostnames):
                found.append(
                    f"hostname {hostname} is not one MLModels may claim (--allowed-hostnames)"
                )
    return found
