"""Memory of one `mlmodel-runtime serve` process under abusive requests.

    .venv/bin/python bench/abuse_bench.py [--baseline DIR] [--seconds 20] [--connections 64]

Builds two models, the 50-tree iris forest of `serve_bench.py` (one FP32 input)
and a small pipeline with a BYTES input, and serves them with default settings,
one process, while a thread samples its resident memory from /proc (VmRSS every
20 ms, and the kernel's own peak, VmHWM). The requests are built from the limits
the server logs at start-up, so each checkout is sent the largest bodies it
accepts:

- single: the worst single requests we could construct, each alone on a fresh
  server: the largest JSON body of the worst expansion (`[{},{},...]`), the
  largest JSON body of numbers, the largest binary FP32 tensor and the largest
  binary BYTES tensor (JSON answers, the larger kind), BYTES shapes far larger
  than their data, and a body over every limit;
- flood: many connections for a while, each sending in turn the largest accepted
  JSON and binary bodies, oversized ones and small requests, with a readiness
  probe on its own connection every 100 ms.

`--baseline DIR` measures another checkout the same way (DIR/operator and
DIR/runtime on PYTHONPATH), e.g. the unmodified main branch. A server whose RSS
passes `--ceiling-mib` is killed by the bench and reported as such: a pod with
the default 1 GiB limit would have been OOM-killed before. Results go to
bench/results/abuse-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MIB = 1024 * 1024
# The defaults of checkouts that log fewer limits: everything up to the body limit.
UNLIMITED = 1 << 62


@dataclass
class Limits:
    body: int
    json: int
    elements: int
    inflight: int

    @classmethod
    def from_log(cls, record: dict[str, Any]) -> Limits:
        body = int(record["max_body_bytes"])
        return cls(
            body=body,
            json=min(body, int(record.get("max_json_body_bytes", body))),
            elements=int(record.get("max_request_elements", UNLIMITED)),
            inflight=int(record.get("max_inflight_bytes", UNLIMITED)),
        )


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Server:
    label: str
    process: subprocess.Popen[bytes]
    port: int
    limits: Limits
    log: Path
    rss_kib: list[int] = field(default_factory=list)
    killed_at_kib: int = 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- models ------------------------------------------------------------------


def build_models(work: Path) -> tuple[Path, Path]:
    """The serve_bench iris forest, and a pipeline with inputs a, b (FP32) and color (BYTES)."""
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, write_metadata

    sys.path.insert(0, str(BENCH))
    import serve_bench  # type: ignore[import-not-found]

    _, iris = serve_bench.build_models(work / "iris")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=200).astype(np.float32),
            "b": rng.normal(size=200).astype(np.float32),
            "color": rng.choice(["ab", "cd", "ef"], 200),
        }
    )
    target = ((frame["a"] + (frame["color"] == "ab")) > 0.5).astype(int)
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["color"])]
    )
    pipe = Pipeline([("columns", columns), ("lr", LogisticRegression())]).fit(frame, target)
    onx = to_onnx(
        pipe,
        initial_types=[
            ("a", FloatTensorType([None, 1])),
            ("b", FloatTensorType([None, 1])),
            ("color", StringTensorType([None, 1])),
        ],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    raw = onx.SerializeToString()
    mixed = work / "mixed"
    mixed.mkdir()
    (mixed / "model.onnx").write_bytes(raw)
    write_metadata(
        mixed,
        ModelMetadata(
            inputs=(
                TensorSpec("a", "FP32", (-1, 1)),
                TensorSpec("b", "FP32", (-1, 1)),
                TensorSpec("color", "BYTES", (-1, 1)),
            ),
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
    return iris, mixed


# ---- servers -----------------------------------------------------------------


def start_server(label: str, model: Path, name: str, source: Path, logs: Path) -> Server:
    port = free_port()
    log = logs / f"{label}-{name}-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLMODEL_")}
    env["PYTHONPATH"] = f"{source / 'operator'}:{source / 'runtime'}"
    command = [sys.executable, "-m", "mlmodel_runtime.cli", "serve", "--model-dir", str(model)]
    command += ["--name", name, "--host", "127.0.0.1", "--port", str(port), "--log-format", "json"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"ready to serve"' in line:
                limits = Limits.from_log(json.loads(line))
                return Server(label, process, port, limits, log)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    sys.exit(f"{label} server did not start:\n{log.read_text(errors='replace')}")


def stop_server(server: Server) -> str:
    """Stop the server; how it ended."""
    process = server.process
    if server.killed_at_kib:
        process.wait()
        return f"killed by the bench at {server.killed_at_kib / 1024:.0f} MiB RSS"
    if process.poll() is not None:
        return f"crashed (exit {process.returncode})"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "did not stop on SIGTERM"
    return "alive"


def status_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def sample_memory(server: Server, stop: threading.Event, ceiling_kib: int) -> None:
    """Every 20 ms: RSS of the server; kill it beyond the ceiling."""
    while not stop.wait(0.02):
        try:
            rss = status_kib(server.process.pid)["VmRSS"]
        except (OSError, KeyError):
            return
        server.rss_kib.append(rss)
        if rss > ceiling_kib and not server.killed_at_kib:
            server.killed_at_kib = rss
            server.process.kill()
            return


# ---- requests ----------------------------------------------------------------


def v2_json(name: str, datatype: str, shape: list[int], data: bytes) -> bytes:
    head = {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": "@"}]}
    return json.dumps(head, separators=(",", ":")).encode().replace(b'"@"', data)


def binary(inputs: list[tuple[str, str, list[int], bytes]]) -> tuple[bytes, int]:
    """A binary tensor data body and its JSON header's length."""
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}}
            for n, d, s, b in inputs
        ]
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    return text + b"".join(blob for *_, blob in inputs), len(text)


