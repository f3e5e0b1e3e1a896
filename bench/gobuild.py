"""The benchmarks' Go load generators (bench/openloop, bench/grpcload), built once.

Each is built with the machine's Go into ~/.cache/mlmodel-operator/bench/, named by
the hash of its go.mod, go.sum and Go sources, so an unchanged generator is never
built twice and a changed one always is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def go_binary(name: str) -> Path:
    """bench/<name> built (CGO off), cached by the hash of its sources."""
    source = BENCH / name
    digest = hashlib.sha256()
    for path in sorted([*source.glob("go.*"), *source.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    binary = base / "mlmodel-operator" / "bench" / f"{name}-{digest.hexdigest()[:12]}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        print(f"building {binary}", flush=True)
        env = {**os.environ, "CGO_ENABLED": "0"}
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, env=env, check=True)
    return binary
