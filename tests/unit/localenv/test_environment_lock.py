"""One `make demo` per machine: a second one is refused with who holds the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv.demo import DemoFailed, hold_machine_lock

pytestmark = pytest.mark.unit


def test_a_second_demo_is_refused_until_the_first_one_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = hold_machine_lock(tmp_path / "demo-a")
    with pytest.raises(DemoFailed, match=r"already running .*--dir .*demo-a"):
        hold_machine_lock(tmp_path / "demo-b")
    first.close()
    hold_machine_lock(tmp_path / "demo-b").close()
