"""`make demo`: a whole progressive delivery on this machine, with real processes.

    python -m localenv.demo [--dir .demo] [--pause 10] [--rate 40] [--keep]
                            [--pods process|real] [--analysis interval|sequential]
                            [--dashboard PNG]

1. The local environment starts (localenv/environment.py), inside the network
   sandbox: control plane, kube-proxy, CoreDNS, operator, pod runner, Prometheus and
   the Traefik gateway. With `--pods real`, pods are real containers instead: a
   kubelet over containerd and runc runs the images built from the Dockerfiles (`make
   images`), the operator is installed with `kubectl apply -k manifests/`, and the
   models come from the kind quickstart's model store (v3 being its bad model, which
   never says versicolor); the analysis then scrapes the pods, as in the quickstart.
2. v1 (a random forest) is applied with kubectl and serves.
3. A load generator sends `--rate` inference requests/s to the gateway, which splits
   them by the weights of the MLModel's HTTPRoute.
4. v2 (a gradient-boosted model, as good) goes out as a canary: 10%, 30%, 60%, then
   100% of the traffic, judged against v1 from Prometheus every 2 s (error rate, p99
   latency, prediction divergence), and is promoted.
5. v3 (trained on shuffled labels: fast, error-free, and wrong) goes out the same way
   and is rolled back by prediction divergence alone.
6. With `--dashboard PNG`, every query of the Grafana dashboard (examples/grafana/)
   runs against the demo's Prometheus over the whole demo, and the panels are drawn
   to PNG (localenv.dashboard; `make dashboard-png` makes docs/images/ this way).

The live view is the plugin's (`kubectl mlmodel status -w`) plus the traffic by
version. Exit status 0 when all of that happened, 1 (with the reason and the logs'
tails) when not. `--keep` leaves everything running until Ctrl-C, to look around with
kubectl.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from localenv import dashboard, gateway, models, sandbox
from localenv.environment import POD_KINDS, EnvironmentBusy, LocalEnvironment
from localenv.install import STORE_URL
from localenv.loadgen import (
    RECORDED_FAILURES,
    LoadGenerator,
    LoadResult,
    gateway_url,
    until_answering,
)
from localenv.manifests import mlmodel
from mlmodel_operator.plugin import metric_figure, render

NAME = "iris"
MARKER = ".mlmodel-demo"  # a --dir holding this is the demo's own, and may be wiped
INTERVAL_S = 2
FAILURE_LIMIT = 1
POLL_S = 0.2
READY_TIMEOUT_S = 240.0
WEIGHTS = (10, 30, 60, 100)


class DemoFailed(RuntimeError):
    """Something did not happen as the demo says it does."""


# ---- the MLModel -------------------------------------------------------------------

METRICS: tuple[dict[str, Any], ...] = (
    {"name": "error-rate", "max": 0.01, "maxIncrease": 0.01},
    {"name": "latency-p99", "maxSeconds": 1.0},
    {"name": "prediction-divergence", "max": 0.1},
)


def demo_steps(pause_s: float, weights: Sequence[int] = WEIGHTS) -> list[dict[str, Any]]:
    """A step per weight, each but the last held `pause_s` seconds."""
    pause = {"duration": f"{pause_s:g}s"}
    return [{"weight": w, "pause": pause} for w in weights[:-1]] + [{"weight": weights[-1]}]


def manifest(
    namespace: str,
    *,
    model: Path | str,
    version: str,
    pause_s: float,
    provider: Mapping[str, Any],
    name: str = NAME,
    steps: Sequence[Mapping[str, Any]] | None = None,
    metrics: Sequence[Mapping[str, Any]] = METRICS,
    mode: str = "interval",
    env: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The demo's MLModel for one version: routed by an HTTPRoute, analysed every
    INTERVAL_S s. `model`: a file (read by the pod runner's pods) or a URL (the model
    store, for real pods). `provider`: `{"prometheus": {"url": ...}}` (the demo) or
    `{"scrape": {}}`; `steps` default to `demo_steps(pause_s)`; `mode`: the analysis
    mode (interval or sequential); `env`: extra environment of the serving container."""
    source: dict[str, Any] = (
        {"model_file": model}
        if isinstance(model, Path)
        else {"model": {"uri": model, "format": "skops"}}
    )
    serving: dict[str, Any] = {"serving": {"env": [dict(e) for e in env]}} if env else {}
    return mlmodel(
        name,
        namespace,
        version=version,
        **source,
        # No hostnames: the route takes the model's paths on any host, so
        # `curl $GATEWAY_URL/v2/models/iris/ready` works as printed by --keep.
        traffic=gateway.gateway_traffic(),
        **serving,
        rollout={
            "steps": list(steps) if steps is not None else demo_steps(pause_s),
            "analysis": {
                "provider": provider,
                "interval": f"{INTERVAL_S}s",
                "minSamples": 5,
                "failureLimit": FAILURE_LIMIT,
                "onInconclusive": "pause",
                "mode": mode,
                "metrics": list(metrics),
            },
            "scaleDownDelaySeconds": 5,
            "progressDeadlineSeconds": 180,
        },
    )


