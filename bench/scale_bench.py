"""Scale benchmark: one operator with 500, 1,000 and 2,000 MLModels, then 100 canaries
progressing at once (issue 16).

    .venv/bin/python -m localenv.sandbox -- env PYTHONPATH=. .venv/bin/python \\
        bench/scale_bench.py [--models 500,1000,2000] [--canaries 100] [--workers 4] \\
        [--parallel 8] [--json PATH]

For each size N, a fresh local control plane (etcd, kube-apiserver, controller manager,
scheduler, kwok with 2 fake nodes; kwok runs the pods, which serve nothing) with the
CRDs and the RBAC of `manifests/`, and one `mlmodel-operator` process clusterwide as its
ServiceAccount (leader election on, `--workers`). Then N MLModels (1 replica each) are
applied at once: `--parallel` `kubectl apply --server-side` processes, each with its
share of one multi-document manifest, as a GitOps tool syncing a large repository does.
Measured:

- **all Healthy**: from the start of the apply until every MLModel reported `Healthy`
  (a `kubectl get --watch` on MLModels with their phase);
- **apply -> Deployment**: per model, its Deployment first seen on a Deployments watch
  minus the MLModel first seen on the MLModels watch (both watches carry the same
  delay), median and p99; and when the last Deployment appeared;
- **the operator**: VmRSS sampled every 0.5 s (peak, and once all are Healthy), CPU
  seconds, and API requests per reconcile (the operator's own counters on /metrics:
  `mlmodel_operator_api_requests_total` over the reconcile histogram's count);
- **the rest**: CPU seconds of etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler and kwok over the same time, so the wall time can be apportioned;
- **one more at that size**: with the N models Healthy (their resyncs going on),
  `--probes` more applied one at a time in another namespace (as
  `bench/operator_bench.py` does): MLModel seen -> Deployment seen, median and p99.

After the last size, on the same plane (its N models still there and watched),
`--canaries` more MLModels in their own namespace are made Healthy at v1, then all
moved to v2 at once: steps 10% and 50% with a pause of 10 s each, then 100%, under
interval analysis every 5 s (error rate, minSamples 10) read from a real Prometheus.
kwok's pods serve no metrics, so Prometheus scrapes a stand-in: an exporter in this
process that serves `mlmodel_requests_total` for each revision the MLModels' status
names, growing by 20 requests/s, all 200, as a healthy runtime's pods would. Measured
from the operator's own timestamps in status (every status write seen on the watch):

- **step overrun**: next step's `stepStartedAt` - this step's - its pause; a step with
  analysis ends only after an interval has ended, so the overrun includes that wait;
- **interval overrun**: next `analysis.windowStart` - this one - the interval: how late
  the reading that ended an interval was taken; and the verdict of every judged
  interval (a step is held past its pause until an interval passed);
- **where the operator's time went** meanwhile: count, p50 and p99 of the operator's
  queue wait by priority, requeue timer lateness and reconcile stages (read, decide,
  write), from its histograms read before and after (`TIMINGS`), over every reconcile
  it made, the N models' too.

Prints a summary; `--json` writes the raw figures. Everything started is stopped on
exit, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from operator_bench import (
    Operator,
    cpu_seconds,
    is_deployment_of,
    measure_latency,
    operator_on_plane,
    percentile,
    run_in_directory,
    streaming,
    vm_rss_mib,
    watch,
)
from prometheus_client.parser import text_string_to_metric_families

from localenv.controlplane.cluster import ControlPlane
from localenv.prometheus import Prometheus
from mlmodel_operator.operator_metrics import PRIORITIES, STAGES

SIZE_NAMESPACE = "scale"
CANARY_NAMESPACE = "scale-canary"
PAUSE_S = 10.0
INTERVAL_S = 5.0
WEIGHTS = (10, 50, 100)
EXPORTED_RATE = 20.0  # requests/s the stand-in exporter adds to each revision
STATUS_FIELDS = (
    "{.metadata.name}",
    "{.status.phase}",
    "{.status.stable.revision}",
    "{.status.canary.revision}",
    "{.status.canary.step}",
    "{.status.canary.stepStartedAt}",
    "{.status.analysis.windowStart}",
    "{.status.analysis.interval}",
    "{.status.analysis.verdict}",
)


def mlmodel(name: str, namespace: str, version: str = "v1", **rollout: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": f"s3://models/{name}/{version}/model.skops", "version": version},
        "serving": {"replicas": 1},
    }
    if rollout:
        spec["rollout"] = rollout
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def canary_rollout(prometheus_url: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"weight": w, "pause": {"duration": f"{PAUSE_S:g}s"}} for w in WEIGHTS[:-1]
    ]
    steps.append({"weight": WEIGHTS[-1]})
    return {
        "steps": steps,
        "analysis": {
            "provider": {"prometheus": {"url": prometheus_url}},
            "interval": f"{INTERVAL_S:g}s",
            "minSamples": 10,
            "failureLimit": 1,
            "metrics": [{"name": "error-rate", "max": 0.05}],
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ---- what the MLModels report -------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    at: float  # monotonic
    name: str
    phase: str
    stable: str
    canary: str
    step: str
    step_started_at: str
    window_start: str
    interval: str  # judged intervals of the attempt so far
    verdict: str  # of the last one


@dataclass
class StatusWatch:
    """Every MLModel event of a namespace as `kubectl get --watch` prints it, timed."""

    process: subprocess.Popen[str]
    seen: list[Seen] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    latest: dict[str, Seen] = field(default_factory=dict)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.rstrip("\n").split("|")
            if len(parts) != len(STATUS_FIELDS):
                continue
            entry = Seen(time.monotonic(), *parts)
            with self.changed:
                self.seen.append(entry)
                self.latest[entry.name] = entry
                self.changed.notify_all()

    def first_seen(self) -> dict[str, float]:
        with self.changed:
            out: dict[str, float] = {}
            for entry in self.seen:
                out.setdefault(entry.name, entry.at)
            return out

    def first_healthy(self) -> dict[str, float]:
        with self.changed:
            out: dict[str, float] = {}
            for entry in self.seen:
                if entry.phase == "Healthy":
                    out.setdefault(entry.name, entry.at)
            return out

    def wait_all(self, names: set[str], done: Any, what: str, timeout: float, check: Any) -> float:
        """Until `done(latest)` holds for every name; when it first did."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                left = [n for n in names if n not in self.latest or not done(self.latest[n])]
                if not left:
                    return time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(left)}/{len(names)} not {what} after {timeout:.0f} s")
                self.changed.wait(timeout=min(1.0, remaining))
                check()

    def revisions(self) -> list[tuple[str, str]]:
        """(name, revision) of every stable and canary revision seen so far."""
        with self.changed:
            found = set()
            for entry in self.seen:
                for revision in (entry.stable, entry.canary):
                    if revision:
                        found.add((entry.name, revision))
            return sorted(found)


