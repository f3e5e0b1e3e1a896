"""Start-up benchmark: a model pod from start to Ready, part by part.

    .venv/bin/python bench/start_bench.py [--runs 5] [--label NAME] [--baseline DIR]
    .venv/bin/python -m localenv.sandbox -- .venv/bin/python bench/start_bench.py --podrunner
    .venv/bin/python bench/start_bench.py --write-doc   # the section from the newest results

Three models, trained here: `iris` (a 10-tree RandomForest on iris, saved with skops),
`forest-100` (100 trees, 20 features, 2,000 rows: the one of the Conversion section) and
`onnx` (the iris forest as an ONNX file, `--format onnx`: passthrough).

The containers' arguments are the operator's own: an MLModel from `localenv.manifests`
(the builder the e2e tests use, with the process runner's settings: 32 parity rows),
parsed by `mlmodel_operator.spec` and turned into a pod by `desired.pod_template`; the
paths are rebased the way the process runner rebases them (`localenv.podrunner`).

Process mode (the default) runs, per model and run, what the kubelet would, in order,
as processes on 127.0.0.1: `fetch`, `convert`, then `serve`, timed from its spawn to
the first 200 of its readiness path (polled every 10 ms). From the convert report come
its phases (reading the source, load, export, parity, write, or the cache look-up); the
rest of its wall time is interpreter start and imports. Each command's start alone is
timed with `--help` (interpreter, `mlmodel_runtime.cli` and the command's module), and
`python -X importtime` names each command's biggest imports (one extra run, not timed).
When the runtime knows `convert --cache-dir`, two more pods per run use a node-level
cache directory (the operator's pod with `--convert-cache-host-path` set): the first on
an empty cache (it converts and stores), the next one on the same model (it reuses).

`--podrunner` (inside the network sandbox) starts the local control plane and the
process runner (`localenv.podrunner`, the e2e tests' kubelet) and creates each pod
through the API, placed by the scheduler on the runner's node: from the create call to
the pod's Ready condition, polled every 50 ms, with when each container was first seen
running. The cached pods carry the hostPath volume the operator adds
with `--convert-cache-host-path` (`CACHE_ROOT`).

`--baseline DIR` adds the pods of another tree of the runtime, put first on the path of
their processes (e.g. `git archive HEAD runtime/mlmodel_runtime | tar -x -C /tmp/before`,
then `--baseline /tmp/before/runtime`), in turn with this checkout's in each run: a
before/after comparison on a busy machine; with `--podrunner` the runner starts the
baseline's containers through a wrapper that sets PYTHONPATH (it passes none itself).
Medians of `--runs` runs (>= 5 for the doc).

Raw results: bench/results/start-<time>.json; `--write-doc` replaces the body of the
"Start-up" section of docs/benchmarks.md from the newest results file of each (mode,
label), keeping its hand-written `###` subsections.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docsection  # noqa: E402  (a sibling script: bench/ is on the path)

from localenv.manifests import mlmodel  # noqa: E402
from localenv.podrunner import rebase_arg, rewrite_args  # noqa: E402
from mlmodel_operator import desired  # noqa: E402
from mlmodel_operator.naming import ModelRef  # noqa: E402
from mlmodel_operator.settings import Settings  # noqa: E402
from mlmodel_operator.spec import parse_spec  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RUNTIME = Path(sys.executable).parent / "mlmodel-runtime"
MODELS = ("iris", "forest-100", "onnx")
NO_CACHE, CACHE_FIRST, CACHE_NEXT = "no cache", "cache, first pod", "cache, next pod"
CHECKOUT, BASELINE = "this checkout", "baseline"
# The administrator's conversion cache (`--convert-cache-host-path`): the operator mounts
# <CACHE_ROOT>/<namespace> into convert (desired.pod_template).
CACHE_ROOT = "/var/cache/mlmodel"
NAMESPACE = "default"
CACHE_PATH = f"{CACHE_ROOT}/{NAMESPACE}"  # the node's directory of the pods' namespace
READY_POLL_S = 0.01
API_POLL_S = 0.05


# ------------------------------------------------------------------------- models


def train(work: Path) -> dict[str, tuple[Path, str]]:
    """The three model files and their formats."""
    import numpy as np
    import skops.io
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    iris = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    skops.io.dump(iris, work / "iris.skops")
    onx = to_onnx(iris, x[:1].astype(np.float32), options={id(iris): {"zipmap": False}})
    (work / "iris.onnx").write_bytes(onx.SerializeToString())
    wide, target = make_classification(
        n_samples=2000, n_features=20, n_informative=10, random_state=0
    )
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(wide, target)
    skops.io.dump(forest, work / "forest-100.skops")
    return {
        "iris": (work / "iris.skops", "skops"),
        "forest-100": (work / "forest-100.skops", "skops"),
        "onnx": (work / "iris.onnx", "onnx"),
    }


def pod_spec(name: str, model_file: Path, fmt: str, *, cached: bool) -> dict[str, Any]:
    """The pod the operator makes for this model, with the administrator's conversion
    cache when `cached`."""
    manifest = mlmodel(name, NAMESPACE, model_file=model_file, model={"format": fmt})
    spec = parse_spec(manifest["spec"])
    ref = ModelRef(name=name, namespace=NAMESPACE, uid="00000000-0000-0000-0000-000000000000")
    settings = Settings(convert_cache_host_path=CACHE_ROOT if cached else "")
    return desired.pod_template(ref, spec, "r1", settings)


# ---------------------------------------------------------------- process mode


@dataclass(frozen=True)
class Runtime:
    """How to start `mlmodel-runtime`: this venv's, perhaps with another tree first."""

    pythonpath: Path | None

    def env(self, tmp: Path) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(TMPDIR=str(tmp), HOSTNAME="bench")
        if self.pythonpath is not None:
            env["PYTHONPATH"] = str(self.pythonpath)
        return env

    def knows_cache(self) -> bool:
        shown = subprocess.run(
            [str(RUNTIME), "convert", "--help"],
            capture_output=True,
            text=True,
            env=self.env(Path(tempfile.gettempdir())),
            check=False,
        )
        return "--cache-dir" in shown.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def argv_of(container: dict[str, Any], pod_dir: Path, node_dir: Path, port: int) -> list[str]:
    """The container's command line as the process runner makes it, on 127.0.0.1."""
    mounts = [m for m in container.get("volumeMounts") or () if m["name"] != "convert-cache"]
    mounts.sort(key=lambda m: len(m["mountPath"]), reverse=True)
    args = [rebase_arg(a, mounts, pod_dir) for a in container["args"]]
    replacements = {
        "--report-file": str(pod_dir / f"{container['name']}.termination-log"),
        "--mount-root": str(pod_dir / "pvc"),
        "--host": "127.0.0.1",
        "--port": str(port),
        "--cache-dir": str(node_dir / "convert-cache"),
    }
    return [str(RUNTIME), *rewrite_args(args, replacements)]


