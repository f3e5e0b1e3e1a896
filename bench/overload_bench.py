"""Overload benchmark: `mlmodel-runtime serve` offered twice what it can serve, at a
constant rate.

    .venv/bin/python bench/overload_bench.py [--runs 3] [--seconds 20] [--write-doc]

wrk (and `serve_bench.py`) is closed-loop: it sends a request when one is answered, so
a server that slows down slows its own load down and is never overloaded. Here
`bench/openloop` (Go, built into ~/.cache/mlmodel-operator/bench/ by the hash of its
source) offers requests at fixed instants over 1,000 kept-alive connections and times
each from its instant, as users arriving on their own would.

Per model, in one process each, after a warm-up:

1. its closed-loop capacity: served requests/s of a closed loop of 64 connections for
   10 s (as wrk measures `serve_bench.py`'s figures), against this checkout's runtime;
2. its sustainable rate: the highest constant rate, in steps of x1.2 from a quarter of
   the closed-loop capacity, that this checkout's runtime serves for 5 s with every
   request answered 200 and a p99 within `SUSTAINED_P99_MS`. A constant rate over
   1,000 connections costs the server more per request than a closed loop over 64
   (each request arrives alone: a wake-up, a read and a write each, no batch), so the
   closed-loop figure overstates what it sustains;
3. for `--runs` runs, against this checkout's runtime and, with `--baseline DIR`,
   another checkout's (e.g. main before a change), in turn (reversed every other
   run): twice the sustainable rate offered at a constant rate for `--seconds`, the
   server's RSS sampled every second; twice the closed-loop capacity the same way
   (saturation: the event loop cannot even parse what is offered); and a closed loop of
   256 connections that resend at once whatever the answer (clients ignoring
   Retry-After) for 10 s. This checkout runs twice: with its defaults, and with the
   event loop's bound on (`GUARDED`); the baseline with `--baseline-args`.

The generator has a core of its own: on a machine of two cores or more it runs on the
last one and every server on the others (`taskset`), at nice -10 (as root). When it
shared the cores, the server's event loop lost the CPU whenever the generator sent,
so both the server's latency and its loop's lateness measured the generator as well
(iris at 15,000/s with no bound, single runs: served p99 207 ms sharing the cores,
160 ms apart; bounds of 3-10 ms on the loop, tried sharing them, shed requests at
4,000/s, far below capacity). A pod's own CPU is what this should measure; its
clients run elsewhere.

Models: a 3-layer MLP (256 inputs, 1,024 wide), whose JSON body and model time make
a request heavy enough to shed, and the iris forest of `serve_bench.py`, where the
HTTP head is most of a request's cost. Reports served requests/s, the share shed
(503), any other status, p50/p99 of the served requests and of the 503s, and RSS at
the start, its maximum and at the end of the overload. Raw results:
bench/results/overload-<time>.json; `--write-doc` replaces the body of the
"Overload" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import docsection  # noqa: E402  (a sibling script, not a package)
import serve_bench  # noqa: E402  (a sibling script, not a package)
from gobuild import go_binary  # noqa: E402

ROOT = BENCH.parent
CONNECTIONS = 1000
HERE = "this checkout"
# This checkout with the event loop's bound on (`--max-loop-lag-ms`, off by default).
GUARDED = "this checkout, --max-loop-lag-ms 2"
GUARD_ARGS = ("--max-loop-lag-ms", "2")


def cores() -> tuple[str, str]:
    """The CPUs of the servers and of the generator, as `taskset -c` takes them; empty
    when there are not two to share out (or no taskset)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return "", ""
    return ",".join(map(str, cpus[:-1])), str(cpus[-1])


SERVER_CPUS, GENERATOR_CPUS = cores()