def status_watch(plane: ControlPlane, namespace: str) -> AbstractContextManager[StatusWatch]:
    template = "|".join(STATUS_FIELDS) + "{'\\n'}"
    args = ("get", "mlmodels", "-n", namespace, "--watch", "-o", f"jsonpath={template}")
    return streaming(plane, args, lambda process: StatusWatch(process=process))


# ---- the operator's side ------------------------------------------------------------


@dataclass
class Sampler:
    """VmRSS of the operator every 0.5 s while running."""

    pid: int
    peak: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                rss = vm_rss_mib(self.pid)
            except (OSError, RuntimeError):
                return
            self.samples.append((time.monotonic(), rss))
            self.peak = max(self.peak, rss)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)


def operator_samples(port: int) -> list[Any]:
    """Every sample of the operator's /metrics now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def operator_counters(port: int) -> dict[str, float]:
    """API requests and reconciles so far, from the operator's /metrics."""
    out: dict[str, float] = {"reconciles": 0.0}
    for sample in operator_samples(port):
        if sample.name == "mlmodel_operator_api_requests_total":
            key = f"{sample.labels['method']} {sample.labels['resource']}"
            out[key] = out.get(key, 0.0) + sample.value
        elif sample.name == "mlmodel_operator_reconcile_duration_seconds_count":
            out["reconciles"] += sample.value
    return out


