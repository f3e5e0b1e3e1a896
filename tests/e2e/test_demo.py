"""`make demo`, run as people run it: its own network sandbox, control plane, operator,
pod runner, Prometheus and load, v1 serving, v2 promoted step by step, v3 rolled back;
then every query of the Grafana dashboard over the whole demo (each must return series,
or the demo fails), drawn as `make dashboard-png` draws docs/images/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.demo import check_demo_story, run_make_demo

pytestmark = pytest.mark.e2e


def test_make_demo_promotes_v2_step_by_step_and_rolls_v3_back(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    png = tmp_path / "dashboard.png"
    output = run_make_demo(state, f"--dashboard={png}")
    check_demo_story(output, state)
    assert f"panel queries drawn to {png}" in output, output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
