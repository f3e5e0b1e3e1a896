"""Making an expired watch (410 Gone) visible: a log line at INFO and a counter.

kopf handles the expiry itself. A watch resumes from the last resource version it
saw; when the API server no longer has that version in its window (after an API
server restart, or a watch kept away for minutes), it answers 410 Gone, and kopf
lists every object again and watches on from the list. Each listed object reaches
the handlers as an event, so the controller reconciles every model once more and a
change made while the watch was away is not missed. A model deleted in that gap has
no event at all: it is forgotten at its next resync, when its reconcile finds it
gone (`Controller.reconcile`).

kopf says all this only at DEBUG, among lines about every watch's start and stop.
Relists are what a person looking at an API server's load or a slow reaction wants
to know about, so this filter lets through that one line of kopf's watch logger,
rewritten at INFO, and drops its other DEBUG lines. It depends on kopf's message,
which is why kopf is pinned (constraints.txt) and a unit test holds the message
of the pinned version.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

KOPF_WATCH_LOGGER = "kopf._cogs.clients.watching"
# kopf: f"Restarting the watch-stream for {resource} {where}." (only on 410 Gone).
_RESTART = re.compile(r"Restarting the watch-stream for (?P<resource>\S+) (?P<where>.+?)\.?$")


class WatchExpiry(logging.Filter):
    """`on_expiry(resource)` is called once per expired watch (e.g. `pods.v1`)."""

    def __init__(self, on_expiry: Callable[[str], None]) -> None:
        super().__init__()
        self._on_expiry = on_expiry

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True
        match = _RESTART.match(record.getMessage())
        if match is None:
            return False
        resource = match["resource"]
        self._on_expiry(resource)
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.msg = "the watch of %s %s expired (410 Gone): listing them all again"
        record.args = (resource, match["where"])
        return True


def install(on_expiry: Callable[[str], None]) -> None:
    """Let kopf's watch logger pass its DEBUG records to `WatchExpiry` (only)."""
    watch_logger = logging.getLogger(KOPF_WATCH_LOGGER)
    for old in [f for f in watch_logger.filters if isinstance(f, WatchExpiry)]:
        watch_logger.removeFilter(old)
    watch_logger.addFilter(WatchExpiry(on_expiry))
    watch_logger.setLevel(logging.DEBUG)