# ---- what the terminal shows -------------------------------------------------------


class Screen:
    """Narration lines, and the live view under them.

    On a terminal the screen is redrawn (the last narration lines, the plugin's status
    view, the traffic); elsewhere (CI, a pipe) only the narration is printed, a line
    at a time."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.view = ""
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        with self._lock:
            self.lines.append(line)
            if self.live and self.view:
                self._draw()
            else:
                self.out.write(line + "\n")
                self.out.flush()

    def show(self, view: str) -> None:
        with self._lock:
            if view != self.view:
                self.view = view
                if self.live:
                    self._draw()

    def stop_live(self) -> None:
        """Leave the live view: the view stays on screen, narration prints below it."""
        with self._lock:
            self.view = ""

    def _draw(self) -> None:
        rows = shutil.get_terminal_size((100, 40)).lines
        view_lines = self.view.splitlines()
        story = self.lines[-max(4, rows - len(view_lines) - 3) :]
        self.out.write("\x1b[H\x1b[2J" + "\n".join(story) + "\n\n" + self.view + "\n")
        self.out.flush()


def traffic_line(now: LoadResult, before: LoadResult) -> str:
    """Answers by model version between two snapshots of the load (about a second)."""
    versions = now.versions - before.versions
    errors = sum(now.failures().values()) - sum(before.failures().values())
    by_version = ", ".join(f"{v} {n}" for v, n in sorted(versions.items())) or "none"
    return f"  traffic  answers in the last second by version: {by_version}; errors: {errors}"


# ---- following one rollout ----------------------------------------------------------


@dataclass
class Rollout:
    """What one applied version did, as the demo saw it (times: time.monotonic())."""

    version: str
    applied_at: float
    outcome: str = ""  # Promoted | RolledBack, or "" while going on
    message: str = ""
    revision: str = ""
    canary_ready_at: float = 0.0
    ended_at: float = 0.0
    step_started: dict[int, float] = field(default_factory=dict)  # step -> stepStartedAt
    weights: list[int] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)

    def pause_overruns(self, pause_s: float, paused_steps: int = len(WEIGHTS) - 1) -> list[float]:
        """How much longer than its configured pause each paused step lasted (s), from
        the operator's own step start times in status."""
        steps = sorted(self.step_started)
        return [
            self.step_started[b] - self.step_started[a] - pause_s
            for a, b in itertools.pairwise(steps)
            if b == a + 1 and a < paused_steps
        ]