def wait_ready(port: int, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(READY_POLL_S)
    raise RuntimeError("serve not ready after 120 s")


def run_pod(
    template: dict[str, Any], pod_dir: Path, node_dir: Path, runtime: Runtime
) -> dict[str, Any]:
    """fetch, convert, serve-until-ready, one after the other: seconds of each."""
    for sub in ("models", "tmp", "pvc", "pin"):
        (pod_dir / sub).mkdir(parents=True, exist_ok=True)
    env = runtime.env(pod_dir / "tmp")
    spec = template["spec"]
    parts: dict[str, Any] = {}
    for init in spec["initContainers"]:
        argv = argv_of(init, pod_dir, node_dir, 0)
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, cwd=pod_dir, check=False)
        parts[init["name"]] = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{init['name']} exited {done.returncode}: {done.stdout[-2000:]!r}")
        if init["name"] == "convert":
            parts["report"] = json.loads(done.stdout.decode().splitlines()[-1])
    serve = spec["containers"][0]
    port = free_port()
    argv = argv_of(serve, pod_dir, node_dir, port)
    started = time.perf_counter()
    with (pod_dir / "serve.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=pod_dir)
    try:
        wait_ready(port, process, serve["readinessProbe"]["httpGet"]["path"])
        parts["serve"] = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    parts["total"] = parts["fetch"] + parts["convert"] + parts["serve"]
    return parts


def wall(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=env, check=False)
    return time.perf_counter() - started


def starts(runtime: Runtime, runs: int) -> dict[str, float]:
    """Medians: the bare interpreter, and each command's start (`--help`)."""
    env = runtime.env(Path(tempfile.gettempdir()))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        **{f"{c} --help": [str(RUNTIME), c, "--help"] for c in ("fetch", "convert", "serve")},
    }
    return {
        name: statistics.median(wall(argv, env) for _ in range(runs))
        for name, argv in commands.items()
    }


