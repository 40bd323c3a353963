"""The command line as a user runs it: --version, send-test-events, run with the embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from bridge import __version__
from bridge.cli import main
from bridge.core.events import LogEvent, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.inputs.parse import parse_datagram
from bridge.inputs.testevents import Sample, sample_events
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, bridge_env, complaints, free_port, qlik2mqtt

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
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as logs,
    ):
        for sock in (users, tasks, logs):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
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
            "--log-port",
            str(logs.getsockname()[1]),
        )
        assert result.returncode == 0, result.stderr
        log_port = logs.getsockname()[1]
        user_events = [parse_datagram(users.recv(65535)) for _ in range(7)]
        task_count = 2 if layout == "legacy" else 3
        task_events = [parse_datagram(tasks.recv(65535)) for _ in range(task_count)]
        log_count = 0 if layout == "legacy" else 6
        log_events = [parse_datagram(logs.recv(65535)) for _ in range(log_count)]
        logs.setblocking(False)
        with pytest.raises(BlockingIOError):
            logs.recv(65535)  # nothing more: the sender has exited, every datagram is here
    assert f"sent {7 + task_count + log_count} {layout} datagrams" in result.stdout
    sent_logs = f"log events: UDP {log_port})"
    if layout == "legacy":  # it said UDP <port> and sent none
        sent_logs = "log events: none (Butler's legacy layouts had no log events))"
    assert sent_logs in result.stdout

    assert all(isinstance(e, UserEvent) and e.server == "QSTEST" for e in user_events)
    kinds = [e.event_type for e in user_events if isinstance(e, UserEvent)]
    assert kinds.count(UserEventType.SESSION_START) == 3
    assert kinds.count(UserEventType.SESSION_STOP) == 1
    assert any(isinstance(e, UserEvent) and e.user_id == "jöran" for e in user_events)
    assert all(isinstance(e, TaskEvent) for e in task_events)
    failures = [e for e in task_events if isinstance(e, TaskEvent)]
    assert failures[0].event_type is TaskEventType.TASK_FAILED
    names = (failures[0].task_name, failures[0].app_name)
    if layout == "xml":
        assert names == ("Reload Sales; daily", "Sales € dashboard")
    else:  # the `;` in the task name: which `;` ends it cannot be told, so no guess
        assert names == (None, None)
        assert failures[0].task_id == "7c3e5a10-0000-4000-8000-000000000001"
    if layout != "legacy":
        assert failures[-1].event_type is TaskEventType.TASK_ABORTED
    assert len(sample_events("X")) == 16
    assert all(isinstance(e, LogEvent) and e.server == "QSTEST" for e in log_events), log_events
    parsed = [e for e in log_events if isinstance(e, LogEvent)]
    if layout != "legacy":
        assert {e.source.value for e in parsed} == {"engine", "proxy", "repository", "scheduler"}
        assert {e.source_format.value for e in parsed} == {layout}
        assert {e.level.value for e in parsed} == {"WARN", "ERROR"}
        assert all(e.windows_user == "CORP\\qlikservice" for e in parsed)
        scheduler = next(e for e in parsed if e.source.value == "scheduler")
        assert (scheduler.task_name, scheduler.user_id) == (
            "Reload Sales € dashboard",
            "svc_reload",
        )
        repository = next(e for e in parsed if e.exception_message)
        assert repository.message == "License check failed; the LEF <expired> & cannot be renewed"


async def test_send_test_events_fills_the_topics(
    bridge: RunningBridge, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        result = await bridge.send_test_events(bridge_env(mosquitto.port, tmp_path))
        assert result.returncode == 0, result.stderr
        # The hint names the configured broker, not mosquitto_sub's default localhost:1883.
        hint = f"mosquitto_sub -h 127.0.0.1 -p {mosquitto.port} -t 'qlik2mqtt/#' -v"
        assert f"watch them: {hint}" in result.stdout
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


def test_each_run_has_new_execution_ids_for_the_same_tasks() -> None:
    def ids(run: list[Sample], key: str) -> list[str]:
        return [s.properties[key] for s in run if s.port_kind == "task"]

    first, second = sample_events("QSTEST"), sample_events("QSTEST")
    assert ids(first, "TaskId") == ids(second, "TaskId")
    assert not set(ids(first, "ExecutionId")) & set(ids(second, "ExecutionId"))
    # Within a run the failure is logged twice with one execution id, and folded.
    assert ids(first, "ExecutionId")[0] == ids(first, "ExecutionId")[1]


@pytest.mark.parametrize("layout", ["xml", "legacy"])
async def test_a_second_run_within_the_dedup_window_lights_the_lamp_again(
    bridge: RunningBridge, mosquitto: Mosquitto, tmp_path: Path, layout: str
) -> None:
    """README: send the test events, acknowledge, send them again: the flag goes ON again."""
    assert bridge.config.tasks.dedup_window >= 60
    env = bridge_env(mosquitto.port, tmp_path)
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")

    async def run_then_acknowledge(failed_so_far: int) -> int:
        """One run of the test events, acknowledged; returns how many datagrams it sent."""
        mark = sub.mark()
        result = await bridge.send_test_events(env, "--format", layout)
        assert result.returncode == 0, result.stderr
        sent_line = re.match(r"sent (\d+) ", result.stdout)
        assert sent_line is not None, result.stdout
        site = await sub.wait_json(
            f"{BASE}/site", lambda p: p["failed_tasks"] == failed_so_far, since=mark
        )
        assert site["reload_failure"] == "ON"
        mark = sub.mark()
        acknowledged = await asyncio.to_thread(qlik2mqtt, "acknowledge", env=env)
        assert acknowledged.returncode == 0, acknowledged.stderr
        await sub.wait_json(f"{BASE}/site", lambda p: p["reload_failure"] == "OFF", since=mark)
        return int(sent_line.group(1))

    try:
        sent = await run_then_acknowledge(1)
        sent += await run_then_acknowledge(2)  # at once: well within tasks.dedup_window
        topic = f"{BASE}/qswin01/event/task"

        def is_failure(payload: dict[str, str]) -> bool:
            return payload["event_type"] == "task_failed"

        # A new server's first events wait a second for Home Assistant: await them.
        first = await sub.wait_json(topic, is_failure)
        after_first = next(
            i for i, m in enumerate(sub.messages) if m.topic == topic and m.json() == first
        )
        second = await sub.wait_json(topic, is_failure, since=after_first + 1)
        assert first["execution_id"] != second["execution_id"]
        # The stats once every datagram was handled (a stats message from mid-burst would not
        # count the second run's repeated failure yet).
        stats = await sub.wait_json(f"{BASE}/bridge/stats", lambda p: p["datagrams"] >= sent)
        assert stats["datagrams"] == sent
        assert stats["duplicates"] == 2  # each run's repeated failure folded, the runs not
        failed = [m for m in sub.on(topic) if is_failure(m.json())]
        assert len(failed) == 2
    finally:
        await sub.stop()


@pytest.fixture
def embedded_env() -> dict[str, str]:
    """More settings for `embedded_run` (a test overrides this fixture)."""
    return {}


@pytest.fixture
async def embedded_run(
    tmp_path: Path, embedded_env: dict[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    mqtt_port = free_port()
    settings = bridge_env(mqtt_port, tmp_path, QLIK2MQTT_LOGGING__FORMAT="json", **embedded_env)
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


async def read_log_until(process: asyncio.subprocess.Process, marker: bytes) -> str:
    assert process.stderr is not None
    lines: list[bytes] = []
    async with asyncio.timeout(30):
        while marker not in b"".join(lines):
            line = await process.stderr.readline()
            assert line, b"".join(lines).decode()
            lines.append(line)
    return b"".join(lines).decode()


def embedded_broker_pid(log: str) -> int:
    for line in log.splitlines():
        if "started the embedded MQTT broker" in line:
            return int(json.loads(line)["pid"])
    raise AssertionError(f"no embedded broker in the log: {log}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here (it holds no port); it waits for its parent.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


async def wait_gone(pid: int) -> None:
    """Until the process has ended: its pidfd becomes readable then (Linux)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(pidfd, ended.set)
    try:
        async with asyncio.timeout(10):
            await ended.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def executable_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]