class Follower:
    """Polls the MLModel, narrates what changes, and records it in a `Rollout`."""

    def __init__(self, env: LocalEnvironment, screen: Screen, load: LoadGenerator | None):
        self.env = env
        self.screen = screen
        self.load = load
        self._traffic = LoadResult()  # the load's counts when the traffic line was drawn
        self._traffic_at = 0.0
        self._traffic_text = ""
        self._seen: dict[str, Any] = {}

    def until(
        self,
        done: Callable[[dict[str, Any]], bool],
        record: Rollout | None,
        *,
        timeout: float,
        what: str,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.env.check()
            body = self.env.mlmodel(NAME)
            status = body.get("status") or {}
            if record is not None:
                self._narrate(status, record)
            self._draw(body)
            if done(status):
                return status
            time.sleep(POLL_S)
        raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")

    def _draw(self, body: dict[str, Any]) -> None:
        if not body:
            return
        if self.load is not None and time.monotonic() - self._traffic_at >= 1.0:
            now = self.load.snapshot()
            self._traffic_text = traffic_line(now, self._traffic)
            self._traffic = now
            self._traffic_at = time.monotonic()
        self.screen.show(render(body) + ("\n" + self._traffic_text if self._traffic_text else ""))

    def _changed(self, key: str, value: Any) -> bool:
        if self._seen.get(key) == value:
            return False
        self._seen[key] = value
        return True

    def _narrate(self, status: dict[str, Any], record: Rollout) -> None:
        canary = status.get("canary") or {}
        version = record.version
        if canary.get("version") == version:
            record.revision = str(canary.get("revision", ""))
            step = int(canary.get("step", -1))
            if step >= 0 and not record.canary_ready_at:
                record.canary_ready_at = time.monotonic()
                self.screen.say(
                    f"{version} is ready ({record.canary_ready_at - record.applied_at:.1f} s "
                    f"after apply): the rollout starts"
                )
            if step >= 0 and "stepStartedAt" in canary:
                record.step_started.setdefault(step, float(canary["stepStartedAt"]))
            weight = int(canary.get("effectiveWeight", 0))
            if step >= 0 and self._changed(f"{version}/weight", weight) and weight:
                record.weights.append(weight)
                self.screen.say(
                    f"{version} takes {weight}% of the traffic "
                    f"(step {step + 1}/{canary.get('steps', '?')})"
                )
        analysis = status.get("analysis") or {}
        interval = int(analysis.get("interval", 0))
        # Until the new canary's first window starts, status still has the last one's.
        ours = str(analysis.get("attempt", "")).startswith(f"{record.revision}/")
        if ours and interval and self._changed(f"{version}/i", interval):
            record.verdicts[str(analysis.get("verdict"))] += 1
            figures = "; ".join(
                f"{m.get('name')} {metric_figure(m.get('canary'))} vs "
                f"{metric_figure(m.get('stable'))} ({m.get('verdict')})"
                for m in analysis.get("metrics") or ()
            )
            self.screen.say(f"  interval {interval}: {analysis.get('verdict')}: {figures}")
        phase = str(status.get("phase", ""))
        if self._changed(f"{version}/phase", phase) and phase in ("Paused", "Degraded"):
            self.screen.say(f"  {phase}: {status.get('message', '')}")


# ---- the story ---------------------------------------------------------------------


def promoted(status: dict[str, Any], version: str) -> bool:
    """`version` is the stable one, serving, and no canary is left."""
    return (
        status.get("phase") == "Healthy"
        and (status.get("stable") or {}).get("version") == version
        and not status.get("canary")
    )


def rolled_back(status: dict[str, Any], version: str) -> bool:
    return (
        status.get("phase") == "RolledBack"
        and (status.get("canary") or {}).get("version") == version
    )


@dataclass
class Demo:
    env: LocalEnvironment
    screen: Screen
    pause_s: float
    rate: float
    models: dict[str, Path | str]  # by version: a file, or the model store's URL
    provider: str = "prometheus"  # or "scrape": the operator reads the pods' /metrics
    bad_model: str = "trained on shuffled labels"  # what is wrong with v3
    analysis_mode: str = "interval"  # or "sequential"
    weights: Sequence[int] = WEIGHTS
    recorded_failures: int = RECORDED_FAILURES  # of the load: kept whole to explain them
    load: LoadGenerator | None = None
    rollouts: list[Rollout] = field(default_factory=list)

    def apply(
        self, version: str, *, mode: str = "", env: Sequence[Mapping[str, str]] = ()
    ) -> Rollout:
        body = manifest(
            self.env.namespace,
            model=self.models[version],
            version=version,
            pause_s=self.pause_s,
            provider=(
                {"scrape": {}}
                if self.provider == "scrape"
                else {"prometheus": {"url": self.env.prometheus_url}}
            ),
            steps=demo_steps(self.pause_s, self.weights),
            mode=mode or self.analysis_mode,
            env=env,
        )
        path = self.env.directory / f"{NAME}-{version}.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        self.screen.say(f"$ kubectl apply -f {path}")
        record = Rollout(version=version, applied_at=time.monotonic())
        self.env.kubectl("apply", "-f", str(path))
        self.rollouts.append(record)
        return record

    def follower(self) -> Follower:
        return Follower(self.env, self.screen, self.load)

    def run(self) -> None:
        self.serve_first("v1")
        self.start_load()
        self.good_canary("v2")
        self.bad_canary("v3")

    def serve_first(self, version: str) -> Rollout:
        record = self.apply(version)
        status = self.follower().until(
            lambda s: promoted(s, version),
            None,
            timeout=READY_TIMEOUT_S,
            what=f"{version} to serve",
        )
        record.ended_at = time.monotonic()
        record.outcome = "Healthy"
        self.screen.say(
            f"{version} serves ({record.ended_at - record.applied_at:.1f} s after apply: "
            f"converted to ONNX with a parity check, then served): {status.get('message', '')}"
        )
        return record

    def start_load(self) -> None:
        """Load through the gateway, from its first 200: the operator reports v1 serving
        when its pods are ready, and the gateway follows the route and the Service's
        endpoints a moment later (longer on a busy machine), as any gateway does."""
        url = gateway_url(self.env.gateway_url, NAME)
        body = models.infer_body(models.sample_rows()[0])
        began = time.monotonic()
        asyncio.run(until_answering(url, body=body))
        self.screen.say(f"the gateway routes to {NAME} ({time.monotonic() - began:.1f} s later)")
        self.load = LoadGenerator(  # until stop()
            url, body=body, rate=self.rate, recorded_failures=self.recorded_failures
        ).start()
        self.screen.say(
            f"load: {self.rate:g} requests/s to the gateway at {self.env.gateway_url}, "
            "which splits them by the HTTPRoute's weights"
        )

    def good_canary(self, version: str) -> Rollout:
        say = self.screen.say
        say(
            f"{version}: another good model, out as a canary through "
            + ", ".join(f"{w}%" for w in self.weights)
        )
        record = self.apply(version)
        status = self.follower().until(
            lambda s: promoted(s, version) or rolled_back(s, version),
            record,
            timeout=READY_TIMEOUT_S + 4 * self.pause_s + 60,
            what=f"{version} to be promoted",
        )
        record.ended_at = time.monotonic()
        record.message = str(status.get("message", ""))
        if (status.get("stable") or {}).get("version") != version:
            record.outcome = str(status.get("phase"))
            raise DemoFailed(f"{version} was not promoted: {record.message}")
        record.outcome = "Promoted"
        say(
            f"{version} promoted {record.ended_at - record.applied_at:.1f} s after apply "
            f"(through {', '.join(f'{w}%' for w in record.weights)})"
        )
        return record

    def bad_canary(
        self,
        version: str,
        *,
        mode: str = "",
        env: Sequence[Mapping[str, str]] = (),
        what: str = "it answers fast, without errors, wrongly",
    ) -> Rollout:
        """Roll out a bad canary and wait for its rollback; `mode` (else the demo's) and
        `env` (the serving container's) are the bench's, to compare analysis modes on a
        canary that fails requests."""
        say = self.screen.say
        say(f"{version}: {self.bad_model}: {what}")
        record = self.apply(version, mode=mode, env=env)
        status = self.follower().until(
            lambda s: promoted(s, version) or rolled_back(s, version),
            record,
            timeout=READY_TIMEOUT_S + 60,
            what=f"{version} to be rolled back",
        )
        record.ended_at = time.monotonic()
        record.message = str(status.get("message", ""))
        record.outcome = str(status.get("phase"))
        if record.outcome != "RolledBack":
            raise DemoFailed(f"{version} was not rolled back: {record.message}")
        say(f"{version} rolled back: {record.message}")
        self.wait_for_traffic_to_leave(record)
        return record

    def wait_for_traffic_to_leave(self, record: Rollout) -> None:
        """The rollback is complete when the canary answers no more requests."""
        assert self.load is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            last = self.load.snapshot().last_answer.get(record.revision, 0.0)
            if time.monotonic() - last > 2.0:
                return
            time.sleep(0.25)
        raise DemoFailed(f"{record.version} still answers requests after its rollback")


# ---- the summary --------------------------------------------------------------------


def summary(demo: Demo) -> list[str]:
    lines = ["", "summary"]
    load = demo.load.snapshot() if demo.load is not None else LoadResult()
    for record in demo.rollouts:
        took = record.ended_at - record.applied_at if record.ended_at else float("nan")
        lines.append(f"  {record.version}: {record.outcome or '-'} {took:.1f} s after apply")
        if record.canary_ready_at:
            lines.append(
                f"      canary ready {record.canary_ready_at - record.applied_at:.1f} s after "
                f"apply; intervals {dict(record.verdicts)}"
            )
        overruns = record.pause_overruns(demo.pause_s)
        if overruns:
            lines.append(
                f"      pauses of {demo.pause_s:g} s overran by "
                + ", ".join(f"{o:+.2f} s" for o in overruns)
            )
        first = load.first_answer.get(record.revision)
        if record.outcome == "RolledBack" and first:
            last = load.last_answer.get(record.revision, first)
            aim = FAILURE_LIMIT * INTERVAL_S + 5
            lines.append(
                f"      first answer to rollback in status: {record.ended_at - first:.1f} s; "
                f"to its last answer: {last - first:.1f} s (aim: failureLimit x interval + 5 s "
                f"= {aim} s)"
            )
    failures = ", ".join(f"{rev or '-'} {code}: {n}" for (rev, code), n in load.failures().items())
    lines.append(
        f"  traffic: {load.total} requests; answers by version {dict(load.versions)}; "
        f"failed: {failures or 'none'}"
    )
    # When, from whom and what: to read next to the gateway's access log and the pods'.
    since_boot = time.time() - time.monotonic()
    for failure in load.first_failures[:10]:
        sent = time.strftime("%H:%M:%S", time.gmtime(since_boot + failure.sent_at))
        lines.append(
            f"    {sent}Z {failure.revision or '-'} {failure.code}: {failure.detail[:160]}"
        )
    return lines


def keep_running(demo: Demo) -> None:
    """Print how to reach what runs (each `NAME=value` on its own line, for scripts),
    then wait for Ctrl-C or SIGTERM. Every address is inside the network sandbox:
    commands reach it through SANDBOX_EXEC."""
    env = demo.env
    venv_bin = Path(sys.executable).parent
    exec_prefix = shlex.join(sandbox.exec_prefix())
    print(
        f"\nKUBECONFIG={env.kubeconfig}\n"
        f"GATEWAY_URL={env.gateway_url}\n"
        f"SANDBOX_EXEC={exec_prefix}\n"
        "\nEverything keeps running (Ctrl-C stops it). The addresses exist only inside the "
        "network sandbox; in another terminal, with the three variables above exported:\n"
        f"  export PATH={env.plane.kubectl_path.parent}:{venv_bin}:$PATH\n"
        f"  $SANDBOX_EXEC kubectl get mlmodels,deployments,pods,httproutes -n {env.namespace}\n"
        f"  $SANDBOX_EXEC kubectl mlmodel status {NAME} -n {env.namespace} -w\n"
        f"  $SANDBOX_EXEC curl $GATEWAY_URL/v2/models/{NAME}/ready"
        + (f"\n  Prometheus: {env.prometheus_url}" if env.pods == "process" else ""),
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            env.check()
    except KeyboardInterrupt:
        pass


def draw_dashboard(env: LocalEnvironment, since: float, out: Path, screen: Screen) -> None:
    """Every query of examples/grafana/'s dashboard over the demo, drawn to `out`; a
    query without series fails the demo (the dashboard would show a hole)."""
    time.sleep(5)  # the last writes scraped (every second) and a rate window after them
    window = dashboard.Window(since, time.time(), scrape_s=1.0)
    board = dashboard.load()
    client = dashboard.Client(env.prometheus_url)
    try:
        run = dashboard.execute(board, client, window, {"namespace": env.namespace, "model": NAME})
    finally:
        client.close()
    if run.empty():
        raise DemoFailed("dashboard queries without series:\n" + "\n".join(run.empty()))
    dashboard.render(board, run, window, out, f"{env.namespace}/{NAME} (make demo)")
    screen.say(f"the dashboard's {len(run.panels)} panel queries drawn to {out}")


def prepare(directory: Path) -> None:
    """A fresh state directory: the demo's own from an earlier run is wiped."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise DemoFailed(f"{directory} exists and is not a demo directory; pick another --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("state of `make demo`; removed by the next run\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localenv.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="state and logs")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds at each step")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    parser.add_argument(
        "--no-live", action="store_true", help="print lines only, even on a terminal"
    )
    parser.add_argument(
        "--pods",
        choices=POD_KINDS,
        default="process",
        help="who runs the pods: the pod runner (processes) or a real kubelet (containers)",
    )
    parser.add_argument(
        "--analysis",
        choices=("interval", "sequential"),
        default="interval",
        help="the analysis mode of the MLModels (docs/analysis.md)",
    )
    parser.add_argument(
        "--dashboard",
        type=Path,
        metavar="PNG",
        help="at the end, run the Grafana dashboard's queries over the demo and draw them here",
    )
    args = parser.parse_args(argv)
    if args.dashboard and args.pods == "real":
        parser.error("--dashboard needs Prometheus, which --pods real does not run")
    directory: Path = args.dir.resolve()
    screen = Screen(sys.stdout, live=sys.stdout.isatty() and not args.no_live)
    env = LocalEnvironment(directory, say=screen.say, pods=args.pods)
    try:
        env.claim()  # before wiping: the directory may be a running demo's
        prepare(directory)
    except (EnvironmentBusy, DemoFailed) as error:
        env.stop()
        print(f"error: {error}", file=sys.stderr)
        return 2
    demo = Demo(
        env=env,
        screen=screen,
        pause_s=args.pause,
        rate=args.rate,
        models={},
        analysis_mode=args.analysis,
    )
    if args.pods == "real":
        # The quickstart's store trains them in the runtime image once it runs.
        demo.models = {v: f"{STORE_URL}/iris-{v}.skops" for v in ("v1", "v2", "v3")}
        demo.provider = "scrape"
        demo.bad_model = "its labels had versicolor merged into virginica"
    else:
        screen.say(f"training the models (state and logs in {directory})")
        model_dir = directory / "models"
        model_dir.mkdir()
        good = models.train_good(model_dir)
        shuffled = models.train_shuffled(model_dir)
        demo.models = {"v1": good["v1"], "v2": good["v2"], "v3": shuffled.path}
    code = 0
    try:
        env.start()
        started = time.time()  # the dashboard's range: from the first apply on
        demo.run()
        if args.dashboard:
            draw_dashboard(env, started, args.dashboard.resolve(), screen)
    except KeyboardInterrupt:
        code = 130
    except Exception as error:  # a component died, a timeout: say what, show the logs
        code = 1
        screen.stop_live()
        screen.say(f"FAILED: {error}")
        print(env.log_tails()[-8000:], file=sys.stderr)
        print(f"(every log is under {directory})", file=sys.stderr)
    finally:
        screen.stop_live()
        for line in summary(demo):
            print(line)
        if code == 0 and args.keep:
            try:
                keep_running(demo)
            except Exception as error:  # a component died while people looked around
                print(f"stopping: {error}", file=sys.stderr)
                code = 1
        if demo.load is not None:
            demo.load.stop()
        env.stop()
    print("demo complete" if code == 0 else f"demo failed (exit {code})", flush=True)
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
