"""Operator benchmark: reaction time and memory of the real operator on the local control plane.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/operator_bench.py [--latency-models 20]
        [--load-models 200] [--json PATH]

Starts etcd, kube-apiserver, controller manager, scheduler and kwok on loopback
(localenv/controlplane), installs the CRD and the RBAC of manifests/, and runs one
`mlmodel-operator` process clusterwide as its ServiceAccount (default resync,
leader election on). Then:

1. idle: resident memory (VmRSS) with 0 MLModels, 10 s after the operator holds
   its Lease;
2. latency: in namespace `bench-latency`, one warm-up MLModel (not counted), then
   N MLModels applied one at a time with `kubectl apply`; for each, the time from
   the MLModel appearing on a `kubectl get mlmodels --watch` stream to its
   Deployment appearing on a `kubectl get deployments --watch` stream (the
   operator's reaction), and from starting `kubectl apply` to the Deployment
   (what a person sees; includes kubectl's own start-up); the namespace is then
   deleted and awaited;
3. load: M MLModels (1 replica each) applied with one `kubectl apply` in
   namespace `bench-load`; the time until every one reports phase Healthy (kwok
   runs the pods), and VmRSS then.

Prints a summary and the load average around the run. Everything it starts
(control plane, operator, watches) is stopped on exit, also on failure or
Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import yaml

from localenv.controlplane.cluster import ControlPlane, start_control_plane
from localenv.operator_process import (
    OPERATOR_NAMESPACE,
    RUNTIME_IMAGE,
    install_operator_rbac,
)
from mlmodel_operator.revision import REVISION_LENGTH

LEASE = "mlmodel-operator-bench"
LATENCY_NAMESPACE = "bench-latency"
LOAD_NAMESPACE = "bench-load"


def mlmodel(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": f"s3://models/{name}/v1/model.skops", "version": "v1"},
            "serving": {"replicas": 1},
        },
    }


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


def wait_until(what: str, probe: Callable[[], bool], *, timeout: float, every: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the operator exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_operator(kubeconfig: Path, directory: Path, *extra: str) -> Operator:
    """The operator clusterwide (`--namespaces=` empty), as its ServiceAccount; `extra`
    flags come last, so they override the defaults here."""
    log = directory / "operator.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlmodel_operator.cli",
                "--namespaces=",
                f"--lease-namespace={OPERATOR_NAMESPACE}",
                f"--lease-name={LEASE}",
                "--identity=bench",
                "--health-address=127.0.0.1:0",
                f"--runtime-image={RUNTIME_IMAGE}",
                *extra,
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return Operator(process=process, log=log)


@dataclass
class Watch:
    """`kubectl get <resource> --watch -o name` in a namespace; when each name was first seen."""

    process: subprocess.Popen[str]
    first_seen: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            now = time.monotonic()
            name = line.strip().rpartition("/")[2]
            if name:
                with self.changed:
                    self.first_seen.setdefault(name, now)
                    self.changed.notify_all()

    def wait_for(self, matches: Callable[[str], bool], what: str, timeout: float) -> float:
        """When the first name that matches was first seen."""

        def seen() -> list[float]:
            return [at for name, at in self.first_seen.items() if matches(name)]

        with self.changed:
            if not self.changed.wait_for(seen, timeout=timeout):
                raise TimeoutError(f"no {what} within {timeout} s")
            return min(seen())


class Reader(Protocol):
    def _read(self) -> None: ...


R = TypeVar("R", bound=Reader)


@contextmanager
def streaming(
    plane: ControlPlane, args: Sequence[str], make: Callable[[subprocess.Popen[str]], R]
) -> Iterator[R]:
    """`kubectl <args>` (a `--watch`) read line by line by `make(process)._read` in a
    thread, until the block ends."""
    process = subprocess.Popen(
        [str(plane.kubectl_path), "--kubeconfig", str(plane.kubeconfig), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    started = make(process)
    reader = threading.Thread(target=started._read, daemon=True)
    reader.start()
    try:
        yield started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=5)


def watch(plane: ControlPlane, resource: str, namespace: str) -> AbstractContextManager[Watch]:
    args = ("get", resource, "-n", namespace, "--watch", "-o", "name")
    return streaming(plane, args, lambda process: Watch(process=process))


def is_deployment_of(model: str) -> Callable[[str], bool]:
    """`<model>-<revision>`: the revision is a hash, unknown before the operator computes it."""
    return lambda name: (
        name.startswith(f"{model}-") and len(name) == len(model) + 1 + REVISION_LENGTH
    )


def apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> None:
    plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(objects))


def measure_latency(plane: ControlPlane, operator: Operator, count: int) -> dict[str, Any]:
    """Apply one MLModel at a time; when the MLModel and its Deployment appear on watches."""
    plane.kubectl("create", "namespace", LATENCY_NAMESPACE)
    reaction: list[float] = []
    from_start: list[float] = []
    apply_seconds: list[float] = []
    with (
        watch(plane, "mlmodels", LATENCY_NAMESPACE) as models,
        watch(plane, "deployments", LATENCY_NAMESPACE) as deployments,
    ):
        for index in range(count + 1):
            name = "warmup" if index == 0 else f"latency-{index:03d}"
            started = time.monotonic()
            apply(plane, [mlmodel(name, LATENCY_NAMESPACE)])
            returned = time.monotonic()
            deployed = deployments.wait_for(is_deployment_of(name), f"Deployment of {name}", 60)
            created = models.wait_for(lambda seen: seen == name, f"MLModel {name}", 10)  # noqa: B023
            operator.check()
            if index == 0:
                continue
            reaction.append(deployed - created)
            from_start.append(deployed - started)
            apply_seconds.append(returned - started)
    return {
        "count": count,
        "mlmodel_seen_to_deployment_seen_s": reaction,
        "from_apply_start_s": from_start,
        "kubectl_apply_s": apply_seconds,
    }


def delete_namespace(plane: ControlPlane, namespace: str, timeout: float) -> float:
    started = time.monotonic()
    plane.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_until(
        f"namespace {namespace} to be gone",
        lambda: plane.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        timeout=timeout,
        every=1,
    )
    return time.monotonic() - started


def phases(plane: ControlPlane, namespace: str) -> list[str]:
    out = plane.kubectl(
        "get",
        "mlmodels",
        "-n",
        namespace,
        "-o",
        "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}",
    ).stdout
    return [line.strip() for line in out.splitlines()]


def measure_load(
    plane: ControlPlane, operator: Operator, count: int, timeout: float
) -> dict[str, Any]:
    plane.kubectl("create", "namespace", LOAD_NAMESPACE)
    cpu_before = cpu_seconds(operator.process.pid)
    started = time.monotonic()
    apply(plane, [mlmodel(f"load-{i:03d}", LOAD_NAMESPACE) for i in range(1, count + 1)])
    applied = time.monotonic() - started
    peak = vm_rss_mib(operator.process.pid)
    healthy = 0
    deadline = started + timeout
    while True:
        operator.check()
        peak = max(peak, vm_rss_mib(operator.process.pid))
        healthy = phases(plane, LOAD_NAMESPACE).count("Healthy")
        if healthy >= count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {healthy}/{count} MLModels Healthy after {timeout:.0f} s")
        time.sleep(1)
    all_healthy = time.monotonic() - started
    cpu = cpu_seconds(operator.process.pid) - cpu_before
    time.sleep(5)
    return {
        "count": count,
        "kubectl_apply_s": applied,
        "all_healthy_s": all_healthy,
        "operator_cpu_s": cpu,
        "rss_when_healthy_mib": vm_rss_mib(operator.process.pid),
        "rss_peak_mib": max(peak, vm_rss_mib(operator.process.pid)),
        "pods_running": plane.kubectl(
            "get",
            "pods",
            "-n",
            LOAD_NAMESPACE,
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ).stdout.count("\n"),
    }


def wait_for_lease(plane: ControlPlane) -> None:
    """Until the operator holds its Lease: it acts from then on."""
    wait_until(
        "the operator to hold its Lease",
        lambda: (
            plane.kubectl("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, check=False).returncode
            == 0
        ),
        timeout=60,
        every=0.2,
    )


@contextmanager
def operator_on_plane(
    directory: Path, *extra: str
) -> Iterator[tuple[ControlPlane, Operator, float]]:
    """A fresh control plane and the operator on it (`extra` flags), yielded with the
    seconds it took to hold its Lease. A benchmark that fails prints the tails of the
    operator's and the components' logs, since its directory is all that is left."""
    plane = start_control_plane(directory / "plane")
    operator: Operator | None = None
    try:
        kubeconfig = install_operator_rbac(plane, directory)
        operator = start_operator(kubeconfig, directory, *extra)
        started = time.monotonic()
        wait_for_lease(plane)
        yield plane, operator, time.monotonic() - started
    except BaseException:
        if operator is not None:
            print(operator.log.read_text(errors="replace")[-3000:], file=sys.stderr)
        print(plane.log_tails(), file=sys.stderr)
        raise
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count()}
    with operator_on_plane(directory) as (plane, operator, lease_after_s):
        result["lease_after_s"] = lease_after_s
        time.sleep(10)
        operator.check()
        result["rss_idle_mib"] = vm_rss_mib(operator.process.pid)
        print(f"idle: VmRSS {result['rss_idle_mib']:.1f} MiB", flush=True)

        result["latency"] = measure_latency(plane, operator, args.latency_models)
        result["rss_after_latency_mib"] = vm_rss_mib(operator.process.pid)
        result["latency_namespace_deleted_s"] = delete_namespace(
            plane, LATENCY_NAMESPACE, timeout=180
        )
        time.sleep(5)
        result["rss_before_load_mib"] = vm_rss_mib(operator.process.pid)
        print("latency: done", flush=True)

        result["load"] = measure_load(plane, operator, args.load_models, timeout=args.timeout)
        operator.check()
    result["load_after"] = os.getloadavg()
    return result


def summary(result: dict[str, Any]) -> str:
    latency, load = result["latency"], result["load"]
    reaction = latency["mlmodel_seen_to_deployment_seen_s"]
    after_start = latency["from_apply_start_s"]

    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    lines = [
        f"machine: {result['cpus']} CPUs; load average before "
        + ", ".join(f"{x:.2f}" for x in result["load_before"])
        + "; after "
        + ", ".join(f"{x:.2f}" for x in result["load_after"]),
        f"operator idle (0 MLModels): VmRSS {result['rss_idle_mib']:.1f} MiB",
        f"apply -> Deployment, {latency['count']} MLModels one at a time: "
        f"median {ms(statistics.median(reaction))}, p90 {ms(percentile(reaction, 0.9))}, "
        f"max {ms(max(reaction))} (MLModel seen on a watch -> Deployment seen on a watch); "
        f"median {ms(statistics.median(after_start))}, p90 {ms(percentile(after_start, 0.9))}, "
        f"max {ms(max(after_start))} (from starting kubectl apply; kubectl apply itself "
        f"median {ms(statistics.median(latency['kubectl_apply_s']))})",
        f"after the latency run: VmRSS {result['rss_after_latency_mib']:.1f} MiB; namespace "
        f"deleted in {result['latency_namespace_deleted_s']:.1f} s; "
        f"VmRSS {result['rss_before_load_mib']:.1f} MiB",
        f"{load['count']} MLModels in one kubectl apply ({load['kubectl_apply_s']:.1f} s): "
        f"all Healthy after {load['all_healthy_s']:.1f} s (operator CPU "
        f"{load['operator_cpu_s']:.1f} s), {load['pods_running']} pods Running; "
        f"VmRSS {load['rss_when_healthy_mib']:.1f} MiB (peak {load['rss_peak_mib']:.1f} MiB)",
    ]
    return "\n".join(lines)


def run_in_directory(
    prefix: str,
    run: Callable[[argparse.Namespace, Path], dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`run(args, directory)` in a fresh directory, also stopped cleanly by SIGTERM;
    the directory is removed after a success and kept (and named) after a failure."""

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = run(args, directory)
    except BaseException:
        print(f"logs kept in {directory}", file=sys.stderr)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency-models", type=int, default=20)
    parser.add_argument("--load-models", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for all to be Healthy")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    print(summary(run_in_directory("operator-bench-", run, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
