"""`make demo` run as people run it (a process, its own network sandbox), and what its
output must tell: v2 promoted step by step, v3 rolled back by its predictions alone,
no failed request. Used for both kinds of pods (tests/e2e, tests/realpods)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 900


def run_make_demo(state: Path, *demo_args: str) -> str:
    """`make demo` with DEMO_DIR=`state`; its output, once it exited 0."""
    result = subprocess.run(
        [
            "make",
            "-s",
            # This interpreter and the venv as they are: never reinstall inside a test.
            "-o",
            ".venv/.installed-stamp",
            "demo",
            f"PY={sys.executable}",
            f"DEMO_DIR={state}",
            f"DEMO_ARGS={' '.join(('--no-live', *demo_args))}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr[-8000:]}"
    assert output.rstrip().endswith("demo complete"), output
    return output


def check_demo_story(output: str, state: Path) -> None:
    # v2 went through every weight, judged by passing intervals, and was promoted.
    assert "v2 promoted" in output, output
    assert "(through 10%, 30%, 60%, 100%)" in output, output
    for weight in (10, 30, 60, 100):
        assert f"v2 takes {weight}% of the traffic" in output, output
    assert re.search(r"interval \d+: Pass: error-rate", output), output
    # v3 was rolled back by its predictions alone: no error, no slowness.
    [rollback] = [line for line in output.splitlines() if "v3 rolled back:" in line]
    assert "prediction-divergence" in rollback, rollback
    assert "(v2) keeps serving" in rollback, rollback
    assert "error-rate" not in rollback.split("rolled back revision")[1], rollback
    # Real traffic reached all three versions, and none of it failed.
    [traffic] = [line for line in output.splitlines() if line.strip().startswith("traffic:")]
    for version in ("v1", "v2", "v3"):
        assert f"'{version}': " in traffic, traffic
    assert traffic.endswith("failed: none"), output[output.index("summary") :]
    # The state directory holds what the demo applied, for people to read.
    assert (state / "iris-v3.yaml").exists()
