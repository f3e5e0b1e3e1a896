"""`mlmodel-operator`: validate settings, win the Lease, then run kopf and the work queue.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when leadership was lost
or the operator failed (the pod restarts and waits as a standby), 2 for invalid
settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from mlmodel_operator import watch_expiry
from mlmodel_operator.controller import Controller
from mlmodel_operator.handlers import build_registry
from mlmodel_operator.kube import KubeClient
from mlmodel_operator.leader import LeaderElector
from mlmodel_operator.operator_metrics import OperatorMetrics
from mlmodel_operator.settings import Settings, SettingsError, parse_settings

logger = logging.getLogger("mlmodel_operator")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("kopf").setLevel(logging.WARNING)


async def _serve_health(address: str, registry: CollectorRegistry) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = address.rpartition(":")
    await web.TCPSite(runner, host, int(port)).start()
    return runner


async def run(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    client = KubeClient(on_response=metrics.api_request)
    watch_expiry.install(metrics.watch_expiry)
    health = await _serve_health(settings.health_address, registry)
    elector = LeaderElector(
        client,
        namespace=settings.lease_namespace,
        name=settings.lease_name,
        identity=settings.identity,
        duration_s=settings.lease_duration_seconds,
    )
    try:
        if settings.leader_election and not await elector.acquire(stop):
            return 0
        controller = Controller(
            client,
            settings,
            metrics,
            fence=elector.holds if settings.leader_election else lambda: True,
            watch_children=True,
        )
        controller.start()
        kopf_stop: asyncio.Future[None] = loop.create_future()
        operator = asyncio.create_task(
            kopf.operator(
                registry=build_registry(controller),
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=list(settings.namespaces),
                stop_flag=kopf_stop,
                # kopf would otherwise name itself after the user, and the image's
                # user 65532 has no passwd entry: getpass fails in a real container.
                # (kopf types it as its Identity, a NewType of str it does not export.)
                identity=settings.identity,  # type: ignore[arg-type]
            ),
            name="kopf",
        )
        waiters = {asyncio.create_task(stop.wait(), name="stop"), operator}
        if settings.leader_election:
            waiters.add(asyncio.create_task(elector.hold(), name="lease"))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        lost = any(t.get_name() == "lease" for t in done)
        if not kopf_stop.done():
            kopf_stop.set_result(None)
        # kopf installs its own SIGTERM/SIGINT handlers: its clean return is a clean stop.
        failed = False
        try:
            await operator
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("the operator failed")
            failed = True
        await controller.stop()
        for task in waiters:
            task.cancel()
        if lost or failed:
            return 1
        if settings.leader_election:
            await elector.release()
        return 0
    finally:
        await health.cleanup()
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except SettingsError as error:
        print(f"mlmodel-operator: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_format)
    logger.info(
        "starting: runtime image %s, namespaces %s, leader election %s as %s",
        settings.runtime_image,
        ",".join(settings.namespaces) or "all",
        "on" if settings.leader_election else "off",
        settings.identity,
    )
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