# Where a reconcile's time goes (the operator's histograms; docs/operations.md), built
# from the operator's own label values so a new priority or stage shows up here too.
TIMINGS: dict[str, tuple[str, tuple[str, str] | None]] = {
    **{
        f"queue wait, {priority}": ("mlmodel_operator_queue_wait_seconds", ("priority", priority))
        for priority in PRIORITIES
    },
    "requeue timer lateness": ("mlmodel_operator_requeue_lateness_seconds", None),
    **{stage: ("mlmodel_operator_reconcile_stage_seconds", ("stage", stage)) for stage in STAGES},
}


def operator_timings(port: int) -> dict[str, dict[float, float]]:
    """Each of `TIMINGS` as its cumulative buckets now: upper bound -> count."""
    out: dict[str, dict[float, float]] = {what: {} for what in TIMINGS}
    for sample in operator_samples(port):
        for what, (name, label) in TIMINGS.items():
            if sample.name != f"{name}_bucket":
                continue
            if label is None or sample.labels.get(label[0]) == label[1]:
                out[what][float(sample.labels["le"])] = sample.value
    return out


def timing_quantiles(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, dict[str, float]]:
    """Count, p50 and p99 of what each histogram observed between the two readings,
    interpolated within a bucket as PromQL's histogram_quantile does (so as coarse as
    the buckets: 0.5 / 1 / 2.5 / 5 / 10 s near the figures that matter here)."""
    out = {}
    for what in TIMINGS:
        bounds = sorted(after[what])
        counts = [after[what][b] - before[what].get(b, 0.0) for b in bounds]
        total = counts[-1] if counts else 0.0
        figures = {"count": total}
        for q in (0.5, 0.99):
            figures[f"p{int(q * 100)}_s"] = _bucket_quantile(q, bounds, counts)
        out[what] = figures
    return out


def _bucket_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bucket: its bound, as PromQL
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def component_cpu(plane: ControlPlane) -> dict[str, float]:
    out = {}
    for component in plane.components:
        try:
            out[component.name] = cpu_seconds(component.process.pid)
        except (OSError, IndexError):
            continue
    return out


