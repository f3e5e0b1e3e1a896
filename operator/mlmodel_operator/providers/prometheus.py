"""The `prometheus` provider: the runtime's counters and histograms of each revision
from the Prometheus HTTP API, one instant query per series family summed over the
revision's pods, scoped by the labels a standard Kubernetes pod scrape configuration
adds (`namespace`, and the pod label `mlops.dev/revision` as `mlops_dev_revision`; see
examples/prometheus.yaml).

The values are cumulative, like the `scrape` provider's: the analysis takes the
window's difference against the values kept at its start. Not `increase(...[interval])`:
over a window of a few scrape intervals that misses or invents requests (a range
holding one sample has no increase at all; extrapolation to the range's edges turns 8
requests into 10.7), and an interval judged on no data is Inconclusive for nothing.

Custom metrics are the user's PromQL with {{namespace}}, {{name}}, {{revision}} and
{{interval}} filled in; their value is the query's single result.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp

from mlmodel_operator.analysis import MetricSpec
from mlmodel_operator.analysis_loop import Reading
from mlmodel_operator.metricstext import Histogram, Snapshot

TIMEOUT_S = 5.0


class PrometheusError(RuntimeError):
    pass


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def render_query(query: str, *, namespace: str, name: str, revision: str, interval_s: float) -> str:
    for key, value in (
        ("namespace", namespace),
        ("name", name),
        ("revision", revision),
        ("interval", _duration(interval_s)),
    ):
        query = query.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    return query


async def _query(session: aiohttp.ClientSession, url: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql}) as reply:
        body = await reply.json(content_type=None)
        if reply.status != 200 or body.get("status") != "success":
            raise PrometheusError(f"{promql!r}: {body.get('error', reply.status)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _by(results: list[dict[str, Any]], label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for series in results:
        value = float(series["value"][1])
        if not math.isnan(value):
            key = series["metric"].get(label, "")
            values[key] = values.get(key, 0.0) + value
    return values


def _histogram(buckets: dict[str, float]) -> Histogram | None:
    if not buckets:
        return None
    pairs = sorted((float(le), count) for le, count in buckets.items())
    total = pairs[-1][1] if pairs else 0.0
    return Histogram(buckets=tuple(pairs), count=total, sum=0.0)


async def _revision(session: aiohttp.ClientSession, url: str, selector: str) -> Snapshot:
    async def total(metric: str, by: str) -> dict[str, float]:
        return _by(await _query(session, url, f"sum by ({by}) ({metric}{{{selector}}})"), by)

    # Four independent queries: in flight together, not one after the other.
    requests, latency, classes, values = await asyncio.gather(
        total("mlmodel_requests_total", "code"),
        total("mlmodel_request_duration_seconds_bucket", "le"),
        total("mlmodel_predictions_total", "class"),
        total("mlmodel_prediction_value_bucket", "le"),
    )
    return Snapshot(
        requests=requests,
        latency=_histogram(latency),
        classes=classes,
        values=_histogram(values),
    )


async def read(
    session: aiohttp.ClientSession,
    *,
    url: str,
    namespace: str,
    name: str,
    stable: str,
    canary: str,
    interval_s: float,
    custom: tuple[MetricSpec, ...] = (),
) -> Reading:
    def selector(revision: str) -> str:
        return f'namespace="{namespace}",mlops_dev_revision="{revision}"'

    try:
        stable_snapshot = await _revision(session, url, selector(stable))
        canary_snapshot = await _revision(session, url, selector(canary))
        values: dict[str, float | None] = {}
        for metric in custom:
            promql = render_query(
                metric.query, namespace=namespace, name=name, revision=canary, interval_s=interval_s
            )
            results = await _query(session, url, promql)
            values[metric.key] = float(results[0]["value"][1]) if len(results) == 1 else None
    except (aiohttp.ClientError, OSError, TimeoutError, PrometheusError, ValueError) as error:
        return Reading(error=f"prometheus at {url}: {error}")
    return Reading(stable=stable_snapshot, canary=canary_snapshot, custom=values)
