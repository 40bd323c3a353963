from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def bridge(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[RunningBridge]:
    """The bridge, running in-process against `mosquitto`, with the test defaults."""
    running = RunningBridge(bridge_config(tmp_path, mosquitto.port))
    await running.start()
    yield running
    await running.close()
