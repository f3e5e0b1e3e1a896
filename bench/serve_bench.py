"""Serving benchmark: `mlmodel-runtime serve` against MLServer, KServe and a raw ONNX floor.

    .venv/bin/python bench/serve_bench.py [--runs 3] [--seconds 10] [--write-doc]
        [--baseline DIR] [--only NAME ...] [--skip-mlserver] [--skip-kserve]

Trains one 50-tree RandomForest on iris; saves it with joblib for MLServer 1.7.1 +
mlserver-sklearn (in bench/.venv-mlserver, created when missing) and for KServe's
Python model server (bench/kserve_server.py: a `kserve.Model` whose `predict` calls
the estimator, one worker, in bench/.venv-kserve, created when missing), and converts
it with skl2onnx for this runtime and for bench/floor_server.py, with a training
baseline beside it (so this runtime counts input drift, as with a reference). All servers run at
once on 127.0.0.1 (idle while not measured); for each run, each concurrency
(1, 16, 64) and each server in turn, wrk posts the same v2 request for the given
seconds (in reverse order every other run). Reports medians of requests/s, p50
and p99 over the runs, resident memory per process, and the load average of the
machine around the runs. Raw
results go to bench/results/serve-<time>.json; `--write-doc` replaces the body of
the "Serving" section of docs/benchmarks.md with the table.

`--baseline DIR` adds the runtime of another checkout (DIR/operator and
DIR/runtime on PYTHONPATH, e.g. the unmodified main branch) as one more server,
measured in turn with the others, for a side-by-side comparison on a busy
machine; `--only` keeps just the named servers (of mlmodel-runtime,
mlmodel-runtime-2w, mlmodel-runtime-baseline, floor, mlserver, mlserver-batching
and kserve; e.g. `mlmodel-runtime mlmodel-runtime-baseline`).
"""

from __future__ import annotations

import argparse
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
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docsection
from gobuild import go_binary

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MLSERVER_VENV = BENCH / ".venv-mlserver"
# MLServer 1.7.1 workers call asyncio.get_event_loop() in a fresh process, which
# uvloop >= 0.22 refuses; 0.21 is the last release it works with.
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"]
KSERVE_VENV = BENCH / ".venv-kserve"
KSERVE_VERSION = "0.21.0"
# KServe 0.21.0 (the release on PyPI when this peer was added) starts as installed; its
# requirements are ranges (some without an upper bound), so the web stack it serves with
# is pinned to the versions it was measured with, for figures that can be compared later.
# scikit-learn, joblib and NumPy are those of the interpreter running this script, which
# fits and pickles the forest: a scikit-learn pickle is only sure to load in the same
# version (see kserve_packages).
KSERVE_PACKAGES = [
    f"kserve=={KSERVE_VERSION}",
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "uvloop==0.23.0",
    "httptools==0.9.0",
]
BODY: dict[str, Any] = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
CONCURRENCIES = (1, 16, 64)
GRPC_CONCURRENCY = 64


@dataclass
class Target:
    name: str
    label: str
    command: list[str]
    port: int
    infer_path: str
    ready_path: str
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    grpc_port: int | None = None  # its Open Inference Protocol gRPC port, if measured
    rest: bool = True  # measured over REST (the gRPC floor is not)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu) and retry")
    return wrk


