"""One local environment per directory: a second one there is refused, naming the first;
another directory is another environment (each has a sandbox of its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localenv import EnvironmentBusy, LocalEnvironment

pytestmark = pytest.mark.unit


def test_a_second_environment_in_a_directory_is_refused_naming_the_first_until_it_stops(
    tmp_path: Path,
) -> None:
    first = LocalEnvironment(tmp_path / "env-a").claim()
    second = LocalEnvironment(tmp_path / "env-a")
    with pytest.raises(EnvironmentBusy, match=r"already running .*directory .*env-a") as refused:
        second.claim()
    assert str(tmp_path / "env-a") in refused.value.holder
    elsewhere = LocalEnvironment(tmp_path / "env-b").claim()  # its own sandbox, its own state
    elsewhere.stop()
    first.stop()
    second.claim().stop()


def test_claiming_twice_is_one_claim(tmp_path: Path) -> None:
    """The demo claims before wiping its directory; `start()` then claims again."""
    env = LocalEnvironment(tmp_path / "env").claim()
    env.claim()
    env.stop()
    LocalEnvironment(tmp_path / "other").claim().stop()
