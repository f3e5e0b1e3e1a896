"""`make demo`, run as people run it: its own network sandbox, control plane, operator,
pod runner, Prometheus and load, v1 serving, v2 promoted step by step, v3 rolled back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.demo import check_demo_story, run_make_demo

pytestmark = pytest.mark.e2e


def test_make_demo_promotes_v2_step_by_step_and_rolls_v3_back(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    check_demo_story(run_make_demo(state), state)
