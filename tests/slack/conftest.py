"""The Slack tests' local Slack server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slack_server import SlackServer


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()
