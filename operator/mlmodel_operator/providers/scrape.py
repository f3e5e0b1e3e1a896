"""The `scrape` provider (the default; no Prometheus needed): the operator reads the
`/metrics` of every ready pod of the stable and the canary revision itself, on the pod's
IP and `http` container port, exactly as Prometheus would, and adds them up per
revision. Only pods the revision's Deployment controls are read (the controller
passes no others), and answers are bounded (`providers.http`). The counters are
cumulative: `analysis_loop` takes windows against the snapshots it kept in status at
the start of the interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from mlmodel_operator.analysis.exposition import MetricsTextError, Snapshot, parse
from mlmodel_operator.analysis.loop import Reading
from mlmodel_operator.naming import HTTP_PORT
from mlmodel_operator.providers.http import ProviderError, describe, get_bounded

# The runtime's exposition is a few KiB (a few more per class of a classifier).
MAX_BYTES = 2 * 1024 * 1024


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    return bool(status.get("podIP")) and conditions.get("Ready") == "True"


def _port(pod: Mapping[str, Any]) -> int:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == "http":
                return int(port["containerPort"])
    return HTTP_PORT


def metrics_url(pod: Mapping[str, Any]) -> str:
    return f"http://{pod['status']['podIP']}:{_port(pod)}/metrics"


async def _read_pod(session: aiohttp.ClientSession, pod: Mapping[str, Any]) -> Snapshot:
    url = metrics_url(pod)
    try:
        body = await get_bounded(session, url, limit=MAX_BYTES)
        return parse(body.decode("utf-8", errors="replace"))
    except (ProviderError, MetricsTextError, aiohttp.ClientError, OSError) as error:
        raise ProviderError(f"{_named(pod)}: {describe(error)}") from None


def _named(pod: Mapping[str, Any]) -> str:
    return f"pod {pod['metadata'].get('name', '?')} at {metrics_url(pod)}"


async def read_revision(
    session: aiohttp.ClientSession, pods: Sequence[Mapping[str, Any]]
) -> Snapshot | None:
    """The ready pods of one revision added together (None when none is ready)."""
    return _added(await asyncio.gather(*(_read_pod(session, p) for p in pods if _ready(p))))


def _added(snapshots: Sequence[Snapshot]) -> Snapshot | None:
    """One revision's pods as Prometheus's `sum` would see them (None for no pod)."""
    if not snapshots:
        return None
    total = snapshots[0]
    for snapshot in snapshots[1:]:
        total = total.merge(snapshot)
    return total


async def read(
    session: aiohttp.ClientSession,
    *,
    stable_pods: Sequence[Mapping[str, Any]],
    canary_pods: Sequence[Mapping[str, Any]],
    timeout_s: float | None = None,
) -> Reading:
    """Both revisions' ready pods at once, each revision added up. Any pod that fails
    or has not answered within `timeout_s` makes the whole reading an error that names
    it: a revision is never judged on some of its pods, which would count only part of
    its traffic. Naming the pod matters most for a hung one (its process stopped, its
    node frozen): the readiness probe takes it out of the Service only seconds later,
    and until then the analysis says which pod held the interval up. The caller keeps
    its own deadline on the whole read as well."""
    roles = (("stable", stable_pods), ("canary", canary_pods))
    reads = {
        asyncio.ensure_future(_read_pod(session, pod)): (role, pod)
        for role, pods in roles
        for pod in pods
        if _ready(pod)
    }
    pending: set[asyncio.Future[Snapshot]] = set()
    try:
        if reads:
            _, pending = await asyncio.wait(reads, timeout=timeout_s)
    finally:
        for task in reads:
            task.cancel()
    if pending:
        silent = [_named(reads[task][1]) for task in reads if task in pending]
        shown = ", ".join(silent[:3]) + (f" and {len(silent) - 3} more" if len(silent) > 3 else "")
        return Reading(
            error=f"scraping the pods failed: no answer within {timeout_s:g} s from {shown}"
        )
    for task in reads:
        if isinstance(error := task.exception(), ProviderError):
            return Reading(error=f"scraping the pods failed: {error}")
    stable, canary = (
        _added([task.result() for task, (of, _) in reads.items() if of == role])
        for role, _ in roles
    )
    return Reading(stable=stable, canary=canary)
