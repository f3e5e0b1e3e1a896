"""Control-plane benchmark: warm start to ready (median of N) and idle memory.

    PYTHONPATH=. .venv/bin/python bench/controlplane_bench.py [--runs 5]

Uses the cached binaries (builds them first if needed, and says how long that took).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from localenv.controlplane.build import ensure_binaries
from localenv.controlplane.cluster import start_control_plane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    started = time.monotonic()
    ensure_binaries()
    print(f"binaries ready in {time.monotonic() - started:.1f} s (cached if ~0)")
    starts = []
    memory: dict[str, float] = {}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as state:
            began = time.monotonic()
            plane = start_control_plane(Path(state))
            starts.append(time.monotonic() - began)
            try:
                if run == args.runs - 1:
                    time.sleep(args.idle_seconds)
                    memory = {c.name: rss_mib(c.process.pid) for c in plane.components}
            finally:
                plane.stop()
        print(f"run {run + 1}: ready in {starts[-1]:.1f} s")
    print(
        f"warm start to ready: median {statistics.median(starts):.1f} s "
        f"(min {min(starts):.1f}, max {max(starts):.1f}, {len(starts)} runs)"
    )
    for name, mib in memory.items():
        print(f"idle RSS {name}: {mib:.0f} MiB")
    print(f"idle RSS total: {sum(memory.values()):.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