async def test_run_without_mqtt_host_starts_the_embedded_broker(
    embedded_run: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, mqtt_port = embedded_run
    log = await read_log_until(process, b"MQTT connected")
    assert "started the embedded MQTT broker (mosquitto)" in log
    assert f"127.0.0.1:{mqtt_port}" in log
    broker_pid = embedded_broker_pid(log)
    assert executable_of(broker_pid).endswith(b"mosquitto")

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
    assert not process_exists(broker_pid)  # stopped with the bridge, not left behind


async def test_the_embedded_broker_gives_each_subscriber_its_own_retained_messages(
    embedded_run: tuple[asyncio.subprocess.Process, int],
) -> None:
    """amqtt, the earlier embedded broker, handed each new subscriber the previous one's
    retained message first."""
    process, mqtt_port = embedded_run
    await read_log_until(process, b"MQTT connected")
    publisher = await Subscriber(mqtt_port).start("a/3")
    try:
        for name in ("a/1", "a/2", "a/3"):
            publisher.publish(name, f"val-{name}".encode(), retain=True)
        await publisher.wait_for("a/3")  # the broker has all three once the last is back
        for name in ("a/2", "a/3", "a/1", f"{BASE}/bridge/stats"):
            sub = await Subscriber(mqtt_port).start(name)
            try:
                first = await sub.wait_for(name)
                assert first.retain
                if name.startswith("a/"):
                    assert first.payload == f"val-{name}".encode()
                # Nothing of another topic came before or with it.
                assert {message.topic for message in sub.messages} == {name}
            finally:
                await sub.stop()
    finally:
        await publisher.stop()


async def test_sigkill_of_the_bridge_takes_the_embedded_broker_with_it(
    embedded_run: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, _ = embedded_run
    broker_pid = embedded_broker_pid(await read_log_until(process, b"MQTT connected"))
    process.kill()
    await process.wait()
    await wait_gone(broker_pid)


def test_without_mosquitto_run_exits_2_saying_what_to_do(
    tmp_path: Path, mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mosquitto cannot be uninstalled for a test: its lookup is told it found none."""
    mocker.patch("bridge.mqtt.embedded.find_mosquitto", return_value=None)
    settings = bridge_env(free_port(), tmp_path)
    del settings["QLIK2MQTT_MQTT__HOST"]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("QLIK2MQTT_CONFIG", raising=False)
    assert main(["run"]) == 2
    assert not (tmp_path / "mosquitto").exists()


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


def test_a_taken_embedded_broker_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Debian's mosquitto service on 1883 is the likely first thing a new user meets."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bridge_env(port, tmp_path)
        del env["QLIK2MQTT_MQTT__HOST"]
        result = qlik2mqtt("run", env=env)
    assert result.returncode == 2
    lines = complaints(result.stderr).strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qlik2mqtt: 127.0.0.1:{port} is in use")
    assert "mqtt.host" in lines[0]
    assert "mqtt.port" in lines[0]


async def test_send_test_events_says_when_allowed_sources_will_refuse_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """docs/appenders.md advises listing the Qlik nodes only: from the bridge host the test
    events are then refused, and the command says so instead of reporting success."""
    nodes = ["10.20.0.11", "10.20.0.12/32"]
    config = bridge_config(tmp_path, mosquitto.port, udp__allowed_sources=nodes)
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/bridge/stats")
    env = bridge_env(
        mosquitto.port,
        tmp_path,
        QLIK2MQTT_UDP__ALLOWED_SOURCES=json.dumps(nodes),
        QLIK2MQTT_UDP__USER_ACTIVITY_PORT=str(config.udp.user_activity_port),
        QLIK2MQTT_UDP__TASK_PORT=str(config.udp.task_port),
    )
    try:
        result = await asyncio.to_thread(qlik2mqtt, "send-test-events", env=env)
        assert result.returncode == 1
        assert complaints(result.stderr).strip() == (
            "qlik2mqtt: the bridge will refuse these datagrams: they leave this host from "
            "127.0.0.1, which udp.allowed_sources (10.20.0.11/32, 10.20.0.12/32) does not list; "
            "add 127.0.0.1 to udp.allowed_sources to test from here (docs/appenders.md)"
        )
        assert "watch them" not in result.stdout
        # What it said is what the bridge did: every datagram refused for its source.
        stats = await sub.wait_json(
            f"{BASE}/bridge/stats", lambda p: p["rejected"]["source_not_allowed"] == 10
        )
        assert stats["events"] == 0

        env["QLIK2MQTT_UDP__ALLOWED_SOURCES"] = json.dumps([*nodes, "127.0.0.1"])
        result = await asyncio.to_thread(qlik2mqtt, "send-test-events", env=env)
        assert (result.returncode, complaints(result.stderr)) == (0, "")
        # (the bridge still runs with the first list: this checks the command's verdict only)
    finally:
        await sub.stop()
        await bridge.close()


def test_the_source_checked_is_the_one_the_kernel_picks(tmp_path: Path) -> None:
    """Sent to 127.0.0.5, datagrams leave from 127.0.0.1: allowing the destination is not
    allowing the sender."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as users:
        users.bind(("127.0.0.5", 0))
        port = str(users.getsockname()[1])
        env = {
            "QLIK2MQTT_UDP__ALLOWED_SOURCES": '["127.0.0.5"]',
            "QLIK2MQTT_STATE_FILE": str(tmp_path / "state.json"),
        }
        args = ("send-test-events", "--host", "127.0.0.5", "--user-port", port, "--task-port")
        refused = qlik2mqtt(*args, port, env=env)
        env["QLIK2MQTT_UDP__ALLOWED_SOURCES"] = '["127.0.0.0/8"]'
        allowed = qlik2mqtt(*args, port, env=env)
    assert refused.returncode == 1
    assert "leave this host from 127.0.0.1, which udp.allowed_sources (127.0.0.5/32)" in (
        refused.stderr
    )
    assert (allowed.returncode, complaints(allowed.stderr)) == (0, "")


async def test_an_embedded_broker_that_dies_is_started_again(
    embedded_run: tuple[asyncio.subprocess.Process, int],
) -> None:
    """mosquitto killed under the running bridge (a crash, the OOM killer): the bridge starts
    it again and reconnects; a subscriber sees the bridge online again."""
    process, mqtt_port = embedded_run
    first_pid = embedded_broker_pid(await read_log_until(process, b"MQTT connected"))
    os.kill(first_pid, signal.SIGKILL)
    log = await read_log_until(process, b"embedded broker started again")
    assert '"exit_code": -9' in log
    await read_log_until(process, b"MQTT connected")
    sub = await Subscriber(mqtt_port).start(f"{BASE}/bridge/state")
    try:
        state = await sub.wait_for(f"{BASE}/bridge/state")
        assert state.payload == b"online"
    finally:
        await sub.stop()
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await process.wait() == 0


PASSWORD = "s3cret-Pa55"


@pytest.mark.parametrize(
    "embedded_env",
    [{"QLIK2MQTT_MQTT__USERNAME": "bridge", "QLIK2MQTT_MQTT__PASSWORD": PASSWORD}],
)
async def test_with_credentials_the_embedded_broker_takes_only_that_user(
    embedded_run: tuple[asyncio.subprocess.Process, int], tmp_path: Path
) -> None:
    """It was anonymous whatever the config said: every local user could press the buttons."""
    process, mqtt_port = embedded_run
    await read_log_until(process, b"MQTT connected")  # the bridge, with its credentials

    def sub(*auth: str, topic: str = "qlik2mqtt/bridge/state") -> subprocess.CompletedProcess[str]:
        command = ["mosquitto_sub", "-p", str(mqtt_port), "-t", topic, "-C", "1", "-W", "5"]
        return subprocess.run([*command, *auth], capture_output=True, text=True, check=False)

    anonymous = await asyncio.to_thread(sub)
    assert anonymous.returncode != 0
    assert "not authorised" in (anonymous.stderr + anonymous.stdout).lower()
    wrong = await asyncio.to_thread(sub, "-u", "bridge", "-P", "wrong")
    assert wrong.returncode != 0
    right = await asyncio.to_thread(sub, "-u", "bridge", "-P", PASSWORD)
    assert right.stdout.strip() == "online", right.stderr
    outside = await asyncio.to_thread(sub, "-u", "bridge", "-P", PASSWORD, topic="elsewhere/#")
    assert outside.stdout == ""  # the ACL: the bridge's topics only
    passwords = tmp_path / "data/mosquitto/passwords"
    assert passwords.stat().st_mode & 0o077 == 0
    assert PASSWORD not in passwords.read_text()  # hashed by mosquitto_passwd


async def test_acknowledge_waits_for_the_bridges_answer(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    env = {"QLIK2MQTT_MQTT__HOST": "127.0.0.1", "QLIK2MQTT_MQTT__PORT": str(mosquitto.port)}
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/site", f"{BASE}/bridge/state")
    try:
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        bridge.tasks.send("QSPROD02;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json(f"{BASE}/site", lambda p: p["reload_failure"] == "ON")
        mark = sub.mark()
        acknowledged = await asyncio.to_thread(qlik2mqtt, "acknowledge", env=env)
        assert (acknowledged.returncode, complaints(acknowledged.stderr)) == (0, "")
        assert acknowledged.stdout == "acknowledged: reload_failure and the log flags are OFF\n"
        await sub.wait_json(f"{BASE}/site", lambda p: p["reload_failure"] == "OFF", since=mark)
    finally:
        await sub.stop()


def test_acknowledge_and_forget_without_a_bridge_exit_1_saying_none_answered(
    mosquitto: Mosquitto,
) -> None:
    """Issue 22, finding 4: it printed "acknowledge sent" and exited 0 with nobody listening."""
    env = {"QLIK2MQTT_MQTT__HOST": "127.0.0.1", "QLIK2MQTT_MQTT__PORT": str(mosquitto.port)}
    for args, response in (
        (("acknowledge",), "acknowledge"),
        (("forget", "QSPROD02"), "forget"),
    ):
        result = qlik2mqtt(*args, env=env)
        assert result.returncode == 1
        assert result.stdout == ""
        assert complaints(result.stderr) == (
            f"qlik2mqtt: {args[0]}: no answer from the bridge within 10 s on "
            f"qlik2mqtt/bridge/response/{response} (is it running on this broker, with this "
            "command enabled?)\n"
        )


def test_start_task_says_at_once_when_the_config_has_qrs_off(tmp_path: Path) -> None:
    """No broker at all: the command reads the config and stops there."""
    env = {"QLIK2MQTT_MQTT__HOST": "127.0.0.1", "QLIK2MQTT_MQTT__PORT": str(free_port())}
    result = qlik2mqtt("start-task", "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f", env=env)
    assert result.returncode == 2
    assert complaints(result.stderr) == (
        "qlik2mqtt: start-task: qrs.enabled is off in this config: the bridge starts no tasks "
        "(docs/qrs.md)\n"
    )