def apply_parallel(plane: ControlPlane, objects: list[dict[str, Any]], parallel: int) -> None:
    """`parallel` `kubectl apply --server-side` at once, each with its share."""
    shares = [objects[i::parallel] for i in range(parallel) if objects[i::parallel]]
    processes = [
        subprocess.Popen(
            [
                *(str(plane.kubectl_path), "--kubeconfig", str(plane.kubeconfig)),
                *("apply", "--server-side", "--field-manager=bench", "-f", "-"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in shares
    ]
    for process, share in zip(processes, shares, strict=True):
        assert process.stdin is not None
        process.stdin.write(yaml.safe_dump_all(share))
        process.stdin.close()
    for process in processes:
        assert process.stderr is not None
        errors = process.stderr.read()
        if process.wait(timeout=600) != 0:
            raise RuntimeError(f"kubectl apply failed: {errors[-2000:]}")


# ---- one size -----------------------------------------------------------------------


@dataclass
class Cluster:
    plane: ControlPlane
    operator: Operator
    metrics_port: int


@contextmanager
def cluster(directory: Path, workers: int, prometheus_url: str = "") -> Iterator[Cluster]:
    port = free_port()
    extra = [f"--workers={workers}", f"--health-address=127.0.0.1:{port}"]
    if prometheus_url:
        extra.append(f"--prometheus-url={prometheus_url}")
    with operator_on_plane(directory, *extra) as (plane, operator, _):
        yield Cluster(plane, operator, port)


def measure_size(
    c: Cluster, count: int, parallel: int, timeout: float, probes: int
) -> dict[str, Any]:
    plane, operator = c.plane, c.operator
    time.sleep(5)
    idle = vm_rss_mib(operator.process.pid)
    plane.kubectl("create", "namespace", SIZE_NAMESPACE)
    names = {f"m-{i:04d}" for i in range(count)}
    objects = [mlmodel(name, SIZE_NAMESPACE) for name in sorted(names)]
    with (
        status_watch(plane, SIZE_NAMESPACE) as models,
        watch(plane, "deployments", SIZE_NAMESPACE) as deployments,
        Sampler(operator.process.pid).running() as rss,
    ):
        time.sleep(1)  # the watches have listed the empty namespace
        counters_before = operator_counters(c.metrics_port)
        cpu_before = cpu_seconds(operator.process.pid)
        components_before = component_cpu(plane)
        started = time.monotonic()
        apply_parallel(plane, objects, parallel)
        applied = time.monotonic()
        healthy_at = models.wait_all(
            names, lambda s: s.phase == "Healthy", "Healthy", timeout, operator.check
        )
        cpu = cpu_seconds(operator.process.pid) - cpu_before
        components = {
            name: spent - components_before.get(name, 0.0)
            for name, spent in component_cpu(plane).items()
        }
        counters_after = operator_counters(c.metrics_port)
        rss_healthy = vm_rss_mib(operator.process.pid)
        created = models.first_seen()
        healthy = models.first_healthy()
        with deployments.changed:
            deployed = dict(deployments.first_seen)
    reaction = []
    last_deployment = 0.0
    for name in names:
        matches = is_deployment_of(name)
        at = min(t for d, t in deployed.items() if matches(d))
        reaction.append(at - created[name])
        last_deployment = max(last_deployment, at)
    by_request = {
        key: value - counters_before.get(key, 0.0)
        for key, value in counters_after.items()
        if key != "reconciles" and value > counters_before.get(key, 0.0)
    }
    reconciles = counters_after["reconciles"] - counters_before["reconciles"]
    return {
        "count": count,
        "rss_idle_mib": idle,
        "apply_s": applied - started,
        "all_deployments_s": last_deployment - started,
        "all_healthy_s": healthy_at - started,
        "apply_to_healthy_s": sorted(healthy[n] - created[n] for n in names),
        "mlmodel_seen_to_deployment_seen_s": sorted(reaction),
        "operator_cpu_s": cpu,
        "component_cpu_s": components,
        "rss_peak_mib": rss.peak,
        "rss_healthy_mib": rss_healthy,
        # With the N models Healthy (their resyncs and watches going on), new ones one at
        # a time: the reaction a person applying one more model sees at this size.
        "probe": measure_latency(plane, operator, probes) if probes else None,
        "api_requests": sum(by_request.values()),
        "api_requests_by_kind": by_request,
        "reconciles": reconciles,
        "load_average": os.getloadavg(),
    }


# ---- 100 canaries -------------------------------------------------------------------


class Exporter:
    """Serves `mlmodel_requests_total` for each revision `revisions()` names, growing by
    EXPORTED_RATE per second from when the revision was first named: the series a
    healthy runtime's pods would give Prometheus, which kwok's pods cannot."""

    def __init__(self, namespace: str, revisions: Any) -> None:
        self.namespace = namespace
        self.revisions = revisions
        self.born: dict[tuple[str, str], float] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self) -> str:
        now = time.monotonic()
        lines = ["# TYPE mlmodel_requests_total counter", "# TYPE mlmodel_info gauge"]
        for name, revision in self.revisions():
            born = self.born.setdefault((name, revision), now)
            labels = f'namespace="{self.namespace}",mlops_dev_revision="{revision}"'
            count = int((now - born) * EXPORTED_RATE)
            lines.append(f'mlmodel_requests_total{{{labels},code="200"}} {count}')
            lines.append(f'mlmodel_info{{{labels},model="{name}"}} 1')
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Overruns:
    steps: dict[int, list[float]]  # by the index of the step that overran
    intervals: list[float]
    verdicts: dict[str, int]  # of every judged interval


def overruns(seen: list[Seen]) -> Overruns:
    """Step and interval overruns, and the verdicts, from canary rollouts' status writes."""
    steps: dict[tuple[str, str], dict[int, float]] = {}
    windows: dict[tuple[str, str], set[float]] = {}
    judged: dict[tuple[str, str, str], str] = {}
    for entry in seen:
        if not entry.canary or not entry.step_started_at:
            continue
        key = (entry.name, entry.canary)
        step = int(entry.step)
        if step >= 0:
            steps.setdefault(key, {}).setdefault(step, float(entry.step_started_at))
        if entry.window_start:
            windows.setdefault(key, set()).add(float(entry.window_start))
        if entry.verdict:
            judged[(*key, entry.interval)] = entry.verdict
    by_step: dict[int, list[float]] = {}
    for started in steps.values():
        for step in sorted(started):
            if step + 1 in started and step < len(WEIGHTS) - 1:
                overrun = started[step + 1] - started[step] - PAUSE_S
                by_step.setdefault(step, []).append(overrun)
    interval_overrun = []
    for starts in windows.values():
        ordered = sorted(starts)
        for before, after in itertools.pairwise(ordered):
            interval_overrun.append(after - before - INTERVAL_S)
    verdicts: dict[str, int] = {}
    for verdict in judged.values():
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return Overruns(by_step, interval_overrun, verdicts)


def measure_canaries(
    c: Cluster, prometheus: Prometheus, count: int, parallel: int
) -> dict[str, Any]:
    plane, operator = c.plane, c.operator
    plane.kubectl("create", "namespace", CANARY_NAMESPACE)
    names = {f"c-{i:03d}" for i in range(count)}
    rollout = canary_rollout(prometheus.url)
    with (
        status_watch(plane, CANARY_NAMESPACE) as models,
        Sampler(operator.process.pid).running() as rss,
    ):
        exporter = Exporter(CANARY_NAMESPACE, models.revisions)
        try:
            prometheus.scrape_operators([exporter.port])
            apply_parallel(
                plane,
                [mlmodel(n, CANARY_NAMESPACE, "v1", **rollout) for n in sorted(names)],
                parallel,
            )
            models.wait_all(
                names, lambda s: s.phase == "Healthy" and s.stable, "Healthy", 600, operator.check
            )
            v1 = {n: models.latest[n].stable for n in names}
            time.sleep(3)  # Prometheus has scraped the stables' series
            cpu_before = cpu_seconds(operator.process.pid)
            timings_before = operator_timings(c.metrics_port)
            started = time.monotonic()
            apply_parallel(
                plane,
                [mlmodel(n, CANARY_NAMESPACE, "v2", **rollout) for n in sorted(names)],
                parallel,
            )
            done_at = models.wait_all(
                names,
                lambda s: (
                    s.phase == "Healthy" and s.stable not in ("", v1[s.name]) and not s.canary
                ),
                "promoted",
                900,
                operator.check,
            )
            cpu = cpu_seconds(operator.process.pid) - cpu_before
            timings = timing_quantiles(timings_before, operator_timings(c.metrics_port))
            with models.changed:
                seen = list(models.seen)
        finally:
            exporter.close()
    rolled_back = [n for n in names if models.latest[n].stable == v1[n]]
    found = overruns(seen)
    return {
        "count": count,
        "all_promoted_s": done_at - started,
        "least_possible_s": PAUSE_S * (len(WEIGHTS) - 1),
        "not_promoted": len(rolled_back),
        "step_overrun_s": sorted(x for values in found.steps.values() for x in values),
        "step_overrun_by_step_s": {str(k): sorted(v) for k, v in sorted(found.steps.items())},
        "interval_overrun_s": sorted(found.intervals),
        "verdicts": found.verdicts,
        "operator_cpu_s": cpu,
        "rss_peak_mib": rss.peak,
        "load_average": os.getloadavg(),
        "timings": timings,
    }


# ---- the run ------------------------------------------------------------------------


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"cpus": os.cpu_count(), "workers": args.workers, "sizes": []}
    for index, count in enumerate(args.models):
        last = index == len(args.models) - 1
        place = directory / f"size-{count}"
        prometheus = None
        if last and args.canaries:
            prometheus = Prometheus(
                place / "prometheus", place / "plane" / "kubeconfig", scrape_pods=False
            )
        with cluster(place, args.workers, prometheus.url if prometheus else "") as c:
            figures = measure_size(c, count, args.parallel, args.timeout, args.probes)
            result["sizes"].append(figures)
            print(size_line(figures), flush=True)
            if prometheus is not None:
                prometheus.start()
                try:
                    result["canaries"] = measure_canaries(
                        c, prometheus, args.canaries, args.parallel
                    )
                finally:
                    prometheus.stop()
                print(canary_line(result["canaries"]), flush=True)
    return result


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def size_line(f: dict[str, Any]) -> str:
    reaction = f["mlmodel_seen_to_deployment_seen_s"]
    others = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(f["component_cpu_s"].items()))
    per = f["api_requests"] / f["reconciles"] if f["reconciles"] else float("nan")
    probe = ""
    if f["probe"]:
        one = f["probe"]["mlmodel_seen_to_deployment_seen_s"]
        probe = (
            f"; then one more at a time ({len(one)}): MLModel -> Deployment median "
            f"{ms(statistics.median(one))}, p99 {ms(percentile(one, 0.99))}"
        )
    return (
        f"{f['count']} MLModels: applied in {f['apply_s']:.1f} s, all Deployments at "
        f"{f['all_deployments_s']:.1f} s, all Healthy at {f['all_healthy_s']:.1f} s; "
        f"MLModel -> Deployment median {ms(statistics.median(reaction))}, "
        f"p99 {ms(percentile(reaction, 0.99))}; operator CPU {f['operator_cpu_s']:.1f} s, "
        f"VmRSS idle {f['rss_idle_mib']:.0f} / peak {f['rss_peak_mib']:.0f} / Healthy "
        f"{f['rss_healthy_mib']:.0f} MiB; {f['api_requests']:.0f} API requests over "
        f"{f['reconciles']:.0f} reconciles ({per:.2f} each); CPU of the rest: {others}; "
        f"load {f['load_average'][0]:.1f}{probe}"
    )


