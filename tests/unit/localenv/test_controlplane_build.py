"""Building the control plane without Go stops with a message that says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_missing_go_is_named_with_how_to_get_it(tmp_path: Path) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent),  # python only: no go
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # an empty cache forces a build
    }
    result = subprocess.run(
        [sys.executable, "-m", "localenv.controlplane", "build"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "SYSTEMROOT": os.environ.get("SYSTEMROOT", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "`go` is not on PATH" in result.stderr
    assert "Install Go" in result.stderr
