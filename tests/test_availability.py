"""`<base>/bridge/state` tells the truth (issue 22, finding 2): a bridge restarted at once ends
`online`, `offline` comes once per shutdown, a running bridge takes its availability back from
another writer, and a second bridge on the same state file waits for the first."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.service import StartupError, run
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import ROOT, Mosquitto, Subscriber, UdpSender, bridge_env
from tests.slack_server import HangingServer

STATE = "qlik2mqtt/bridge/state"
STATS = "qlik2mqtt/bridge/stats"


@pytest.fixture
def slow_slack() -> Iterator[HangingServer]:
    server = HangingServer()  # takes the post and never answers: the sink waits out its grace
    yield server
    server.stop()


def slow_slack_env(mosquitto: Mosquitto, tmp_path: Path, slack: HangingServer) -> dict[str, str]:
    """A bridge's environment whose Slack answers nothing for seconds (2 s timeout)."""
    return bridge_env(
        mosquitto.port,
        tmp_path,
        QLIK2MQTT_SLACK__ENABLED="true",
        QLIK2MQTT_SLACK__WEBHOOK_URL=f"{slack.url}/hook",
        QLIK2MQTT_SLACK__TIMEOUT="2",
    )


def send_failure(env: dict[str, str]) -> None:
    """A reload failure in Butler's legacy line, to the bridge of `env`."""
    UdpSender(int(env["QLIK2MQTT_UDP__TASK_PORT"])).send("QSPROD02;Reload Sales;Sales;CORP\\svc")


async def start_bridge(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run",
        env={**os.environ, **env}, cwd=ROOT, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def log_until(process: asyncio.subprocess.Process, marker: bytes) -> str:
    assert process.stderr is not None
    lines: list[bytes] = []
    async with asyncio.timeout(60):
        while not lines or marker not in lines[-1]:
            line = await process.stderr.readline()
            assert line, b"".join(lines).decode()
            lines.append(line)
    return b"".join(lines).decode()


async def retained(port: int, topic: str) -> bytes:
    """What a subscriber arriving now is given on `topic`."""
    late = await Subscriber(port).start(topic)
    try:
        return (await late.wait_for(topic)).payload
    finally:
        await late.stop()


async def test_a_bridge_restarted_at_once_with_a_slow_slack_ends_online(
    tmp_path: Path, mosquitto: Mosquitto, slow_slack: HangingServer
) -> None:
    """SIGTERM, and the same bridge started again at once (systemd `Restart=`), while a slow
    Slack holds the first one's shutdown for seconds: the second waits for the first, whose
    `offline` (once) comes before the second's `online`, which stays."""
    env = slow_slack_env(mosquitto, tmp_path, slow_slack)
    sub = await Subscriber(mosquitto.port).start(STATE)
    first = await start_bridge(env)
    second: asyncio.subprocess.Process | None = None
    try:
        await log_until(first, b"MQTT connected")
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        send_failure(env)  # Slack is posted to: the slow Slack holds the shutdown
        await asyncio.to_thread(slow_slack.wait_for, 1)
        first.send_signal(signal.SIGTERM)
        await log_until(first, b"shutting down")
        second = await start_bridge(env)
        waited = await log_until(second, b"MQTT connected")
        assert "waiting for the bridge that uses this state file to stop" in waited
        assert await asyncio.wait_for(first.wait(), 60) == 0
        await sub.wait_count(STATE, 3)
        await sub.wait_quiet(0.5)
        assert sub.payloads(STATE) == [b"online", b"offline", b"online"]
        assert await retained(mosquitto.port, STATE) == b"online"
    finally:
        await sub.stop()
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.communicate(), 60)


async def test_offline_is_published_once_per_shutdown(
    tmp_path: Path, mosquitto: Mosquitto, slow_slack: HangingServer
) -> None:
    """The goodbye waits for the broker's PUBACK of `offline`: a socket closed while the
    broker answers made mosquitto take the DISCONNECT for a lost connection and publish the
    will as well (seen when a slow Slack held the shutdown)."""
    env = slow_slack_env(mosquitto, tmp_path, slow_slack)
    sub = await Subscriber(mosquitto.port).start(STATE)
    process = await start_bridge(env)
    try:
        await log_until(process, b"MQTT connected")
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        send_failure(env)  # Slack is posted to: the slow Slack holds the shutdown
        await asyncio.to_thread(slow_slack.wait_for, 1)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
        await sub.wait_for(STATE, lambda m: m.payload == b"offline")
        await sub.wait_quiet(0.5)
        assert sub.payloads(STATE) == [b"online", b"offline"]
        broker_log = (tmp_path / f"mosquitto-{mosquitto.port}.log").read_text()
        assert "disconnected due to" not in broker_log  # a clean goodbye: no will
    finally:
        await sub.stop()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_retained_offline_from_another_client_is_replaced_by_online(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(STATE, STATS)
    try:
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        mark = sub.mark()
        sub.publish(STATE, b"offline", retain=True)  # a stray will, a hand-typed command
        await sub.wait_for(STATE, lambda m: m.payload == b"online", since=mark)
        assert await retained(mosquitto.port, STATE) == b"online"
        stats = await sub.wait_json(STATS, lambda p: p["availability_reasserted"] == 1)
        assert stats["problems"] == []
    finally:
        await sub.stop()


async def test_a_second_bridge_on_the_same_state_file_refuses_with_one_line(
    bridge: RunningBridge,
) -> None:
    with pytest.raises(StartupError) as refused:
        await run(bridge.config, asyncio.Event(), lock_wait=0.3)
    assert str(refused.value) == (
        f"another qlik2mqtt (pid {os.getpid()}) runs with the state file "
        f"{bridge.config.state_file} and did not stop within 0.3 s: stop it first, or give "
        "this one its own state_file"
    )


async def test_the_first_stats_after_a_start_has_no_stale_problems(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The health report's problems are worked out again at connect: the first retained
    `bridge/stats` does not say `not connected to the MQTT broker` while connected."""
    sub = await Subscriber(mosquitto.port).start(STATS)
    running = RunningBridge(bridge_config(tmp_path, mosquitto.port))
    try:
        await running.start()
        first = await sub.wait_for(STATS)
        assert first.json()["problems"] == []
    finally:
        await running.close()
        await sub.stop()