def pinned(command: list[str], cpus: str) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def build_mlp(work: Path) -> tuple[Path, dict[str, Any]]:
    """A model directory with an MLP classifier (256 inputs, 3 x 1,024), and one row."""
    import warnings

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier

    from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

    x, y = make_classification(
        n_samples=2000, n_features=256, n_informative=40, n_classes=4, random_state=0
    )
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few epochs: its speed matters, not its fit
        mlp = MLPClassifier(hidden_layer_sizes=(1024,) * 3, max_iter=3, random_state=0)
        mlp.fit(x, y)
    onx = to_onnx(mlp, x[:1], options={id(mlp): {"zipmap": False}}, target_opset=17)
    raw = onx.SerializeToString()
    directory = work / "mlp"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(raw)
    write_metadata(
        directory,
        ModelMetadata(
            inputs=(TensorSpec("X", "FP32", (-1, 256)),),
            outputs=(
                TensorSpec("label", "INT64", (-1,)),
                TensorSpec("probabilities", "FP32", (-1, 4)),
            ),
            task="classification",
            classes=(0, 1, 2, 3),
            label_output="label",
            probabilities_output="probabilities",
            model_sha256=hashlib.sha256(raw).hexdigest(),
        ),
    )
    row = {"name": "X", "datatype": "FP32", "shape": [1, 256], "data": x[0].tolist()}
    return directory, {"inputs": [row]}


