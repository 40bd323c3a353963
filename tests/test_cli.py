"""The command line as a user runs it: --version, send-test-events, run with the embedded broker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge import __version__
from bridge.events import TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.parse import parse_datagram
from bridge.testevents import sample_events
from tests.bridge_runner import RunningBridge
from tests.helpers import Mosquitto, Subscriber, bridge_env, free_port, qlik2mqtt

BASE = "qlik2mqtt"


def test_version() -> None:
    result = qlik2mqtt("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"qlik2mqtt {__version__}"


@pytest.mark.parametrize("layout", ["legacy", "tagged", "xml"])
def test_send_test_events_datagrams_parse_to_the_intended_events(layout: str) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as users,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tasks,
    ):
        users.bind(("127.0.0.1", 0))
        tasks.bind(("127.0.0.1", 0))
        result = qlik2mqtt(
            "send-test-events",
            "--format",
            layout,
            "--server",
            "QSTEST",
            "--user-port",
            str(users.getsockname()[1]),
            "--task-port",
            str(tasks.getsockname()[1]),
        )
        assert result.returncode == 0, result.stderr
        users.settimeout(5)
        tasks.settimeout(5)
        user_events = [parse_datagram(users.recv(65535)) for _ in range(7)]
        task_count = 2 if layout == "legacy" else 3
        task_events = [parse_datagram(tasks.recv(65535)) for _ in range(task_count)]

    assert all(isinstance(e, UserEvent) and e.server == "QSTEST" for e in user_events)
    kinds = [e.event_type for e in user_events if isinstance(e, UserEvent)]
    assert kinds.count(UserEventType.SESSION_START) == 3
    assert kinds.count(UserEventType.SESSION_STOP) == 1
    assert any(isinstance(e, UserEvent) and e.user_id == "jöran" for e in user_events)
    assert all(isinstance(e, TaskEvent) for e in task_events)
    failures = [e for e in task_events if isinstance(e, TaskEvent)]
    assert failures[0].event_type is TaskEventType.TASK_FAILED
    assert failures[0].task_name == "Reload Sales; daily"
    assert failures[0].app_name == "Sales € dashboard"
    if layout != "legacy":
        assert failures[-1].event_type is TaskEventType.TASK_ABORTED
    assert len(sample_events("X")) == 10


async def test_send_test_events_fills_the_topics(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        result = await asyncio.to_thread(
            qlik2mqtt,
            "send-test-events",
            "--user-port",
            str(bridge.config.udp.user_activity_port),
            "--task-port",
            str(bridge.config.udp.task_port),
        )
        assert result.returncode == 0, result.stderr
        assert "mosquitto_sub -t 'qlik2mqtt/#' -v" in result.stdout
        site = await sub.wait_json(
            f"{BASE}/site", lambda p: p["active_sessions"] == 2 and p["aborted_tasks"] == 1
        )
        assert (site["reload_failure"], site["failed_tasks"], site["active_connections"]) == (
            "ON",
            1,
            2,
        )
        await sub.wait_count(f"{BASE}/qswin01/event/task", 2)  # the repeated failure folded
    finally:
        await sub.stop()


@pytest.fixture
async def embedded_run(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    mqtt_port = free_port()
    settings = bridge_env(mqtt_port, tmp_path, QLIK2MQTT_LOGGING__FORMAT="json")
    del settings["QLIK2MQTT_MQTT__HOST"]  # no broker named: the embedded one starts
    env = {**os.environ, **settings}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "run",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process, mqtt_port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_run_without_mqtt_host_starts_the_embedded_broker(
    embedded_run: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, mqtt_port = embedded_run
    assert process.stderr is not None
    lines: list[bytes] = []
    async with asyncio.timeout(30):
        while b"MQTT connected" not in b"".join(lines):
            line = await process.stderr.readline()
            assert line, b"".join(lines).decode()
            lines.append(line)
    log = b"".join(lines).decode()
    assert "started the embedded MQTT broker (amqtt)" in log
    assert f"127.0.0.1:{mqtt_port}" in log

    sub = await Subscriber(mqtt_port).start(f"{BASE}/bridge/#")
    try:
        state = await sub.wait_for(f"{BASE}/bridge/state")
        assert state.payload == b"online"
        info = await sub.wait_json(f"{BASE}/bridge/info", lambda p: True)
        assert info["embedded_broker"] is True
    finally:
        await sub.stop()

    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await process.wait() == 0


def test_a_port_in_use_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        env = bridge_env(free_port(), tmp_path, QLIK2MQTT_UDP__USER_ACTIVITY_PORT=str(port))
        result = qlik2mqtt("run", env=env)
    assert result.returncode == 1
    assert f"qlik2mqtt: cannot listen on UDP 127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
