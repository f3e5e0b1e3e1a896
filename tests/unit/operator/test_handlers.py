"""kopf's settings: it posts no Events of its own (the controller does)."""

from __future__ import annotations

import kopf
import pytest

from mlmodel_operator.handlers import configure_kopf

pytestmark = pytest.mark.unit


def test_kopf_posts_no_events_and_its_watches_are_ended_by_the_server_first() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.posting.enabled is False
    server, client = settings.watching.server_timeout, settings.watching.client_timeout
    assert server is not None
    assert client is not None
    assert server < client
