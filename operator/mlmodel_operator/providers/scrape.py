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
    except (ProviderError, MetricsTextError) as error:
        raise ProviderError(f"pod {pod['metadata'].get('name', '?')} at {url}: {error}") from None


async def read_revision(
    session: aiohttp.ClientSession, pods: Sequence[Mapping[str, Any]]
) -> Snapshot | None:
    """The ready pods of one revision added together (None when none is ready)."""
    ready = [p for p in pods if _ready(p)]
    if not ready:
        return None
    snapshots = await asyncio.gather(*(_read_pod(session, p) for p in ready))
    total = snapshots[0]
    for snapshot in snapshots[1:]:
        total = total.merge(snapshot)
    return total


async def read(
    session: aiohttp.ClientSession,
    *,
    stable_pods: Sequence[Mapping[str, Any]],
    canary_pods: Sequence[Mapping[str, Any]],
) -> Reading:
    """Both revisions at once; the caller bounds the time (one deadline per model)."""
    try:
        stable, canary = await asyncio.gather(
            read_revision(session, stable_pods), read_revision(session, canary_pods)
        )
    except (aiohttp.ClientError, OSError, ProviderError) as error:
        return Reading(error=f"scraping the pods failed: {describe(error)}")
    return Reading(stable=stable, canary=canary)
