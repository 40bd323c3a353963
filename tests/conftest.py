from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.certs import Certificates, make_certificates
from tests.helpers import Mosquitto
from tests.qrs_server import KNOWN_TASK_IDS, KNOWN_TASK_NAMES, QrsServer, known_reload_tasks

LOOP_CHOICES = ("uvloop", "asyncio", "both")


def _event_loops(choice: str) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loops for `choice`: uvloop (asyncio's where it is not installed), asyncio's own,
    or both."""
    if choice not in LOOP_CHOICES:
        raise pytest.UsageError(f"event loop {choice!r}: say uvloop, asyncio or both")
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    if choice in ("uvloop", "both"):
        try:
            import uvloop
        except ImportError:  # not installed where it is not supported (Windows)
            pass
        else:
            loops["uvloop"] = uvloop.new_event_loop
    if choice in ("asyncio", "both") or not loops:
        loops["asyncio"] = asyncio.new_event_loop
    return loops


def _chosen() -> str:
    """TEST_EVENT_LOOP: uvloop by default, the bridge's own loop (`bridge.cli` runs on it
    wherever it is installed: all but Windows)."""
    return os.environ.get("TEST_EVENT_LOOP", "uvloop")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "event_loops(choice): run this async test on `choice` (uvloop, asyncio or both) "
        "whatever TEST_EVENT_LOOP says: where the loops differ in what the test is about",
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    marker = item.get_closest_marker("event_loops")
    return _event_loops(marker.args[0] if marker is not None else _chosen())


def pytest_report_header(config: pytest.Config) -> str:
    return "event loops of async tests: " + ", ".join(_event_loops(_chosen()))


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


@pytest.fixture(scope="session")
def qrs_certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA made for the test session, QRS's server certificate and the bridge's client
    certificate, both signed by it (as the QMC's export)."""
    return make_certificates(tmp_path_factory.mktemp("qrs-certs"))


@pytest.fixture
def qrs_server(qrs_certs: Certificates) -> Iterator[QrsServer]:
    """A local QRS (tests/qrs_server.py) that knows `KNOWN_TASK_IDS` and `KNOWN_TASK_NAMES`."""
    running = QrsServer(
        qrs_certs,
        task_ids=set(KNOWN_TASK_IDS),
        task_names=set(KNOWN_TASK_NAMES),
        reloadtasks=known_reload_tasks(),  # what the retry confirms before it starts one
    ).start()
    yield running
    running.stop()