def ensure_mlserver_venv() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MLSERVER_VENV} with {' '.join(MLSERVER_PACKAGES)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    check = subprocess.run(
        [str(python), "-c", "import mlserver, mlserver_sklearn, uvloop; print(uvloop.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or check.stdout.strip() != "0.21.0":
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MLSERVER_PACKAGES], check=True)
    return MLSERVER_VENV / "bin" / "mlserver"


def kserve_packages() -> list[str]:
    from importlib.metadata import version

    pickled = [f"{name}=={version(name)}" for name in ("scikit-learn", "joblib", "numpy")]
    return [*KSERVE_PACKAGES, *pickled]


def ensure_kserve_venv() -> Path:
    python = KSERVE_VENV / "bin" / "python"
    packages = kserve_packages()
    if not python.exists():
        print(f"creating {KSERVE_VENV} with {' '.join(packages)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        # Keep the venv out of git without a line in .gitignore (as venv does from 3.13).
        (KSERVE_VENV / ".gitignore").write_text("*\n")
    names = [p.split("==")[0] for p in packages]
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import sys; from importlib.metadata import version; "
            "print(' '.join(f'{n}=={version(n)}' for n in sys.argv[1:]))",
            *names,
        ],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or check.stdout.split() != packages:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def build_models(work: Path) -> tuple[Path, Path]:
    """The same fitted forest as joblib (MLServer, KServe) and as an ONNX model dir (for us)."""
    import hashlib

    import joblib
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from mlmodel_runtime.convert import baseline
    from mlmodel_runtime.convert.schema import InputSchema
    from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)
    mlserver_dir = work / "mlserver" / "iris"
    mlserver_dir.mkdir(parents=True)
    joblib.dump(forest, mlserver_dir / "model.joblib")
    onnx_dir = work / "onnx"
    onnx_dir.mkdir()
    onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}}, target_opset=17)
    raw = onx.SerializeToString()
    (onnx_dir / "model.onnx").write_bytes(raw)
    write_metadata(
        onnx_dir,
        ModelMetadata(
            inputs=(TensorSpec("X", "FP32", (-1, 4)),),
            outputs=(
                TensorSpec("label", "INT64", (-1,)),
                TensorSpec("probabilities", "FP32", (-1, 3)),
            ),
            task="classification",
            classes=(0, 1, 2),
            label_output="label",
            probabilities_output="probabilities",
            model_sha256=hashlib.sha256(raw).hexdigest(),
        ),
    )
    # A training baseline, as `convert` writes one from a reference: this runtime then
    # counts every served row into its buckets (input drift), as it does in a cluster.
    trained = baseline.build(
        {"input": x}, InputSchema(n_features=4), task="classification",
        predicted=forest.predict(x), classes=(0, 1, 2), source="bench",
    )  # fmt: skip
    renamed = [replace(f, name=f.name.replace("input[", "X[")) for f in trained.features]
    (onnx_dir / baseline.FILE).write_text(replace(trained, features=tuple(renamed)).to_json())
    return mlserver_dir.parent, onnx_dir


def mlserver_target(
    name: str, label: str, mlserver: Path, root: Path, batching: dict[str, Any]
) -> Target:
    repo = root / name
    shutil.copytree(root / "iris", repo / "iris")
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": (grpc_port := free_port()),
        "metrics_port": free_port(),
        "debug": False,
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
        **batching,
    }
    (repo / "iris" / "model-settings.json").write_text(json.dumps(model_settings))
    return Target(
        name=name,
        label=label,
        command=[str(mlserver), "start", "."],
        port=port,
        infer_path="/v2/models/iris/infer",
        ready_path="/v2/models/iris/ready",
        cwd=repo,
        grpc_port=grpc_port,
    )


def kserve_target(name: str, label: str, python: Path, model: Path) -> Target:
    """KServe's ModelServer (bench/kserve_server.py): REST on 127.0.0.1, one worker, no gRPC."""
    port = free_port()
    return Target(
        name=name,
        label=label,
        command=[
            str(python),
            str(BENCH / "kserve_server.py"),
            "--model_name",
            "iris",
            "--model_path",
            str(model),
            "--http_port",
            str(port),
            "--workers",
            "1",
            "--enable_grpc",
            "false",
        ],
        port=port,
        infer_path="/v2/models/iris/infer",
        ready_path="/v2/models/iris/ready",
    )


def start(target: Target, logs: Path) -> None:
    target.log = logs / f"{target.name}.log"
    with target.log.open("wb") as log:
        target.process = subprocess.Popen(
            target.command,
            cwd=target.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **target.env},
            start_new_session=True,
        )


def _answers(target: Target) -> bool:
    """Ready over REST, or, for a gRPC-only target, accepting connections on its port."""
    if not target.rest:
        try:
            socket.create_connection(("127.0.0.1", target.grpc_port or 0), timeout=2).close()
        except OSError:
            return False
        return True
    url = f"http://127.0.0.1:{target.port}{target.ready_path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_ready(target: Target, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert target.process is not None
        if target.process.poll() is not None:
            sys.exit(f"{target.name} exited:\n{target.log.read_text() if target.log else ''}")
        if _answers(target):
            return
        time.sleep(0.2)
    sys.exit(f"{target.name} not ready after {timeout} s")