def top_imports(stderr: str, count: int = 8) -> list[tuple[str, float]]:
    """The biggest top-level imports of a `-X importtime` run: (module, seconds)."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested: counted in its parent
        found.append((name.strip(), int(cumulative) / 1e6))
    return sorted(found, key=lambda item: -item[1])[:count]


def importtimes(template: dict[str, Any], work: Path, runtime: Runtime) -> dict[str, Any]:
    """One pod's commands under `-X importtime`: the biggest imports of each."""
    pod_dir, node_dir = work / "importtime", work / "importtime-node"
    shutil.rmtree(pod_dir, ignore_errors=True)
    for sub in ("models", "tmp", "pvc", "pin"):
        (pod_dir / sub).mkdir(parents=True, exist_ok=True)
    env = runtime.env(pod_dir / "tmp")
    found: dict[str, Any] = {}
    for container in template["spec"]["initContainers"]:
        argv = argv_of(container, pod_dir, node_dir, 0)
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=pod_dir,
            check=False,
        )
        imports = top_imports(done.stderr)
        found[container["name"]] = {
            "total_s": sum(s for _, s in top_imports(done.stderr, 10_000)),
            "top": imports,
        }
    return found


@dataclass(frozen=True)
class Scenario:
    """One kind of pod: which runtime tree, and whether convert has the node's cache."""

    name: str
    tree: str
    cached: bool


def scenarios_for(trees: dict[str, Runtime]) -> list[Scenario]:
    found = []
    if BASELINE in trees:
        found.append(Scenario(f"{BASELINE}: {NO_CACHE}", BASELINE, cached=False))
    found.append(Scenario(NO_CACHE, CHECKOUT, cached=False))
    if trees[CHECKOUT].knows_cache():
        found += [Scenario(CACHE_FIRST, CHECKOUT, True), Scenario(CACHE_NEXT, CHECKOUT, True)]
    return found