def offer(
    binary: Path,
    target: serve_bench.Target,
    body: Path,
    seconds: float,
    *,
    rate: float = 0.0,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """Constant-rate load at `rate`, or a closed loop over `connections` when 0."""
    mode = [f"-rate={rate:.0f}"] if rate else ["-closed"]
    done = subprocess.run(
        pinned(
            [
                # Ahead of anything else on its core: a generator that waits for a CPU
                # sends late, and its lateness would be counted as the server's.
                *("nice", "-n", "-10"),
                str(binary),
                f"-address=127.0.0.1:{target.port}",
                f"-path={target.infer_path}",
                f"-body={body}",
                f"-seconds={seconds}",
                f"-connections={connections}",
                *mode,
            ],
            GENERATOR_CPUS,
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


SUSTAINED_P99_MS = 50.0


def sustainable(binary: Path, target: serve_bench.Target, body: Path, closed: float) -> float:
    """The highest constant rate served whole within SUSTAINED_P99_MS (see the module's
    docstring), stepping up from a quarter of the closed-loop capacity `closed`."""
    rate, good = closed / 4, 0.0
    while rate <= closed * 1.5:
        result = offer(binary, target, body, 5, rate=rate)
        served = result["counts"].get("200", 0)
        p99 = (result["latency_ms_by_status"].get("200") or {}).get("p99")
        whole = served == sum(result["counts"].values()) == result["scheduled"]
        print(f"  constant {rate:.0f}/s: p99 {p99} ms, {result['counts']}", flush=True)
        if not whole or p99 is None or p99 > SUSTAINED_P99_MS:
            break
        good, rate = rate, rate * 1.2
    return good


def capacity(binary: Path, target: serve_bench.Target, body: Path) -> float:
    """Served requests/s of a closed loop of 64 connections, after a warm-up (ONNX
    Runtime's first runs at each batch size are slow)."""
    offer(binary, target, body, 5, connections=64)
    result = offer(binary, target, body, 10, connections=64)
    return float(result["counts"].get("200", 0) / result["seconds"])


class RssSampler:
    """The server's RSS (all its processes) every second, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sum(serve_bench.rss_kib(self.pid).values()) / 1024)
            self._stop.wait(1.0)


def summary(result: dict[str, Any], rss: list[float]) -> dict[str, Any]:
    """The figures of one run. Requests/s are over the run's whole length, the time
    the server took to answer what was offered included (a constant-rate run offered
    for 20 s lasts longer when the server falls behind)."""
    counts = result["counts"]
    total = sum(counts.values())
    by_status = result["latency_ms_by_status"]
    return {
        "served_rps": counts.get("200", 0) / result["seconds"],
        "duration_s": result["seconds"],
        "shed_share": counts.get("503", 0) / total if total else 0.0,
        "other": {s: n for s, n in counts.items() if s not in ("200", "503")},
        "served_p50_ms": by_status.get("200", {}).get("p50"),
        "served_p99_ms": by_status.get("200", {}).get("p99"),
        "shed_p99_ms": by_status.get("503", {}).get("p99"),
        "retry_after": result["retry_after_on_503"] == counts.get("503", 0),
        "rss_mib": {
            "start": rss[0] if rss else None,
            "max": max(rss, default=None),
            "end": rss[-1] if rss else None,
        },
        "raw": result,
    }


def overload(
    binary: Path, target: serve_bench.Target, body: Path, rate: float, seconds: float
) -> dict[str, Any]:
    assert target.process is not None
    with RssSampler(target.process.pid) as rss:
        result = offer(binary, target, body, seconds, rate=rate)
    return summary(result, rss.samples)


def storm(binary: Path, target: serve_bench.Target, body: Path) -> dict[str, Any]:
    """256 connections resending at once, whatever the answer."""
    assert target.process is not None
    with RssSampler(target.process.pid) as rss:
        result = offer(binary, target, body, 10, connections=256)
    return summary(result, rss.samples)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| model | server | load | lasted s | served/s | shed | other | served p50 ms "
        "| served p99 ms | 503 p99 ms | RSS MiB start / max / end |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for model, entry in report["models"].items():
        for scenario, label in (
            ("overload", f"{entry['overload_rate']:,.0f}/s constant (2x sustainable)"),
            ("saturation", f"{entry.get('saturation_rate', 0):,.0f}/s constant (2x closed loop)"),
            ("storm", "closed loop, 256 connections"),
        ):
            for config, runs in entry.get(scenario, {}).items():

                def m(key: str, runs: list[dict[str, Any]] = runs) -> float | None:
                    return median([r[key] for r in runs])

                def rss(part: str, runs: list[dict[str, Any]] = runs) -> str:
                    value = median([r["rss_mib"][part] for r in runs])
                    return "-" if value is None else f"{value:.0f}"

                other = sorted({s for r in runs for s in r["other"]}) or ["none"]
                lines.append(
                    f"| {model} | {config} | {label} | {fmt(m('duration_s'))} "
                    f"| {fmt(m('served_rps'), 0)} "
                    f"| {fmt(100 * (m('shed_share') or 0), 0)}% | {', '.join(other)} "
                    f"| {fmt(m('served_p50_ms'))} | {fmt(m('served_p99_ms'))} "
                    f"| {fmt(m('shed_p99_ms'))} | {rss('start')} / {rss('max')} / {rss('end')} |"
                )
    return "\n".join(lines)


def placement(report: dict[str, Any]) -> str:
    cpus = report.get("cpus") or {}
    if not cpus.get("generator"):
        return "The generator shares the cores with the server."
    return (
        f"The generator runs on CPU {cpus['generator']}, every server on CPU "
        f"{cpus['servers']} (`taskset`)."
    )


def section(report: dict[str, Any]) -> str:
    rates = ", ".join(
        f"{model} {entry['capacity']:,.0f}/s (closed loop: "
        f"{entry.get('closed_loop_capacity', 0):,.0f}/s)"
        for model, entry in report["models"].items()
    )
    return "\n".join(
        [
            f"Measured {report['started']} with `bench/overload_bench.py --runs {report['runs']} "
            f"--seconds {report['seconds']}`: load from `bench/openloop` on 127.0.0.1 at "
            "nice -10, latency from each request's scheduled instant (constant rate, "
            f"{CONNECTIONS} connections) or from its sending (closed loop). "
            f"{placement(report)} Sustainable rate (the highest constant "
            "rate this checkout served whole with p99 within "
            f"{SUSTAINED_P99_MS:g} ms, in x1.2 steps): {rates}. Twice that is offered for "
            f"{report['seconds']} s; the closed loop of 256 connections resends at once "
            "whatever the answer (clients ignoring Retry-After). Medians of "
            f"{report['runs']} runs, servers in turn within each run.",
            "",
            table(report),
            "",
            "Raw figures: `bench/results/overload-*.json`.",
        ]
    )


def write_doc(body: str) -> None:
    docsection.replace("## Overload (`mlmodel-runtime serve` offered twice its capacity)", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["mlp", "iris"])
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure side by side")
    parser.add_argument("--baseline-args", default="", help="the baseline server's extra flags")
    parser.add_argument(
        "--doc-from", type=Path, help="only rewrite the doc section from this results file"
    )
    args = parser.parse_args()
    if args.doc_from:
        report = json.loads(args.doc_from.read_text())
        for entry in report["models"].values():  # figures from the raw counts
            for scenario in ("overload", "saturation", "storm"):
                for runs in entry.get(scenario, {}).values():
                    runs[:] = [{**summary(r["raw"], []), "rss_mib": r["rss_mib"]} for r in runs]
        write_doc(section(report))
        return
    binary = go_binary("openloop")
    work = Path(tempfile.mkdtemp(prefix="overload-bench-"))
    logs = work / "logs"
    logs.mkdir()
    models: dict[str, tuple[Path, dict[str, Any]]] = {}
    if "mlp" in args.models:
        models["mlp"] = build_mlp(work)
    if "iris" in args.models:
        models["iris"] = (serve_bench.build_models(work)[1], serve_bench.BODY)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report: dict[str, Any] = {
        "started": started,
        "runs": args.runs,
        "seconds": args.seconds,
        "connections": CONNECTIONS,
        "cpus": {"servers": SERVER_CPUS, "generator": GENERATOR_CPUS},
        "models": {},
    }

    baseline = (
        f"baseline ({args.baseline.name}{' ' + args.baseline_args if args.baseline_args else ''})"
    )
    configs = [HERE, GUARDED] + ([baseline] if args.baseline else [])

    def server(model: str, directory: Path, config: str) -> serve_bench.Target:
        port = serve_bench.free_port()
        command = [sys.executable, "-m", "mlmodel_runtime.cli", "serve"]
        command += ["--model-dir", str(directory), "--name", model, "--version", "v1"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        if config == GUARDED:
            command += GUARD_ARGS
        env = {}
        if config not in (HERE, GUARDED):
            source = args.baseline.resolve()
            env["PYTHONPATH"] = f"{source / 'operator'}:{source / 'runtime'}"
            command += shlex.split(args.baseline_args)
        return serve_bench.Target(
            name=f"{model}-{configs.index(config)}",
            label=f"{model} {config}",
            command=pinned(command, SERVER_CPUS),
            port=port,
            infer_path=f"/v2/models/{model}/infer",
            ready_path="/v2/health/ready",
            env=env,
        )

    running: list[serve_bench.Target] = []
    try:
        for model, (directory, body) in models.items():
            body_file = work / f"{model}.json"
            body_file.write_text(json.dumps(body))
            targets = {config: server(model, directory, config) for config in configs}
            running.extend(targets.values())
            for target in targets.values():
                serve_bench.start(target, logs)
            for target in targets.values():
                serve_bench.wait_ready(target)
            closed = capacity(binary, targets[HERE], body_file)
            print(f"{model}: closed-loop capacity {closed:.0f}/s", flush=True)
            rate = 2 * sustainable(binary, targets[HERE], body_file, closed)
            for config in configs:
                if config != HERE:  # its warm-up
                    offer(binary, targets[config], body_file, 5, connections=64)
            print(f"{model}: sustainable {rate / 2:.0f}/s, offering {rate:.0f}/s", flush=True)
            entry: dict[str, Any] = {
                "closed_loop_capacity": closed,
                "capacity": rate / 2,
                "overload_rate": rate,
                "saturation_rate": 2 * closed,
                "overload": {config: [] for config in configs},
                "saturation": {config: [] for config in configs},
                "storm": {config: [] for config in configs},
            }
            for run in range(args.runs):
                order = configs if run % 2 == 0 else configs[::-1]
                for config in order:
                    target = targets[config]
                    results = {
                        "overload": overload(binary, target, body_file, rate, args.seconds),
                        "saturation": overload(binary, target, body_file, 2 * closed, args.seconds),
                        "storm": storm(binary, target, body_file),
                    }
                    for scenario, result in results.items():
                        entry[scenario][config].append(result)
                        print(
                            f"  run {run + 1} {config} {scenario}: "
                            f"served {result['served_rps']:.0f}/s, "
                            f"shed {100 * result['shed_share']:.0f}%, "
                            f"p99 {result['served_p99_ms']} ms, other {result['other']}",
                            flush=True,
                        )
            for target in targets.values():
                serve_bench.stop(target)
            report["models"][model] = entry
    finally:
        for target in running:
            serve_bench.stop(target)
        for log in logs.iterdir():
            if log.stat().st_size and b"Traceback" in log.read_bytes():
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = started.replace("-", "").replace(":", "")
    (results / f"overload-{stamp}.json").write_text(json.dumps(report, indent=1))
    print(table(report))
    if args.write_doc:
        write_doc(section(report))


if __name__ == "__main__":
    main()
