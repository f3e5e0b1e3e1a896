"""The collector is paused only while a model library imports (`convert/gcpause.py`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mlmodel_runtime.convert import gcpause

pytestmark = pytest.mark.unit


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_off_while_importing_and_on_again_after() -> None:
    with gcpause.while_importing():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_failed_import_gives_the_collector_back() -> None:
    with pytest.raises(ImportError), gcpause.while_importing():
        import mlmodel_runtime_no_such_library  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with gcpause.while_importing():
            pass
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()
