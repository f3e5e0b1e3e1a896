"""Benchmark `mlmodel-runtime convert`: conversion + parity time and peak memory.

Each measurement runs the real CLI as a child process (as the init container
does) on a model saved with skops, and reads the child's phase timings from its
report and its peak resident memory from the kernel (ru_maxrss of the waited-for
child). Reports medians over --runs runs.

    .venv/bin/python bench/convert_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def random_forest() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=2000, n_features=20, n_informative=10, random_state=0)
    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(x, y)


def column_transformer() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    rows = 5000
    frame = pd.DataFrame({
        **{f"num{i}": rng.normal(size=rows) for i in range(8)},
        "city": rng.choice([f"city{i}" for i in range(30)], rows),
        "plan": rng.choice(["free", "pro", "team"], rows),
    })  # fmt: skip
    y = (frame["num0"] + (frame["plan"] == "pro") > 0.5).astype(int)
    pre = ColumnTransformer([
        ("num", StandardScaler(), [f"num{i}" for i in range(8)]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
    ])  # fmt: skip
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(frame, y)


MODELS = {"random_forest_100": random_forest, "column_transformer": column_transformer}


def run_once(source: Path, out: Path, samples: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mlmodel_runtime.cli", "convert", "--uri", str(source),
           "--format", "skops", "--out", str(out), "--parity-samples", str(samples)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    # wait4 (not Popen.wait) to get this child's own peak RSS from the kernel.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    report = json.loads(stdout)
    if report["status"] != "ok":
        raise SystemExit(f"conversion failed: {report}")
    return {"wall": wall, "timings": report["timings"], "rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in MODELS.items():
            import skops.io

            source = Path(tmp) / f"{name}.skops"
            skops.io.dump(build(), source)
            walls, phases, rss = [], [], []
            for i in range(args.runs):
                result = run_once(source, Path(tmp) / f"out-{name}-{i}", args.samples)
                walls.append(result["wall"])
                phases.append(result["timings"])
                rss.append(result["rss_mib"])
            keys = phases[0].keys()
            med = {k: statistics.median(p[k] for p in phases) for k in keys}
            print(json.dumps({
                "model": name,
                "model_bytes": source.stat().st_size,
                "runs": args.runs,
                "parity_rows": args.samples,
                "wall_s_median": round(statistics.median(walls), 3),
                "convert_plus_parity_s_median": round(
                    sum(v for k, v in med.items() if k != "fetch"), 3),
                "phases_s_median": {k: round(v, 4) for k, v in med.items()},
                "peak_rss_mib_max": round(max(rss), 1),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }))  # fmt: skip


if __name__ == "__main__":
    main()
