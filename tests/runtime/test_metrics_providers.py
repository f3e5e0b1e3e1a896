"""The operator's metrics providers against hostile or broken servers on loopback.

A Prometheus URL is chosen by whoever writes an MLModel (within the administrator's
allow-list) and a pod's metrics by whatever runs in it, so the answers are tested as an
attacker would shape them: redirects, huge bodies, results of the wrong shape, and
text that must never reach status. The reader is also shown to keep one model's hanging
Prometheus from delaying another model's reading.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mlmodel_operator.analysis.loop import Reading, ReadRequest
from mlmodel_operator.metrics_reader import MetricsReader
from mlmodel_operator.providers import prometheus, scrape

pytestmark = pytest.mark.runtime

SECRET = "AKIA-SECRET-IN-THE-ANSWER"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 answering every path with `handler`; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    await web.SockSite(runner, listener).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        await runner.cleanup()


def request(url: str) -> ReadRequest:
    return ReadRequest(provider="prometheus", prometheus_url=url, stable="s1", canary="c1", due=0.0)


async def read_prometheus(handler: Handler) -> Reading:
    async with server(handler) as url, aiohttp.ClientSession() as session:
        return await prometheus.read(session, request(url), namespace="ns", name="iris")


def answer(data: Any, status: int = 200) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(data, status=status)

    return handle


def test_a_matrix_answer_is_an_error_not_a_crash() -> None:
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    reading = asyncio.run(read_prometheus(answer(matrix)))
    assert reading.error.endswith("expected an instant vector, got matrix")


def test_an_error_answer_is_reported_without_its_text() -> None:
    failure = {"status": "error", "errorType": "bad_data", "error": SECRET}
    reading = asyncio.run(read_prometheus(answer(failure, status=400)))
    assert "answered HTTP 400" in reading.error
    failure_200 = {"status": "error", "errorType": "bad_data", "error": SECRET}
    reading = asyncio.run(read_prometheus(answer(failure_200)))
    assert reading.error.endswith("the query failed (bad_data)")
    assert SECRET not in reading.error


def test_a_redirect_is_not_followed() -> None:
    followed: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/elsewhere":
            followed.append(request.path)
            return web.json_response({"status": "success"})
        raise web.HTTPFound("/elsewhere")

    reading = asyncio.run(read_prometheus(handle))
    assert "answered HTTP 302" in reading.error
    assert followed == []


def test_a_huge_answer_is_cut_off_without_taking_the_memory() -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the size shows while reading
        await response.prepare(request)
        chunk = b'{"pad": "' + b"x" * (1 << 20)
        for _ in range(64):
            await response.write(chunk)
        return response

    reading = asyncio.run(read_prometheus(handle))
    assert "more than 1048576 bytes" in reading.error


def test_a_pods_bad_exposition_never_reaches_the_reading() -> None:
    async def go() -> Reading:
        async def handle(_: web.Request) -> web.Response:
            return web.Response(text=f"mlmodel_requests_total{{code=}} {SECRET}\n")

        async with server(handle) as url, aiohttp.ClientSession() as session:
            port = int(url.rsplit(":", 1)[1])
            pod = {
                "metadata": {"name": "iris-abc"},
                "spec": {"containers": [{"ports": [{"name": "http", "containerPort": port}]}]},
                "status": {
                    "podIP": "127.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
            return await scrape.read(session, stable_pods=[pod], canary_pods=[pod])

    reading = asyncio.run(go())
    assert "not a Prometheus text exposition" in reading.error
    assert SECRET not in reading.error


def test_one_models_hanging_prometheus_does_not_delay_anothers_reading() -> None:
    vector = {"status": "success", "data": {"resultType": "vector", "result": []}}

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(4)  # well past the 1.5 s deadline
        return web.json_response(vector)

    async def go() -> tuple[dict[str, float], Reading | None, Reading | None]:
        arrived: dict[str, float] = {}
        both = asyncio.Event()
        started = time.monotonic()

        def on_read(_: str, name: str) -> None:
            arrived[name] = time.monotonic() - started
            if len(arrived) == 2:
                both.set()

        reader = MetricsReader(timeout_s=1.5, concurrency=4, on_read=on_read)
        async with server(hang) as slow, server(answer(vector)) as fast:
            reader.want(("ns", "stuck"), request(slow), {})
            reader.want(("ns", "quick"), request(fast), {})
            # `want` returns at once: a reconcile never waits for a read.
            assert time.monotonic() - started < 0.1
            await asyncio.wait_for(both.wait(), timeout=10)
            stuck, quick = reader.latest(("ns", "stuck")), reader.latest(("ns", "quick"))
        await reader.close()
        return arrived, stuck, quick

    arrived, stuck, quick = asyncio.run(go())
    assert arrived["quick"] < 1.0
    assert 1.4 < arrived["stuck"] < 3.0
    assert quick is not None
    assert quick.error == ""
    assert quick.taken_at is not None
    assert stuck is not None
    assert stuck.error == "prometheus: no answer within 1.5 s"


def pod_at(url: str, name: str) -> dict[str, Any]:
    """A Ready pod whose `http` port is the test server at `url`."""
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": port_of(url)}]}]},
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_hung_pod_is_named_and_its_revision_is_not_judged_on_the_others() -> None:
    """One of a canary's two pods accepts the scrape and never answers (a stopped
    process): at the metrics deadline the reading is an error naming that pod, not a
    canary added up from the pod that did answer."""
    exposition = 'mlmodel_requests_total{code="200"} 10\n'

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text=exposition)

    async def go() -> tuple[float, Reading | None]:
        done = asyncio.Event()
        reader = MetricsReader(timeout_s=1.0, concurrency=2, on_read=lambda *_: done.set())
        async with server(answer_text(exposition)) as ok, server(hang) as stuck:
            pods = {
                "s1": [pod_at(ok, "iris-s1-a")],
                "c1": [pod_at(ok, "iris-c1-a"), pod_at(stuck, "iris-c1-b")],
            }
            started = time.monotonic()
            reader.want(("ns", "iris"), replace(request(ok), provider="scrape"), pods)
            await asyncio.wait_for(done.wait(), timeout=10)
            took = time.monotonic() - started
            reading = reader.latest(("ns", "iris"))
        await reader.close()
        return took, reading

    took, reading = asyncio.run(go())
    assert 0.9 < took < 1.4, took  # the provider's own deadline, before the reader's guard
    assert reading is not None
    assert (reading.stable, reading.canary) == (None, None)
    assert reading.error.startswith("scraping the pods failed: no answer within 1 s from pod "), (
        reading
    )
    assert "iris-c1-b at http://127.0.0.1:" in reading.error
    assert "iris-c1-a" not in reading.error


def answer_text(text: str) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(text=text)

    return handle


def test_a_request_due_later_is_read_when_due_without_another_reconcile() -> None:
    """Sequential analysis asks for a reading a second after the last: the reader keeps
    the request and reads at its time by itself; a newer request replaces the waiting
    one, and `forget` cancels it."""
    vector = {"status": "success", "data": {"resultType": "vector", "result": []}}

    async def go() -> tuple[list[float], Reading | None, int]:
        arrived: list[float] = []
        started = time.monotonic()
        reader = MetricsReader(
            timeout_s=2, concurrency=2, on_read=lambda *_: arrived.append(time.monotonic())
        )
        async with server(answer(vector)) as url:
            soon = replace(request(url), due=time.time() + 0.4)
            reader.want(("ns", "m"), soon, {})
            assert not arrived  # not read yet: due later
            await asyncio.sleep(1.0)
            reading = reader.latest(("ns", "m"))
            reader.want(("ns", "gone"), replace(request(url), due=time.time() + 0.3), {})
            reader.forget(("ns", "gone"))
            await asyncio.sleep(0.6)
        await reader.close()
        return [a - started for a in arrived], reading, len(arrived)

    arrived, reading, count = asyncio.run(go())
    assert count == 1, arrived  # the forgotten request was never read
    assert 0.3 < arrived[0] < 0.9, arrived
    assert reading is not None
    assert reading.error == ""
