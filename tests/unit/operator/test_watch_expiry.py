"""The 410 Gone relist of kopf's watches, lifted to INFO and counted (`watch_expiry`)."""

from __future__ import annotations

import inspect
import logging

import pytest
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import Resource

from mlmodel_operator.watch_expiry import KOPF_WATCH_LOGGER, WatchExpiry, install

pytestmark = pytest.mark.unit


def record(message: str, level: int = logging.DEBUG) -> logging.LogRecord:
    return logging.LogRecord(KOPF_WATCH_LOGGER, level, __file__, 1, message, None, None)


def test_the_pinned_kopf_logs_the_line_the_filter_reads_and_only_on_410() -> None:
    source = inspect.getsource(watching.continuous_watch)
    assert "== 410" in source
    assert 'logger.debug(f"Restarting the watch-stream for {resource} {where}.")' in source
    assert watching.logger.name == KOPF_WATCH_LOGGER


def test_a_restart_is_counted_and_rewritten_at_info() -> None:
    seen: list[str] = []
    resource = Resource("mlops.dev", "v1alpha1", "mlmodels")
    line = record(f"Restarting the watch-stream for {resource} in 'team-a'.")
    assert WatchExpiry(seen.append).filter(line)
    assert seen == ["mlmodels.v1alpha1.mlops.dev"]
    assert (line.levelno, line.levelname) == (logging.INFO, "INFO")
    assert line.getMessage() == (
        "the watch of mlmodels.v1alpha1.mlops.dev in 'team-a' expired (410 Gone): "
        "listing them all again"
    )


def test_other_debug_lines_are_dropped_and_warnings_pass() -> None:
    seen: list[str] = []
    expiry = WatchExpiry(seen.append)
    assert not expiry.filter(record("Starting the watch-stream for pods.v1 cluster-wide."))
    assert expiry.filter(record("Ignoring an unsupported event type: {}", logging.WARNING))
    assert seen == []


def test_install_replaces_an_earlier_filter_and_opens_the_logger_to_debug() -> None:
    watch_logger = logging.getLogger(KOPF_WATCH_LOGGER)
    before = (watch_logger.level, list(watch_logger.filters))
    try:
        install(lambda _: None)
        install(lambda _: None)
        assert watch_logger.level == logging.DEBUG
        assert sum(isinstance(f, WatchExpiry) for f in watch_logger.filters) == 1
    finally:
        watch_logger.setLevel(before[0])
        watch_logger.filters[:] = before[1]