def canary_line(f: dict[str, Any]) -> str:
    steps, intervals = f["step_overrun_s"], f["interval_overrun_s"]

    def spread(values: list[float]) -> str:
        if not values:
            return "none"
        return (
            f"p50 {statistics.median(values):+.2f} s, p99 {percentile(values, 0.99):+.2f} s, "
            f"max {max(values):+.2f} s (n={len(values)})"
        )

    return (
        f"{f['count']} canaries at once: all promoted after {f['all_promoted_s']:.1f} s "
        f"(pauses alone: {f['least_possible_s']:.0f} s), {f['not_promoted']} not promoted; "
        f"step overrun {spread(steps)}"
        + "".join(
            f"; step {int(k) + 1}: {spread(v)}" for k, v in f["step_overrun_by_step_s"].items()
        )
        + f"; interval overrun {spread(intervals)}; verdicts {f['verdicts']}; operator "
        f"CPU {f['operator_cpu_s']:.1f} s, VmRSS peak {f['rss_peak_mib']:.0f} MiB; "
        "meanwhile (all models' reconciles) "
        + ", ".join(
            f"{what} p50 {t['p50_s']:.3f} / p99 {t['p99_s']:.3f} s (n={t['count']:.0f})"
            for what, t in f["timings"].items()
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--models", type=lambda t: [int(x) for x in t.split(",")], default=[500, 1000, 2000]
    )
    parser.add_argument("--canaries", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--probes", type=int, default=20, help="models applied one at a time once all are Healthy"
    )
    parser.add_argument("--parallel", type=int, default=8, help="kubectl apply processes")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for all Healthy")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    run_in_directory("scale-bench-", run, args)  # each size's line is printed as it ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