def process_mode(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    trees = {CHECKOUT: Runtime(None)}
    if args.baseline is not None:
        trees[BASELINE] = Runtime(args.baseline)
    scenarios = scenarios_for(trees)
    models = train(work)
    node_dir = work / "node"
    report: dict[str, Any] = {
        "scenarios": [s.name for s in scenarios],
        "baseline": None if args.baseline is None else str(args.baseline),
        "starts": {tree: starts(runtime, args.runs) for tree, runtime in trees.items()},
        "models": {},
    }
    print(f"command starts: {report['starts']}", flush=True)
    for name in args.models:
        model_file, fmt = models[name]
        entry: dict[str, Any] = {"format": fmt, "bytes": model_file.stat().st_size}
        plain = pod_spec(name, model_file, fmt, cached=False)
        entry["imports"] = {
            tree: importtimes(plain, work, runtime) for tree, runtime in trees.items()
        }
        entry["runs"] = {s.name: [] for s in scenarios}
        for run in range(args.runs):
            # Side by side: the two trees' plain pods in turn, first one then the other.
            order = scenarios if run % 2 == 0 else _swap_plain(scenarios)
            for scenario in order:
                if scenario.name == CACHE_FIRST:
                    shutil.rmtree(node_dir / "convert-cache", ignore_errors=True)
                template = pod_spec(name, model_file, fmt, cached=scenario.cached)
                pod_dir = work / "pods" / f"{name}-{run}-{scenario.name.replace(' ', '')}"
                parts = run_pod(template, pod_dir, node_dir, trees[scenario.tree])
                entry["runs"][scenario.name].append(parts)
                shutil.rmtree(pod_dir, ignore_errors=True)
                print(
                    f"{name} run {run + 1} {scenario.name}: fetch {parts['fetch']:.2f} s, "
                    f"convert {parts['convert']:.2f} s {phases(parts['report'])}, serve "
                    f"{parts['serve']:.2f} s, total {parts['total']:.2f} s",
                    flush=True,
                )
        report["models"][name] = entry
    return report


def _swap_plain(scenarios: list[Scenario]) -> list[Scenario]:
    plain = [s for s in scenarios if not s.cached]
    return [*reversed(plain), *(s for s in scenarios if s.cached)]


def phases(report: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in (report.get("timings") or {}).items()}


# -------------------------------------------------------------- pod runner mode


async def podrunner_mode(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from localenv import podrunner, sandbox
    from localenv.controlplane.cluster import start_control_plane
    from localenv.kubeapi import ApiAccess, KubeApi

    sandbox.require_inside("the pod runner benchmark")
    trees = {CHECKOUT: Runtime(None)}
    executables = {CHECKOUT: podrunner.RUNTIME}
    if args.baseline is not None:
        # The runner passes no PYTHONPATH: a wrapper puts the baseline tree first.
        wrapper = work / "baseline-bin" / "mlmodel-runtime"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={args.baseline} exec {podrunner.RUNTIME} "$@"\n')
        wrapper.chmod(0o755)
        trees[BASELINE], executables[BASELINE] = Runtime(args.baseline), wrapper
    scenarios = scenarios_for(trees)
    models = train(work)
    plane = start_control_plane(work / "plane")
    runner = podrunner.PodRunner(plane, work / "podrunner").start()
    api = KubeApi(ApiAccess.of(plane))
    report: dict[str, Any] = {
        "scenarios": [s.name for s in scenarios],
        "baseline": None if args.baseline is None else str(args.baseline),
        "models": {},
    }
    try:
        for name in args.models:
            model_file, fmt = models[name]
            entry: dict[str, Any] = {"format": fmt, "runs": {s.name: [] for s in scenarios}}
            for run in range(args.runs):
                order = scenarios if run % 2 == 0 else _swap_plain(scenarios)
                for scenario in order:
                    if scenario.name == CACHE_FIRST:
                        cache = runner.host_path(CACHE_PATH)
                        shutil.rmtree(cache, ignore_errors=True)
                    template = pod_spec(name, model_file, fmt, cached=scenario.cached)
                    pod_name = f"{name}-{run}-" + "".join(
                        c if c.isalnum() else "-" for c in scenario.name
                    ).replace("--", "-")
                    # The runner reads the executable when it starts each container.
                    podrunner.RUNTIME = executables[scenario.tree]
                    try:
                        seen = await one_pod(api, pod_name, template)
                    finally:
                        podrunner.RUNTIME = executables[CHECKOUT]
                    entry["runs"][scenario.name].append(seen)
                    print(f"{name} run {run + 1} {scenario.name}: {seen}", flush=True)
            report["models"][name] = entry
    finally:
        await api.aclose()
        runner.stop()
        plane.stop()
    return report


async def one_pod(api: Any, name: str, template: dict[str, Any]) -> dict[str, float]:
    """Create the pod, poll it until Ready: seconds from the create call to each event."""
    path = "/api/v1/namespaces/default/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    started = time.monotonic()
    await api.create(path, pod)
    seen: dict[str, float] = {}
    deadline = started + 180
    while "ready" not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pod {name} not ready after 180 s: {seen}")
        await asyncio.sleep(API_POLL_S)
        current = await api.get(f"{path}/{name}")
        at = time.monotonic() - started
        spec, status = current["spec"], current.get("status") or {}
        if spec.get("nodeName"):
            seen.setdefault("scheduled", at)
        containers = [
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        ]
        for container in containers:
            if container.get("state", {}).keys() & {"running", "terminated"}:
                seen.setdefault(f"{container['name']} started", at)
            terminated = container.get("state", {}).get("terminated")
            if terminated:
                if terminated.get("exitCode") != 0:
                    raise RuntimeError(f"{name}: {container['name']} failed: {terminated}")
                seen.setdefault(f"{container['name']} done", at)
        for condition in status.get("conditions") or ():
            if condition["type"] == "Ready" and condition["status"] == "True":
                seen["ready"] = at
    await api.delete(f"{path}/{name}", {"gracePeriodSeconds": 0})
    for _ in range(300):  # gone before the next pod, so that they never overlap
        if await api.get(f"{path}/{name}") is None:
            break
        await asyncio.sleep(0.2)
    return {k: round(v, 3) for k, v in seen.items()}


# ------------------------------------------------------------------------- doc


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _phase_median(runs: list[dict[str, Any]], phase: str) -> float | None:
    values = [r["report"].get("timings", {}).get(phase) for r in runs]
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def process_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| model | pod | fetch | convert | of which: source read / cache / load / "
        "export / parity / write | serve → ready | sum |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for model, entry in report["models"].items():
        for scenario, runs in entry["runs"].items():
            inner = []
            for phase in ("fetch", "cache", "load", "export", "parity", "write"):
                value = _phase_median(runs, phase)
                inner.append("-" if value is None else f"{value:.2f}")
            lines.append(
                f"| {model} | {scenario} | {median([r['fetch'] for r in runs]):.2f} "
                f"| {median([r['convert'] for r in runs]):.2f} | {' / '.join(inner)} "
                f"| {median([r['serve'] for r in runs]):.2f} "
                f"| **{median([r['total'] for r in runs]):.2f}** |"
            )
    return lines


def podrunner_table(report: dict[str, Any]) -> list[str]:
    # (The runner shows both init containers running from the start: "fetch done" is
    # when convert really starts.)
    events = ("scheduled", "fetch started", "fetch done", "convert done", "serve started", "ready")
    lines = [
        "| model | pod | " + " | ".join(events) + " |",
        "|---|---|" + "---:|" * len(events),
    ]
    for model, entry in report["models"].items():
        for scenario, runs in entry["runs"].items():
            cells = []
            for event in events:
                values = [r[event] for r in runs if event in r]
                cell = f"{median(values):.2f}" if values else "-"
                cells.append(f"**{cell}**" if event == "ready" else cell)
            lines.append(f"| {model} | {scenario} | " + " | ".join(cells) + " |")
    return lines


def imports_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for model, entry in report["models"].items():
        for tree, commands in entry.get("imports", {}).items():
            for command, found in commands.items():
                top = ", ".join(f"{m} {s:.2f}" for m, s in found["top"][:4])
                lines.append(
                    f"- {model}, `{command}` ({tree}): {found['total_s']:.2f} s of imports "
                    f"under `-X importtime` (which slows them); the biggest: {top}"
                )
    return lines


def newest_results() -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    newest: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for path in sorted(RESULTS.glob("start-*.json")):
        data = json.loads(path.read_text())
        newest[(data["mode"], data["label"])] = (path, data)
    return newest


def section() -> str:
    newest = newest_results()
    parts: list[str] = []
    for (mode, label), (path, data) in sorted(
        newest.items(), key=lambda i: (i[0][0] != "process", i[0][1])
    ):
        head = (
            f"`{path.relative_to(ROOT)}` ({mode}, {label}): measured {data['started']}, "
            f"medians of {data['runs']} runs, load average {data['load_before']} before and "
            f"{data['load_after']} after, seconds."
        )
        parts += [head, ""]
        if mode == "process":
            parts += [*process_table(data), ""]
            for tree, measured in data["starts"].items():
                text = ", ".join(f"`{k}` {v:.2f}" for k, v in measured.items())
                parts.append(f"Command starts ({tree}): {text}.")
            parts += ["", *imports_lines(data), ""]
        else:
            parts += [*podrunner_table(data), ""]
    return "\n".join(
        [
            "`bench/start_bench.py`: the operator's own container arguments "
            "(`desired.pod_template`), run as processes on 127.0.0.1 (process mode: fetch, "
            "convert, serve until its readiness path answers 200, one after the other) or "
            "through the process runner, the e2e tests' kubelet (pod mode: seconds from "
            "the create call to each container first seen running and to Ready, polled "
            "every 50 ms). **The machine has 2 cores and was busy with other work** while "
            "measuring; read the figures as medians on a loaded machine.",
            "",
            *parts,
        ]
    ).rstrip()


def write_doc(body: str) -> None:
    docsection.replace("## Start-up (pod start to Ready)", body, before="## Real pods")


# ------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--podrunner", action="store_true", help="through the process runner")
    parser.add_argument("--label", default="current", help="what this tree is, for the doc")
    parser.add_argument("--baseline", type=Path, help="another runtime tree to compare with")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--doc-only", action="store_true", help="only rewrite the doc section")
    args = parser.parse_args(argv)
    if args.doc_only:
        write_doc(section())
        return
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="start-bench-"))
    try:
        if args.podrunner:
            report = asyncio.run(podrunner_mode(args, work))
        else:
            report = process_mode(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.update(
        mode="podrunner" if args.podrunner else "process",
        label=args.label,
        started=started,
        runs=args.runs,
        load_before=round(load_before, 1),
        load_after=round(os.getloadavg()[0], 1),
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = started.replace("-", "").replace(":", "")
    out = RESULTS / f"start-{stamp}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")
    if args.write_doc:
        write_doc(section())


if __name__ == "__main__":
    main()
