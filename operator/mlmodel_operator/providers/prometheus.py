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
import json
import math
import re

import aiohttp

from mlmodel_operator.analysis.exposition import (
    DURATION,
    INFO,
    INPUT_BUCKETS,
    INPUT_SHARES,
    OUTPUT_BUCKETS,
    OUTPUT_SHARES,
    PREDICTIONS,
    REQUESTS,
    SHED,
    VALUES,
    Histogram,
    Snapshot,
)
from mlmodel_operator.analysis.kinds import Series
from mlmodel_operator.analysis.loop import Reading, ReadRequest
from mlmodel_operator.providers.http import ProviderError, describe, get_bounded

# A `sum by (le)` answer is a few dozen series; a MiB is far beyond any honest answer.
MAX_BYTES = 1024 * 1024
_ERROR_TYPE = re.compile(r"^[a-z_]{1,32}$")


class PrometheusError(ProviderError):
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


def _vector(body: bytes) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of an instant-vector answer; anything else is refused without
    quoting it (the answer could be anything: only the allow-list vouches for the URL)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise PrometheusError("the answer is not JSON") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        kind = doc.get("errorType") if isinstance(doc, dict) else None
        detail = f" ({kind})" if isinstance(kind, str) and _ERROR_TYPE.match(kind) else ""
        raise PrometheusError(f"the query failed{detail}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        got = data.get("resultType") if isinstance(data, dict) else None
        shown = got if isinstance(got, str) and _ERROR_TYPE.match(got) else "something else"
        raise PrometheusError(f"expected an instant vector, got {shown}")
    series = []
    for item in data.get("result") or ():
        try:
            labels, (_, text) = item["metric"], item["value"]
            series.append(({str(k): str(v) for k, v in labels.items()}, float(text)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PrometheusError("a series of the answer is malformed") from None
    return series


async def _query(
    session: aiohttp.ClientSession, url: str, promql: str
) -> list[tuple[dict[str, str], float]]:
    body = await get_bounded(
        session, f"{url.rstrip('/')}/api/v1/query", params={"query": promql}, limit=MAX_BYTES
    )
    return _vector(body)


def _by(results: list[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for labels, value in results:
        if not math.isnan(value):
            key = labels.get(label, "")
            values[key] = values.get(key, 0.0) + value
    return values


def _histogram(buckets: dict[str, float]) -> Histogram | None:
    if not buckets:
        return None
    try:
        pairs = sorted((float(le), count) for le, count in buckets.items())
    except ValueError:
        raise PrometheusError("a histogram bucket bound is not a number") from None
    total = pairs[-1][1] if pairs else 0.0
    return Histogram(buckets=tuple(pairs), count=total, sum=0.0)


async def _revision(
    session: aiohttp.ClientSession, url: str, selector: str, series: frozenset[Series]
) -> Snapshot:
    """The series the metrics need, each summed over the revision's pods."""

    async def total(metric: str, by: str, wanted: bool) -> dict[str, float]:
        if not wanted:
            return {}
        return _by(await _query(session, url, f"sum by ({by}) ({metric}{{{selector}}})"), by)

    async def per_feature(aggregate: str, metric: str) -> dict[str, dict[str, float]]:
        if Series.INPUTS not in series:
            return {}
        query = f"{aggregate} by (feature, bucket) ({metric}{{{selector}}})"
        nested: dict[str, dict[str, float]] = {}
        for labels, value in await _query(session, url, query):
            if not math.isnan(value):
                nested.setdefault(labels.get("feature", ""), {})[labels.get("bucket", "")] = value
        return nested

    async def per_bucket(aggregate: str, metric: str) -> dict[str, float]:
        if Series.INPUTS not in series:
            return {}
        query = f"{aggregate} by (bucket) ({metric}{{{selector}}})"
        return _by(await _query(session, url, query), "bucket")

    # Independent queries: in flight together, not one after the other.
    (
        (requests, shed, pods, latency, classes, values),
        (inputs, shares, outputs, output_shares),
    ) = await asyncio.gather(
        asyncio.gather(
            total(REQUESTS, "code", Series.REQUESTS in series),
            total(SHED, "reason", Series.REQUESTS in series),
            total(INFO, "model", Series.REQUESTS in series),  # 1 per pod
            total(f"{DURATION}_bucket", "le", Series.LATENCY in series),
            total(PREDICTIONS, "class", Series.PREDICTIONS in series),
            total(f"{VALUES}_bucket", "le", Series.PREDICTIONS in series),
        ),
        asyncio.gather(
            per_feature("sum", INPUT_BUCKETS),
            per_feature("max", INPUT_SHARES),
            per_bucket("sum", OUTPUT_BUCKETS),
            per_bucket("max", OUTPUT_SHARES),
        ),
    )
    return Snapshot(
        requests=requests,
        shed=shed,
        pods=sum(pods.values()),
        latency=_histogram(latency),
        classes=classes,
        values=_histogram(values),
        inputs=inputs,
        input_baseline=shares,
        outputs=outputs,
        output_baseline=output_shares,
    )


async def read(
    session: aiohttp.ClientSession, request: ReadRequest, *, namespace: str, name: str
) -> Reading:
    """Both revisions and the custom queries at once; the caller bounds the time."""
    url = request.prometheus_url

    def selector(revision: str) -> str:
        return f'namespace="{namespace}",mlops_dev_revision="{revision}"'

    async def custom(query: str) -> float | None:
        promql = render_query(
            query,
            namespace=namespace,
            name=name,
            revision=request.canary,
            interval_s=request.interval_s,
        )
        results = await _query(session, url, promql)
        return results[0][1] if len(results) == 1 else None

    try:
        (stable, canary), values = await asyncio.gather(
            asyncio.gather(
                _revision(session, url, selector(request.stable), request.series),
                _revision(session, url, selector(request.canary), request.series),
            ),
            asyncio.gather(*(custom(metric.query) for metric in request.custom)),
        )
    except (aiohttp.ClientError, OSError, ProviderError) as error:
        return Reading(error=f"prometheus at {url}: {describe(error)}")
    return Reading(
        stable=stable,
        canary=canary,
        custom={m.key: v for m, v in zip(request.custom, values, strict=True)},
    )
