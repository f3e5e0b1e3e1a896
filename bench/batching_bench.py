"""Batching benchmark: does adaptive batching pay on models whose rows cost much?

    .venv/bin/python bench/batching_bench.py [--runs 3] [--seconds 10] [--write-doc]

Per model, the runtime with its defaults (batching on: up to 32 rows, no delay) and
with `--max-batch-size 1` (off), each loaded with a closed loop of 64 connections
(`bench/openloop -closed`, one row per JSON request) for `--seconds`, in turn (reversed
every other run) after a warm-up of each. Reports medians of requests/s and p99, the
mean rows per model execution (from `mlmodel_batch_size`), and the ratio on / off.
Beside it, the model alone in ONNX Runtime (one thread, as the runtime runs it): the
cost of a row at batch sizes 1, 8 and 32, which says whether merging rows can pay.

Models (trained here, in a temporary directory):
- `mlp-2048`: an MLPClassifier, 256 inputs, 3 hidden layers of 2,048;
- `forest-500`: a RandomForestClassifier of 500 trees (depth 12), 20 inputs;
- `gbm-1000`: a GradientBoostingClassifier of 1,000 trees (depth 4), 20 inputs.

Raw results: bench/results/batching-<time>.json; `--write-doc` replaces the body of the
"Batching on heavy models" section of docs/benchmarks.md.

`--sweep` measures the settings a default could take instead of on / off: the largest
batch (8, 32, 128 rows), a batching delay (2 ms, what the operator passes) and a
second intra-op thread, each at 64 and at 8 connections (where a delay can only add
latency), for the MLP and the forest unless `--models` says otherwise. It prints its
table and writes its raw results (bench/results/batching-sweep-<time>.json); the
choice it supports is explained by hand under "### Choosing the defaults".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import docsection  # noqa: E402  (a sibling script, not a package)
import overload_bench  # noqa: E402  (sibling scripts, not a package)
import serve_bench  # noqa: E402
from gobuild import go_binary  # noqa: E402

ROOT = BENCH.parent
CONNECTIONS = 64
CONFIGS = {
    "batching on (defaults)": [],
    "batching off (--max-batch-size 1)": ["--max-batch-size", "1"],
}
SWEEP = {
    "32 rows, no delay, 1 thread (runtime defaults)": [],
    "8 rows": ["--max-batch-size", "8"],
    "128 rows": ["--max-batch-size", "128"],
    "2 ms delay": ["--max-batch-delay-ms", "2"],
    "2 intra-op threads": ["--intra-op-threads", "2"],
}
SWEEP_CONNECTIONS = (64, 8)


def _mlp(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(2048,) * 3, max_iter=2, random_state=0).fit(x, y)


def _forest(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=500, max_depth=12, random_state=0).fit(x, y)


def _gbm(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=1000, max_depth=4, random_state=0).fit(x, y)


MODELS: dict[str, tuple[int, Callable[[np.ndarray, np.ndarray], Any]]] = {
    "mlp-2048": (256, _mlp),
    "forest-500": (20, _forest),
    "gbm-1000": (20, _gbm),
}


def build(work: Path, name: str) -> tuple[Path, dict[str, Any], bytes]:
    """A model directory, one row's request body, and the ONNX model."""
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification

    from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

    features, train = MODELS[name]
    x, y = make_classification(
        n_samples=3000, n_features=features, n_informative=min(features // 2, 20), random_state=0
    )
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: the speed matters, not the fit
        model = train(x, y)
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    raw = onx.SerializeToString()
    directory = work / name
    directory.mkdir()
    (directory / "model.onnx").write_bytes(raw)
    write_metadata(
        directory,
        ModelMetadata(
            inputs=(TensorSpec("X", "FP32", (-1, features)),),
            outputs=(
                TensorSpec("label", "INT64", (-1,)),
                TensorSpec("probabilities", "FP32", (-1, 2)),
            ),
            task="classification",
            classes=(0, 1),
            label_output="label",
            probabilities_output="probabilities",
            model_sha256=hashlib.sha256(raw).hexdigest(),
        ),
    )
    row = {"name": "X", "datatype": "FP32", "shape": [1, features], "data": x[0].tolist()}
    return directory, {"inputs": [row]}, raw


def row_costs(raw: bytes, features: int) -> dict[int, float]:
    """Microseconds per row in ONNX Runtime alone (one intra-op thread), per batch size."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    costs = {}
    for rows in (1, 8, 32):
        batch = rng.standard_normal((rows, features)).astype(np.float32)
        for _ in range(10):
            session.run(None, {"X": batch})
        calls = max(20, 2000 // rows)
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, {"X": batch})
        costs[rows] = (time.perf_counter() - started) / calls / rows * 1e6
    return costs


def mean_batch(port: int) -> tuple[float, float]:
    """(rows, executions) of mlmodel_batch_size so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    rows = executions = 0.0
    for line in text.splitlines():
        if line.startswith("mlmodel_batch_size_sum"):
            rows = float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlmodel_batch_size_count"):
            executions = float(line.rsplit(" ", 1)[1])
    return rows, executions


def measure(
    binary: Path,
    target: serve_bench.Target,
    body: Path,
    seconds: float,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    rows_before, runs_before = mean_batch(target.port)
    result = overload_bench.offer(binary, target, body, seconds, connections=connections)
    rows_after, runs_after = mean_batch(target.port)
    executions = runs_after - runs_before
    return {
        "rps": result["counts"].get("200", 0) / result["seconds"],
        "p99_ms": result["latency_ms_by_status"].get("200", {}).get("p99"),
        "other": {s: n for s, n in result["counts"].items() if s != "200"},
        "mean_batch": (rows_after - rows_before) / executions if executions else None,
        "raw": result,
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def table(report: dict[str, Any]) -> str:
    lines = [
        "| model | µs per row in ONNX Runtime at batch 1 / 8 / 32 | server | requests/s "
        "| p99 ms | rows per execution | errors |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for model, entry in report["models"].items():
        costs = " / ".join(f"{entry['row_us'][str(n)]:.0f}" for n in (1, 8, 32))
        for config, runs in entry["runs"].items():
            rps = median([r["rps"] for r in runs])
            p99 = median([r["p99_ms"] for r in runs])
            batch = median([r["mean_batch"] for r in runs])
            errors = sorted({s for r in runs for s in r["other"]}) or ["none"]
            lines.append(
                f"| {model} | {costs} | {config} | {rps:,.0f} | {p99:.1f} "
                f"| {'-' if batch is None else f'{batch:.1f}'} | {', '.join(errors)} |"
            )
    return "\n".join(lines)


def ratios(report: dict[str, Any]) -> str:
    on, off = list(CONFIGS)
    parts = []
    for model, entry in report["models"].items():
        fast = median([r["rps"] for r in entry["runs"][on]]) or 0.0
        slow = median([r["rps"] for r in entry["runs"][off]]) or 1.0
        parts.append(f"{model} {fast / slow:.2f}x")
    return "Batching on / off, requests/s: " + ", ".join(parts) + "."


def section(report: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Measured {report['started']} with `bench/batching_bench.py --runs "
            f"{report['runs']} --seconds {report['seconds']}`: a closed loop of {CONNECTIONS} "
            "connections from `bench/openloop` (nice -10) on 127.0.0.1, one row per JSON "
            "request, sharing the 2 cores with the server; medians of "
            f"{report['runs']} runs, servers in turn within each run.",
            "",
            table(report),
            "",
            ratios(report),
            "",
            "Raw figures: `bench/results/batching-*.json`.",
        ]
    )


def write_doc(body: str) -> None:
    docsection.replace("## Batching on heavy models", body)


def _key(config: str, connections: int, sweep: bool) -> str:
    return f"{config}, {connections} connections" if sweep else config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="settings a default could take")
    args = parser.parse_args()
    binary = go_binary("openloop")
    configs = SWEEP if args.sweep else CONFIGS
    loads = SWEEP_CONNECTIONS if args.sweep else (CONNECTIONS,)
    if args.sweep and args.models == list(MODELS):
        args.models = ["mlp-2048", "forest-500"]
    work = Path(tempfile.mkdtemp(prefix="batching-bench-"))
    logs = work / "logs"
    logs.mkdir()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report: dict[str, Any] = {
        "started": started,
        "runs": args.runs,
        "seconds": args.seconds,
        "models": {},
    }
    running: list[serve_bench.Target] = []
    try:
        for model in args.models:
            print(f"{model}: training and converting", flush=True)
            directory, body, raw = build(work, model)
            body_file = work / f"{model}.json"
            body_file.write_text(json.dumps(body))
            costs = row_costs(raw, MODELS[model][0])
            print(f"  µs per row at batch 1/8/32: {costs}", flush=True)
            targets = {}
            for config, extra in configs.items():
                port = serve_bench.free_port()
                command = [sys.executable, "-m", "mlmodel_runtime.cli", "serve"]
                command += ["--model-dir", str(directory), "--name", "m", "--version", "v1"]
                command += ["--host", "127.0.0.1", "--port", str(port), *extra]
                targets[config] = serve_bench.Target(
                    name=f"{model}-{len(targets)}",
                    label=config,
                    command=command,
                    port=port,
                    infer_path="/v2/models/m/infer",
                    ready_path="/v2/health/ready",
                )
            for target in targets.values():
                serve_bench.start(target, logs)
                running.append(target)
            for target in targets.values():
                serve_bench.wait_ready(target)
                overload_bench.offer(binary, target, body_file, 3, connections=CONNECTIONS)
            entry: dict[str, Any] = {
                "row_us": {str(k): v for k, v in costs.items()},
                "runs": {_key(config, c, args.sweep): [] for config in configs for c in loads},
            }
            for run in range(args.runs):
                order = list(configs) if run % 2 == 0 else list(configs)[::-1]
                for connections in loads:
                    for config in order:
                        result = measure(
                            binary, targets[config], body_file, args.seconds, connections
                        )
                        key = _key(config, connections, args.sweep)
                        entry["runs"][key].append(result)
                        print(
                            f"  run {run + 1} {key}: {result['rps']:.0f}/s, p99 "
                            f"{result['p99_ms']} ms, rows per execution {result['mean_batch']}",
                            flush=True,
                        )
            for target in targets.values():
                serve_bench.stop(target)
            report["models"][model] = entry
    finally:
        for target in running:
            serve_bench.stop(target)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = started.replace("-", "").replace(":", "")
    kind = "batching-sweep" if args.sweep else "batching"
    (results / f"{kind}-{stamp}.json").write_text(json.dumps(report, indent=1))
    print(table(report))
    if args.sweep:
        return
    print(ratios(report))
    if args.write_doc:
        write_doc(section(report))


if __name__ == "__main__":
    main()
