"""Ordinary faults, injected into a real bridge with a real mosquitto: an extension that
raises in each hook, a stop() that raises, a full disk during a broker outage. Each is
survived with nothing lost, and counted."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from bridge.core.events import Event
from bridge.core.state import Change
from bridge.extensions import Context, Extension
from bridge.service import _build_extensions
from tests.bridge_runner import RunningBridge, bridge_config, logins_across_an_outage
from tests.helpers import Mosquitto, Subscriber

BASE = "qlik2mqtt"
HOOKS = ("start", "on_connect", "on_event", "on_change", "on_message", "stop")


class Broken(Extension):
    """An extension (code the core does not own) that raises in every hook."""

    calls: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads it

    def start(self) -> None:
        self._fail("start")

    async def stop(self) -> None:
        self._fail("stop")

    def on_connect(self) -> None:
        self._fail("on_connect")

    def on_event(self, event: Event, received_at: float) -> None:
        self._fail("on_event")

    def on_change(self, change: Change) -> None:
        self._fail("on_change")

    def subscriptions(self) -> tuple[str, ...]:
        return (f"{BASE}/test/broken",)

    def on_message(self, topic: str, payload: bytes) -> None:
        self._fail("on_message")

    def _fail(self, hook: str) -> None:
        self.calls.append(hook)
        raise RuntimeError(f"broken in {hook}")


@pytest.fixture
def broken_first(mocker: MockerFixture) -> None:
    """The broken extension runs before every real one, so a fault that skipped the rest
    would lose their work."""
    Broken.calls = []

    def build(context: Context) -> list[Extension]:
        return [Broken(context), *_build_extensions(context)]

    mocker.patch("bridge.service._build_extensions", side_effect=build)


@pytest.mark.usefixtures("broken_first")
async def test_an_extension_raising_in_every_hook_stops_nothing_else(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    bridge = RunningBridge(bridge_config(tmp_path, mosquitto.port))
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        await bridge.start()
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        sub.publish(f"{BASE}/test/broken", b"x")
        for number in range(20):
            bridge.users.send(f"QS1;Start session;CORP;user{number:02d}")
        events = await sub.wait_count(f"{BASE}/qs1/event/user", 20)
        assert [m.json()["user_id"] for m in events] == [f"user{n:02d}" for n in range(20)]
        await sub.wait_json(f"{BASE}/qs1", lambda p: p["active_sessions"] == 20)
        stats = await sub.wait_json(
            f"{BASE}/bridge/stats",
            lambda p: (
                p["extension_errors"].get("broken.on_message", 0) == 1
                and p["extension_errors"].get("broken.on_event", 0) == 20
            ),
        )
        assert stats["extension_errors"]["broken.start"] == 1
        assert stats["extension_errors"]["broken.on_connect"] == 1
        assert stats["extension_errors"]["broken.on_change"] >= 1
        mark = sub.mark()
        await bridge.stop()
        # stop() raised, and still: `offline` was published and the state saved.
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"offline", since=mark)
        assert '"user19"' in (tmp_path / "state.json").read_text()
        assert set(Broken.calls) == set(HOOKS)
    finally:
        await sub.stop()
        await bridge.close()


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    """Write until the filesystem refuses another byte."""
    with (disk / "filler").open("wb", buffering=0) as filler:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    filler.write(b"\0" * chunk)
            except OSError:
                continue


async def test_a_full_disk_during_a_broker_outage_loses_no_event(
    tmp_path: Path, small_disk: Path
) -> None:
    broker = Mosquitto(tmp_path, persistence=True)
    broker.start()
    config = bridge_config(tmp_path, broker.port, state_file=str(small_disk / "state.json"))
    bridge = RunningBridge(config)
    try:
        count = 50
        users = await logins_across_an_outage(
            bridge, broker, count, when_down=lambda: fill(small_disk)
        )
        assert users == [f"user{number:03d}" for number in range(count)]
        stats_watcher = await Subscriber(broker.port).start(f"{BASE}/bridge/stats")
        try:
            stats = await stats_watcher.wait_json(
                f"{BASE}/bridge/stats", lambda p: bool(p["problems"]), timeout=20
            )
        finally:
            await stats_watcher.stop()
        assert stats["outbox_disk_errors"] > 0
        assert stats["outbox_dropped"] == 0
        assert any("outbox cannot write to disk" in problem for problem in stats["problems"])
    finally:
        await bridge.close()
        broker.stop()
