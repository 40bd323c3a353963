"""`qlik2mqtt check`, `status` and `health`, run as an administrator would."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.core.stats import Stats
from bridge.ops.health import PROBLEM_WINDOW, Facts, HealthWriter, RecentErrors, check_health
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import (
    ROOT,
    Mosquitto,
    Subscriber,
    bridge_env,
    free_port,
    healthy_report,
    qlik2mqtt,
)


def env_for(mqtt_port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    return bridge_env(mqtt_port, tmp_path, COLUMNS="160", **extra)


def test_check_passes_against_a_live_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = qlik2mqtt("check", env=env_for(mosquitto.port, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines()}
    assert verdicts["config"] == verdicts["mqtt"] == verdicts["state"] == "PASS"
    assert {verdicts["udp"]} <= {"PASS", "WARN"}  # WARN: a capped receive buffer (not root)
    assert f"connected to 127.0.0.1:{mosquitto.port}" in result.stdout
    assert "queued events" in result.stdout


def test_check_warns_when_a_secret_file_is_readable_by_others(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """As ssh does for a private key: a password file others may read is a WARN naming the
    fix; the password itself is never shown."""
    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    env = env_for(mosquitto.port, tmp_path, QLIK2MQTT_MQTT__PASSWORD_FILE=str(secret))
    shared = qlik2mqtt("check", env=env)
    warnings = [line for line in shared.stdout.splitlines() if line.split()[1:2] == ["secrets"]]
    assert [line.split()[0] for line in warnings] == ["WARN"], shared.stdout
    assert f"mqtt.password_file {secret}" in warnings[0]
    assert f"(mode 0644): chmod 600 {secret}" in warnings[0]
    assert "hunter2" not in shared.stdout + shared.stderr
    secret.chmod(0o600)
    private = qlik2mqtt("check", env=env)
    assert " secrets " not in private.stdout


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root, to drop it"
)
def test_check_warns_when_the_kernel_caps_the_receive_buffer(tmp_path: Path) -> None:
    """Not root, the kernel grants at most net.core.rmem_max: check says so, and passes.
    A state folder this user cannot reach is a FAIL with the reason, not a traceback."""
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    env = env_for(free_port(), tmp_path, QLIK2MQTT_UDP__RECEIVE_BUFFER_BYTES=str(4 * rmem_max))
    env.pop("QLIK2MQTT_MQTT__HOST")  # the embedded broker's port is only checked, not used
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*nobody, sys.executable, "-m", "bridge", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=ROOT / "tests",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "FAIL  state      cannot reach" in result.stdout  # pytest's folders are root's
    assert "Permission denied" in result.stdout
    udp_lines = [line for line in result.stdout.splitlines() if " udp " in f" {line} "]
    assert udp_lines
    for line in udp_lines:
        assert line.startswith("WARN  udp")
        assert "raise net.core.rmem_max or run as root" in line


def test_check_reports_a_dead_broker_and_a_taken_port(tmp_path: Path) -> None:
    env = env_for(free_port(), tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", int(env["QLIK2MQTT_UDP__TASK_PORT"])))
        result = qlik2mqtt("check", env=env)
    assert result.returncode == 1
    assert "FAIL  mqtt       cannot connect to 127.0.0.1:" in result.stdout
    assert "connection refused" in result.stdout
    assert "Address already in use (is qlik2mqtt already running?)" in result.stdout
    assert "Traceback" not in result.stderr


def test_check_reports_a_bad_key_as_a_config_error(tmp_path: Path) -> None:
    result = qlik2mqtt("check", env={"QLIK2MQTT_MQTT__PROT": "1884"})
    assert result.returncode == 2
    assert "config error: mqtt.prot: unknown key" in result.stderr


async def test_status_shows_what_the_bridge_published(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = bridge_config(tmp_path, mosquitto.port)
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        env = env_for(mosquitto.port, tmp_path)
        sent = await asyncio.to_thread(
            qlik2mqtt,
            "send-test-events",
            "--user-port",
            str(config.udp.user_activity_port),
            "--task-port",
            str(config.udp.task_port),
            env=env,
        )
        assert sent.returncode == 0, sent.stderr
        await sub.wait_json(
            "qlik2mqtt/qswin01", lambda p: p["active_sessions"] == 2 and p["aborted_tasks"] == 1
        )
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 10)
        # Wide enough for the task name on one line (tests/test_status.py: 80 columns).
        result = await asyncio.to_thread(qlik2mqtt, "status", env={**env, "COLUMNS": "120"})
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "qlik2mqtt online" in out
        assert "reload failure: ON" in out
        row = next(line for line in out.splitlines() if "QSWIN01" in line and "last:" not in line)
        # sessions, connections, failed, aborted
        assert re.findall(r"\b\d+\b", row)[:4] == ["2", "2", "1", "1"]
        assert "Reload Sales; daily" in row
        assert "10 (1 duplicate folded)" in out
    finally:
        await sub.stop()
        await bridge.close()


def test_status_without_a_bridge_says_so(tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = qlik2mqtt("status", env=env_for(mosquitto.port, tmp_path))
    assert result.returncode == 1
    assert "no qlik2mqtt bridge has published under qlik2mqtt/" in result.stderr


async def test_health_follows_the_running_bridge(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = bridge_config(tmp_path, mosquitto.port)
    env = {"QLIK2MQTT_STATE_FILE": str(config.state_file)}
    assert (await asyncio.to_thread(qlik2mqtt, "health", env=env)).returncode == 1
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/bridge/state")
    try:
        await sub.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
        await healthy_report(config.state_file.with_name("health.json"))
        result = await asyncio.to_thread(qlik2mqtt, "health", env=env)
        assert result.returncode == 0, result.stdout
        assert "healthy: connected to MQTT, listening on UDP" in result.stdout
    finally:
        await sub.stop()
        await bridge.close()
    result = await asyncio.to_thread(qlik2mqtt, "health", env=env)
    assert result.returncode == 1  # stopped: the report is gone


def test_health_rules(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    writer = HealthWriter(path)
    healthy = Facts(mqtt_connected=True, udp_ports=[9997], udp_expected=1)
    writer.write(healthy, now=1000.0)
    assert check_health(path, now=1010.0) == (True, "connected to MQTT, listening on UDP 9997")
    assert check_health(path, now=1100.0)[0] is False  # stale: the bridge hangs
    writer.write(Facts(mqtt_connected=False, udp_ports=[9997], udp_expected=1), now=1000.0)
    assert check_health(path, now=1001.0) == (False, "not connected to the MQTT broker")
    dead = Facts(mqtt_connected=True, mqtt_alive=False, udp_ports=[9997], udp_expected=1)
    writer.write(dead, now=1000.0)
    assert check_health(path, now=1001.0) == (False, "the MQTT supervisor is not running")
    writer.write(Facts(mqtt_connected=True, udp_ports=[9997], udp_expected=2), now=1000.0)
    assert check_health(path, now=1001.0) == (False, "a UDP listener is not listening")
    stalled = Facts(mqtt_connected=True, udp_ports=[9997], udp_expected=1, undelivered_for=301)
    writer.write(stalled, now=1000.0)
    assert check_health(path, now=1001.0)[1].startswith("events undelivered for 301 s")
    # A full disk is a problem shown, not a failure: the bridge still delivers.
    full = Facts(
        mqtt_connected=True,
        udp_ports=[9997],
        udp_expected=1,
        outbox_disk_ok=False,
        state_saved=False,
    )
    writer.write(full, now=1000.0)
    healthy_still, reason = check_health(path, now=1001.0)
    assert healthy_still
    assert "the outbox cannot write to disk" in reason
    assert "the state file cannot be saved" in reason
    writer.remove()
    assert not path.exists()


async def test_commands_from_another_folder_find_the_bridge_started_with_config(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """README's flow: `run --config config.yaml` in one folder, then `health`, `check` and
    `acknowledge` from another, naming no config (issue 18 #2, #3, #4)."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    user_port, task_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    (site / "config.yaml").write_text(
        f"udp: {{host: 127.0.0.1, user_activity_port: {user_port}, task_port: {task_port}, "
        "log_port: 0}\n"
        f"mqtt: {{host: 127.0.0.1, port: {mosquitto.port}}}\n"
        "state_file: data/state.json\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("QLIK2MQTT_")  # only what the config file says
    }
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--config", "config.yaml",
        cwd=site, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    try:
        await healthy_report(site / "data" / "health.json")
        healthy = await asyncio.to_thread(command, "health")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        mine = f"config: the running bridge's (pid {bridge.pid}, {site / 'config.yaml'})"
        assert mine in healthy.stderr
        assert not (elsewhere / "data").exists()  # no second data folder

        checked = await asyncio.to_thread(command, "check")
        assert checked.returncode == 0, checked.stdout
        assert f"127.0.0.1:{user_port} is held by the running bridge" in checked.stdout
        assert f"127.0.0.1:{task_port} is held by the running bridge" in checked.stdout

        sub = await Subscriber(mosquitto.port).start("qlik2mqtt/bridge/request/acknowledge")
        try:
            acknowledged = await asyncio.to_thread(command, "acknowledge")
            assert acknowledged.returncode == 0, acknowledged.stderr
            await sub.wait_for("qlik2mqtt/bridge/request/acknowledge")
        finally:
            await sub.stop()
    finally:
        bridge.terminate()
        assert await asyncio.wait_for(bridge.wait(), 30) == 0
    # Stopped: its note is gone, so a command no longer finds it.
    after = await asyncio.to_thread(command, "health")
    assert after.returncode == 1
    assert "the running bridge's" not in after.stderr
    assert "config: none (built-in defaults and QLIK2MQTT_* variables)" in after.stderr


def test_recent_extension_errors_are_a_problem_for_ten_minutes_not_a_failure() -> None:
    stats = Stats()
    recent = RecentErrors(since=0.0)
    stats.extension_errors["slack_sink.post"] += 2  # before the first report: counted
    assert recent.count(stats, 1.0) == 2
    assert recent.count(stats, PROBLEM_WINDOW + 2.0) == 0  # ten minutes later: gone
    stats.extension_errors["alert_outputs.blink"] += 1
    assert recent.count(stats, PROBLEM_WINDOW + 3.0) == 1
    facts = Facts(mqtt_connected=True, udp_ports=[9997], udp_expected=1, extension_errors_lately=1)
    assert facts.failures() == []
    assert facts.problems() == [
        "1 extension errors in the last 10 minutes (see extension_errors and the log)"
    ]
