"""The `scrape` provider (the default; no Prometheus needed): the operator reads the
`/metrics` of every ready pod of the stable and the canary revision itself, on the pod's
IP and `http` container port, exactly as Prometheus would, and adds them up per
revision. The counters are cumulative: `analysis_loop` takes windows against the
snapshots it kept in status at the start of the interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from mlmodel_operator.analysis_loop import Reading
from mlmodel_operator.desired import HTTP_PORT
from mlmodel_operator.metricstext import MetricsTextError, Snapshot, parse

TIMEOUT_S = 3.0


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
    async with session.get(metrics_url(pod)) as response:
        if response.status != 200:
            raise RuntimeError(f"{metrics_url(pod)} answered {response.status}")
        return parse(await response.text())


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
    try:
        stable, canary = await asyncio.wait_for(
            asyncio.gather(
                read_revision(session, stable_pods), read_revision(session, canary_pods)
            ),
            timeout=TIMEOUT_S,
        )
    except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError, MetricsTextError) as error:
        return Reading(error=f"scraping the pods failed: {error}")
    return Reading(stable=stable, canary=canary)