def stop(target: Target) -> None:
    process = target.process
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def rss_kib(pid: int) -> dict[int, int]:
    """Resident memory of a process and all its descendants, per pid."""
    result: dict[int, int] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                result[current] = int(line.split()[1])
        pending.extend(int(c) for c in children)
    return result


def run_wrk(
    wrk: str, target: Target, concurrency: int, seconds: float, body: Path
) -> dict[str, Any]:
    threads = 1 if concurrency == 1 else 2
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_PATH": target.infer_path}
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(BENCH / "post.lua"),
            f"http://127.0.0.1:{target.port}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["load1_before"] = load_before
    result["load1_after"] = os.getloadavg()[0]
    return result


def grpc_body(work: Path) -> Path:
    """The gRPC ModelInferRequest of BODY (typed contents, as grpcurl and KServe's
    client send them), serialized for bench/grpcload."""
    from mlmodel_runtime.serve.oip import grpc_predict_v2_pb2 as pb

    [tensor] = BODY["inputs"]
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    ).contents.fp32_contents.extend(float(v) for v in tensor["data"])
    path = work / "body.grpc"
    path.write_bytes(request.SerializeToString())
    return path


def run_grpcload(
    binary: Path, target: Target, concurrency: int, seconds: float, body: Path
) -> dict[str, Any]:
    """bench/grpcload: `concurrency` HTTP/2 connections with one call in flight each."""
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [
            str(binary),
            "-address",
            f"127.0.0.1:{target.grpc_port}",
            "-body",
            str(body),
            "-connections",
            str(concurrency),
            "-seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(done.stdout)
    return {
        "rps": out["rps"],
        "p50_us": out["latency_ms"]["p50"] * 1000,
        "p99_us": out["latency_ms"]["p99"] * 1000,
        "non2xx": sum(n for code, n in out["codes"].items() if code != "OK"),
        "socket_errors": 0,
        "timeouts": 0,
        "load1_before": load_before,
        "load1_after": os.getloadavg()[0],
    }


def summarize(results: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, by_conc in results.items():
        summary[name] = {}
        for conc, runs in by_conc.items():
            summary[name][conc] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
                "errors": sum(r["non2xx"] + r["socket_errors"] + r["timeouts"] for r in runs),
                "runs": len(runs),
            }
    return summary


LABELS = {
    "mlmodel-runtime": "mlmodel-runtime serve (batching on, defaults)",
    "mlmodel-runtime-2w": "mlmodel-runtime serve --workers 2",
    "mlmodel-runtime-baseline": "mlmodel-runtime serve, baseline checkout (batching on, defaults)",
    "floor": "floor: raw ASGI + onnxruntime",
    "mlserver": "MLServer 1.7.1 (defaults)",
    "mlserver-batching": "MLServer 1.7.1 (adaptive batching 32 / 5 ms)",
    "kserve": f"KServe {KSERVE_VERSION} (kserve.Model, 1 worker)",
    "mlmodel-runtime-grpc": "mlmodel-runtime serve --grpc-port (batching on, defaults)",
    "grpc-floor": "gRPC floor: grpcio asyncio + onnxruntime",
}


def _cell(report: dict[str, Any], name: str, conc: int) -> dict[str, Any]:
    by_conc = report["summary"][name]
    row: dict[str, Any] = by_conc.get(conc, by_conc.get(str(conc)))
    return row


def table(report: dict[str, Any]) -> str:
    lines = [
        "| server | conc. | requests/s | p50 ms | p99 ms | errors | RSS per process (MiB) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    labels = report.get("labels", LABELS)
    names = [n for n in LABELS if n in report["summary"]]
    for name in names + [n for n in report["summary"] if n not in LABELS]:
        rss = ", ".join(f"{kib / 1024:.0f}" for kib in report["rss_kib"][name].values())
        for conc in CONCURRENCIES:
            row = _cell(report, name, conc)
            lines.append(
                f"| {labels.get(name, name)} | {conc} | {row['rps']:,.0f} | "
                f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} | "
                f"{rss if conc == 1 else ''} |"
            )
    return "\n".join(lines)


def grpc_table(report: dict[str, Any]) -> str:
    """gRPC at GRPC_CONCURRENCY, one row per server that was measured over gRPC."""
    grpc = report.get("grpc_summary") or {}
    if not grpc:
        return ""
    labels = report.get("labels", LABELS)
    lines = [
        "| server, gRPC | conc. | calls/s | p50 ms | p99 ms | errors | REST req/s, same conc. |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_conc in grpc.items():
        row = by_conc.get(GRPC_CONCURRENCY, by_conc.get(str(GRPC_CONCURRENCY)))
        rest = (
            f"{_cell(report, name, GRPC_CONCURRENCY)['rps']:,.0f}"
            if name in report["summary"]
            else "-"
        )
        lines.append(
            f"| {labels.get(name, name)} | {GRPC_CONCURRENCY} | {row['rps']:,.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} | {rest} |"
        )
    return "\n".join(lines)


def headline(report: dict[str, Any]) -> str:
    """Concurrency-64 ratios of one run: share of the floor, multiples of MLServer and KServe."""
    ours = _cell(report, "mlmodel-runtime", 64)
    parts = []
    if "floor" in report["summary"]:
        parts.append(f"{ours['rps'] / _cell(report, 'floor', 64)['rps']:.0%} of the floor")
    best = max(
        (_cell(report, n, 64)["rps"] for n in report["summary"] if n.startswith("mlserver")),
        default=0.0,
    )
    if best:
        parts.append(f"{ours['rps'] / best:.1f}x MLServer's best")
    if "kserve" in report["summary"]:
        parts.append(f"{ours['rps'] / _cell(report, 'kserve', 64)['rps']:.1f}x KServe")
    parts.append(f"p99 {ours['p99_ms']:.1f} ms")
    grpc = report.get("grpc_summary") or {}
    if "mlmodel-runtime-grpc" in grpc:

        def calls(name: str) -> float:
            by_conc = grpc[name]
            rps: float = by_conc.get(GRPC_CONCURRENCY, by_conc.get(str(GRPC_CONCURRENCY)))["rps"]
            return rps

        ours_grpc = calls("mlmodel-runtime-grpc")
        text = f"gRPC {ours_grpc:,.0f} calls/s"
        if "grpc-floor" in grpc:
            text += f" ({ours_grpc / calls('grpc-floor'):.0%} of the gRPC floor"
            text += (
                f", {ours_grpc / calls('mlserver'):.1f}x MLServer's)" if "mlserver" in grpc else ")"
            )
        parts.append(text)
    if "mlmodel-runtime-2w" in report["summary"] and "floor" in report["summary"]:
        two = _cell(report, "mlmodel-runtime-2w", 64)
        floor = _cell(report, "floor", 64)
        parts.append(
            f"with --workers 2: {two['rps'] / floor['rps']:.0%} of the floor, "
            f"p99 {two['p99_ms']:.1f} ms"
        )
    return ", ".join(parts)


def section(reports: list[dict[str, Any]]) -> str:
    """The body of the Serving section of docs/benchmarks.md; the first report is tabled."""
    main = reports[0]
    lines = [
        f"Measured {main['started']} with `bench/serve_bench.py --runs {main['runs']} "
        f"--seconds {main['seconds']:g}`: the same 50-tree RandomForest on iris, one v2 JSON "
        "request of one row, wrk on 127.0.0.1 (1 thread at concurrency 1, else 2). MLServer "
        "and KServe serve the joblib-saved forest as their users would: MLServer's "
        f"mlserver-sklearn runtime, and KServe {KSERVE_VERSION}'s Python model server with "
        "one worker and a `kserve.Model` whose `predict` calls the estimator "
        "(`bench/kserve_server.py`); this runtime and the floor serve its ONNX conversion. "
        "Medians of "
        f"{main['runs']} runs; servers measured in turn within each run. The load generator "
        "shares the 2 cores with the servers. **The machine was busy**: load average (1 min) "
        f"before each measurement: median {main['load1_median']:.1f}, max "
        f"{main['load1_max']:.1f} on {main['cpus']} cores (other work ran alongside), so "
        "absolute figures are pessimistic and vary between runs.",
        "",
        table(main),
        "",
        "Over gRPC (the Open Inference Protocol's `ModelInfer`, the same one-row request "
        "as typed contents), from `bench/grpcload` (Go; one HTTP/2 connection per "
        "concurrent call, the counterpart of wrk's connections). MLServer serves gRPC on "
        "its default settings; KServe is left out (its gRPC server binds every address, "
        "`[::]`, and this benchmark keeps every server on 127.0.0.1):",
        "",
        grpc_table(main),
        "",
        "Targets at concurrency 64: at least 10x MLServer's best throughput, p99 at most "
        "15 ms, at least 70% of the floor's throughput. Every run so far (ours / floor, "
        "ours / best MLServer and ours / KServe within the same run):",
        "",
    ]
    for report in reports:
        lines.append(
            f"- run of {report['started']} (load median {report['load1_median']:.1f}): "
            f"{headline(report)}"
        )
    lines += [
        "",
        "RSS is measured after the runs, per process (MLServer: the server, its "
        "inference-pool worker and the multiprocessing helper; KServe: its one process; "
        "`--workers 2`: the supervisor, the multiprocessing helper and the two workers). "
        "Raw figures: "
        "`bench/results/serve-*.json`.",
    ]
    return "\n".join(lines)


def write_doc(body: str) -> None:
    docsection.replace("## Serving (`mlmodel-runtime serve`)", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=int, default=3)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--skip-kserve", action="store_true")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure side by side")
    parser.add_argument("--only", nargs="+", help="measure only these servers")
    parser.add_argument(
        "--doc-from",
        nargs="+",
        type=Path,
        help="only rewrite the doc section from these results files (the first is tabled)",
    )
    args = parser.parse_args()
    if args.doc_from:
        write_doc(section([json.loads(path.read_text()) for path in args.doc_from]))
        return
    wrk = require_wrk()
    wanted = args.only or list(LABELS)
    skip_mlserver = args.skip_mlserver or not any(n.startswith("mlserver") for n in wanted)
    mlserver = None if skip_mlserver else ensure_mlserver_venv()
    skip_kserve = args.skip_kserve or "kserve" not in wanted
    kserve = None if skip_kserve else ensure_kserve_venv()

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    logs = work / "logs"
    logs.mkdir()
    body = work / "body.json"
    body.write_text(json.dumps(BODY))
    mlserver_root, onnx_dir = build_models(work)
    python = sys.executable

    def ours(name: str, extra: list[str], source: Path | None = None) -> Target:
        port = free_port()
        command = [python, "-m", "mlmodel_runtime.cli", "serve", "--model-dir", str(onnx_dir)]
        command += ["--name", "iris", "--version", "v1", "--host", "127.0.0.1"]
        env = {}
        if source is not None:
            env["PYTHONPATH"] = f"{source.resolve() / 'operator'}:{source.resolve() / 'runtime'}"
        return Target(
            name=name,
            label=LABELS[name],
            command=[*command, "--port", str(port), *extra],
            port=port,
            infer_path="/v2/models/iris/infer",
            ready_path="/v2/health/ready",
            env=env,
        )

    targets = [ours("mlmodel-runtime", []), ours("mlmodel-runtime-2w", ["--workers", "2"])]
    # The same server with its gRPC port on: measured over gRPC, and over REST to show
    # what an idle gRPC service costs REST.
    grpc_port = free_port()
    targets.append(ours("mlmodel-runtime-grpc", ["--grpc-port", str(grpc_port)]))
    targets[-1].grpc_port = grpc_port
    if args.baseline is not None:
        targets.insert(1, ours("mlmodel-runtime-baseline", [], args.baseline))
    targets.append(
        Target(
            name="floor",
            label="floor: raw ASGI + onnxruntime",
            command=[python, str(BENCH / "floor_server.py"), str(onnx_dir / "model.onnx"), ""],
            port=0,
            infer_path="/v2/models/iris/infer",
            ready_path="/",
        )
    )
    targets[-1].port = free_port()
    targets[-1].command[-1] = str(targets[-1].port)
    grpc_floor_port = free_port()
    targets.append(
        Target(
            name="grpc-floor",
            label=LABELS["grpc-floor"],
            command=[
                python,
                str(BENCH / "grpc_floor_server.py"),
                str(onnx_dir / "model.onnx"),
                str(grpc_floor_port),
            ],
            port=0,
            infer_path="",
            ready_path="",
            grpc_port=grpc_floor_port,
            rest=False,
        )
    )
    if mlserver is not None:
        targets.append(
            mlserver_target("mlserver", "MLServer 1.7.1 (defaults)", mlserver, mlserver_root, {})
        )
        targets.append(
            mlserver_target(
                "mlserver-batching",
                "MLServer 1.7.1 (adaptive batching 32 / 5 ms)",
                mlserver,
                mlserver_root,
                {"max_batch_size": 32, "max_batch_time": 0.005},
            )
        )
    if kserve is not None:
        model = mlserver_root / "iris" / "model.joblib"
        targets.append(kserve_target("kserve", LABELS["kserve"], kserve, model))
    if args.only:
        targets = [t for t in targets if t.name in args.only]
    results: dict[str, dict[int, list[dict[str, Any]]]] = {
        t.name: {c: [] for c in CONCURRENCIES} for t in targets if t.rest
    }
    grpc_targets = [t for t in targets if t.grpc_port is not None]
    grpc_results: dict[str, dict[int, list[dict[str, Any]]]] = {
        t.name: {GRPC_CONCURRENCY: []} for t in grpc_targets
    }
    grpcload = go_binary("grpcload") if grpc_targets else None
    grpc_request = grpc_body(work)
    memory: dict[str, Any] = {}
    started = time.time()
    try:
        for target in targets:
            start(target, logs)
        for target in targets:
            wait_ready(target)
        for target in targets:
            if target.rest:
                run_wrk(wrk, target, 16, args.warmup_seconds, body)
            if target.grpc_port is not None and grpcload is not None:
                run_grpcload(grpcload, target, 16, args.warmup_seconds, grpc_request)
        for run in range(args.runs):
            # Every other run in reverse order, so that no server is always measured first.
            ordered = targets if run % 2 == 0 else targets[::-1]
            for conc in CONCURRENCIES:
                for target in [t for t in ordered if t.rest]:
                    result = run_wrk(wrk, target, conc, args.seconds, body)
                    results[target.name][conc].append(result)
                    print(
                        f"run {run + 1} c={conc:<3} {target.name:<18} "
                        f"{result['rps']:>9,.0f} req/s p50 {result['p50_us'] / 1000:6.2f} ms "
                        f"p99 {result['p99_us'] / 1000:7.2f} ms load {result['load1_before']:.1f}",
                        flush=True,
                    )
            for target in [t for t in ordered if t.grpc_port is not None]:
                assert grpcload is not None
                result = run_grpcload(
                    grpcload, target, GRPC_CONCURRENCY, args.seconds, grpc_request
                )
                grpc_results[target.name][GRPC_CONCURRENCY].append(result)
                print(
                    f"run {run + 1} gRPC c={GRPC_CONCURRENCY} {target.name:<18} "
                    f"{result['rps']:>9,.0f} calls/s p50 {result['p50_us'] / 1000:6.2f} ms "
                    f"p99 {result['p99_us'] / 1000:7.2f} ms load {result['load1_before']:.1f}",
                    flush=True,
                )
        for target in targets:
            assert target.process is not None
            memory[target.name] = rss_kib(target.process.pid)
    finally:
        for target in targets:
            stop(target)
    summary = summarize(results)
    loads = [r["load1_before"] for t in results.values() for runs in t.values() for r in runs]
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "seconds": args.seconds,
        "load1_median": statistics.median(loads),
        "load1_max": max(loads),
        "summary": summary,
        "grpc_summary": summarize(grpc_results),
        "rss_kib": memory,
        "raw": results,
        "grpc_raw": grpc_results,
    }
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    (out_dir / f"serve-{stamp}.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    report["labels"] = {t.name: t.label for t in targets}
    text = table(report) + "\n\n" + grpc_table(report)
    print(text)
    print(f"load average (1 min) during the runs: median {report['load1_median']:.1f}, "
          f"max {report['load1_max']:.1f} on {report['cpus']} cores")  # fmt: skip
    (out_dir / f"serve-{stamp}.md").write_text(text + "\n")
    if args.write_doc:
        write_doc(section([report]))


if __name__ == "__main__":
    main()
