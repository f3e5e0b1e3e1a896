"""One local environment per machine: a second one is refused, naming the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv import EnvironmentBusy, LocalEnvironment

pytestmark = pytest.mark.unit


def test_a_second_environment_is_refused_naming_the_first_until_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = LocalEnvironment(tmp_path / "env-a").claim()
    second = LocalEnvironment(tmp_path / "env-b")
    with pytest.raises(EnvironmentBusy, match=r"already running .*directory .*env-a") as refused:
        second.claim()
    assert str(tmp_path / "env-a") in refused.value.holder
    first.stop()
    second.claim().stop()


def test_claiming_twice_is_one_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo claims before wiping its directory; `start()` then claims again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = LocalEnvironment(tmp_path / "env").claim()
    env.claim()
    env.stop()
    LocalEnvironment(tmp_path / "other").claim().stop()