def bytes_blob(words: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(w)) + w for w in words)


def iris_requests(limits: Limits) -> dict[str, Request]:
    infer = "/v2/models/iris/infer"
    room = limits.json - 200
    worst = room // 3  # "{}," per element
    rows = min(room // 18, limits.elements // 4)  # "[5.1,3.5,1.4,0.2]," per row
    # 16 bytes and 4 elements a row; binary numbers weigh 2 in the budget.
    binary_rows = min((min(limits.body, limits.inflight // 2) - 300) // 16, limits.elements // 4)
    fp32, header = binary(
        [("X", "FP32", [binary_rows, 4], bytes(16 * binary_rows))]  # zeros: finite
    )
    return {
        "JSON, worst expansion ([{},{},...])": Request(
            "json-worst",
            infer,
            v2_json("X", "FP32", [worst], b"[" + b",".join([b"{}"] * worst) + b"]"),
        ),
        "JSON, rows of 4 numbers": Request(
            "json-rows",
            infer,
            v2_json("X", "FP32", [rows, 4], b"[" + b",".join([b"[5.1,3.5,1.4,0.2]"] * rows) + b"]"),
        ),
        "binary FP32": Request(
            "binary-fp32", infer, fp32, (("Inference-Header-Content-Length", str(header)),)
        ),
        "over every limit (100 MB)": Request("oversized", infer, b" " * 100_000_000),
    }


def mixed_requests(limits: Limits) -> dict[str, Request]:
    infer = "/v2/models/mixed/infer"
    # Rows of a (4 bytes), b (4 bytes) and a 2-byte color (6 bytes): 14 bytes, 3 elements.
    budget = min(limits.body, limits.inflight // 16) - 1000
    rows = min(budget // 14, limits.elements // 3)
    numbers = bytes(4 * rows)
    body, header = binary(
        [
            ("a", "FP32", [rows, 1], numbers),
            ("b", "FP32", [rows, 1], numbers),
            ("color", "BYTES", [rows, 1], bytes_blob([b"ab"]) * rows),
        ]
    )
    small = bytes_blob([b"ab"])

    def huge(count: int) -> Request:
        body, header = binary(
            [
                ("color", "BYTES", [count, 1], small),
                ("a", "FP32", [1, 1], bytes(4)),
                ("b", "FP32", [1, 1], bytes(4)),
            ]
        )
        return Request(
            f"bytes-{count}", infer, body, (("Inference-Header-Content-Length", str(header)),)
        )

    return {
        "binary BYTES": Request(
            "binary-bytes", infer, body, (("Inference-Header-Content-Length", str(header)),)
        ),
        "BYTES shape [4000000, 1], 6-byte body": huge(4_000_000),
        "BYTES shape [200000000, 1], 6-byte body": huge(200_000_000),
    }


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
) -> int:
    """One request on an open connection; the status, or 0 if the connection broke."""
    head = f"POST {request.path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(request.body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers) + "\r\n"
    try:
        writer.write(head.encode())
        view = memoryview(request.body)
        for start in range(0, len(view), 256 * 1024):
            writer.write(view[start : start + 256 * 1024])
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the answer may still be there, as it would for a real client
    try:
        status_line = await reader.readline()
        if not status_line:
            return 0
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        return int(status_line.split()[1])
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return 0


async def one_request(port: int, request: Request) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    except OSError:
        return 0
    try:
        return await asyncio.wait_for(exchange(reader, writer, request), 120)
    except TimeoutError:
        return 0
    finally:
        writer.close()


async def flood(
    port: int, mix: list[tuple[Request, int]], connections: int, seconds: float
) -> tuple[Counter[str], list[float]]:
    """`connections` clients sending random requests of the mix; answers per request kind."""
    answers: Counter[str] = Counter()
    probe_ms: list[float] = []
    deadline = time.monotonic() + seconds
    requests = [request for request, _ in mix]
    weights = [weight for _, weight in mix]

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        reader = writer = None
        while time.monotonic() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
                except OSError:
                    answers["connect refused"] += 1
                    await asyncio.sleep(0.1)
                    continue
            request = rng.choices(requests, weights)[0]
            assert reader is not None
            try:
                status = await asyncio.wait_for(exchange(reader, writer, request), 60)
            except TimeoutError:
                status = 0
            answers[f"{request.name} {status or 'reset'}"] += 1
            if status in (0, 413, 503) or status >= 500:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def probe() -> None:
        ready = Request("probe", "/v2/health/ready", b"")
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reader = writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /v2/health/ready HTTP/1.1\r\nHost: bench\r\n\r\n")
                await asyncio.wait_for(reader.readline(), 10)
                probe_ms.append((time.perf_counter() - started) * 1000)
            except (TimeoutError, OSError):
                answers[f"{ready.name} failed"] += 1
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(0.1)

    await asyncio.gather(probe(), *(client(i) for i in range(connections)))
    return answers, probe_ms


# ---- scenarios ----------------------------------------------------------------


def measured(server: Server, ceiling_kib: int, work: Any) -> tuple[Any, dict[str, Any]]:
    idle = status_kib(server.process.pid)["VmRSS"]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(server, stop, ceiling_kib))
    sampler.start()
    try:
        result = work()
    finally:
        stop.set()
        sampler.join()
    try:
        peak = status_kib(server.process.pid)["VmHWM"]
    except (OSError, KeyError):
        peak = max(server.rss_kib, default=idle)
    ended = stop_server(server)
    figures = {
        "idle_mib": round(idle / 1024),
        "peak_mib": round(max(peak, server.killed_at_kib) / 1024),
        "end": ended,
    }
    return result, figures


def run_checkout(
    label: str, source: Path, models: tuple[Path, Path], args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    iris, mixed = models
    ceiling = args.ceiling_mib * 1024
    report: dict[str, Any] = {"single": {}, "flood": {}}
    for model, name, build in ((iris, "iris", iris_requests), (mixed, "mixed", mixed_requests)):
        probe = start_server(label, model, name, source, logs)
        report["limits"] = vars(probe.limits) if name == "iris" else report["limits"]
        cases = build(probe.limits)
        stop_server(probe)
        for title, request in cases.items():
            server = start_server(label, model, name, source, logs)
            status, figures = measured(
                server, ceiling, lambda s=server, r=request: asyncio.run(one_request(s.port, r))
            )
            figures.update(status=status or "reset", body_mib=round(len(request.body) / MIB, 1))
            report["single"][title] = figures
            print(f"{label:9} {title:42} {figures}", flush=True)
    server = start_server(label, iris, "iris", source, logs)
    cases = iris_requests(server.limits)
    small = Request(
        "small", "/v2/models/iris/infer", v2_json("X", "FP32", [1, 4], b"[5.1,3.5,1.4,0.2]")
    )
    oversized_json = Request(
        "json-over-limit", "/v2/models/iris/infer", b" " * (server.limits.json + 1)
    )
    mix = [
        (cases["JSON, rows of 4 numbers"], 3),
        (cases["JSON, worst expansion ([{},{},...])"], 2),
        (cases["binary FP32"], 2),
        (oversized_json, 1),
        (small, 4),
    ]
    (answers, probe_ms), figures = measured(
        server,
        ceiling,
        lambda: asyncio.run(flood(server.port, mix, args.connections, args.seconds)),
    )
    figures["answers"] = dict(sorted(answers.items()))
    if probe_ms:
        probe_ms.sort()
        figures["probe_ms"] = {
            "p50": round(statistics.median(probe_ms), 1),
            "p99": round(probe_ms[int(len(probe_ms) * 0.99)], 1),
            "max": round(probe_ms[-1], 1),
            "count": len(probe_ms),
        }
    report["flood"] = figures
    print(f"{label:9} flood {json.dumps(figures)}", flush=True)
    return report


def markdown(reports: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    labels = list(reports)
    lines = ["| request (alone, fresh server) | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for title in reports[labels[0]]["single"]:
        cells = []
        for label in labels:
            f = reports[label]["single"][title]
            end = "" if f["end"] == "alive" else f"; {f['end']}"
            cells.append(f"{f['status']}, {f['body_mib']} MiB body, peak {f['peak_mib']} MiB{end}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", f"Flood: {args.connections} connections for {args.seconds:g} s.", ""]
    floods = [reports[label]["flood"] for label in labels]
    rows = {
        "RSS idle / peak (MiB)": [f"{f['idle_mib']} / {f['peak_mib']}" for f in floods],
        "server at the end": [f["end"] for f in floods],
        "answers (request kind, status: count)": [
            ", ".join(f"{kind}: {n}" for kind, n in f.get("answers", {}).items()) for f in floods
        ],
        "readiness probe ms (p50 / p99 / max)": [
            " / ".join(str(f.get("probe_ms", {}).get(k, "-")) for k in ("p50", "p99", "max"))
            for f in floods
        ],
    }
    lines.append("| | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ceiling-mib", type=int, default=2048)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="abuse-bench-"))
    logs = work / "logs"
    logs.mkdir()
    models = build_models(work)
    checkouts = {"this": ROOT}
    if args.baseline is not None:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    started = time.time()
    reports = {
        label: run_checkout(label, source, models, args, logs)
        for label, source in checkouts.items()
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / f"abuse-{stamp}.json").write_text(json.dumps(reports, indent=1, sort_keys=True))
    text = markdown(reports, args)
    (out / f"abuse-{stamp}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
