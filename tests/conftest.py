from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto


@pytest.fixture(autouse=True, scope="session")
def _own_running_notes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Bridges started by the tests leave their notes (bridge.ops.running) in a folder of this
    test session, and commands find no bridge of the developer's or another test run."""
    folder = tmp_path_factory.mktemp("runtime")
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield
    if before is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = before


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
