"""Broker security against real mosquitto: a password file, a TLS listener with certificates
made by the test, and secrets that never reach a log line."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.certs import make_certificates
from tests.helpers import Mosquitto, Subscriber, bridge_env, complaints

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path, users={"qlik2mqtt": SECRET, "watcher": "watch"})
    broker.start()
    yield broker
    broker.stop()


async def test_username_and_password(tmp_path: Path, locked: Mosquitto) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    config = bridge_config(
        tmp_path,
        locked.port,
        mqtt__username="qlik2mqtt",
        mqtt__password_file=str(tmp_path / "secret"),
    )
    sub = await Subscriber(locked.port, auth=("watcher", "watch")).start("qlik2mqtt/#")
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
        bridge.users.send("QS1;Start session;CORP;anna")
        await sub.wait_json("qlik2mqtt/qs1/event/user", lambda p: p["user_id"] == "anna")
    finally:
        await bridge.close()
        await sub.stop()


def run_cli(args: list[str], env: dict[str, str], seconds: float | None = None) -> str:
    """Run qlik2mqtt; with `seconds`, stop it (SIGTERM) after that long. Returns all output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        out, _ = process.communicate(timeout=seconds or 60)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    return out


def test_a_wrong_password_is_reported_and_no_secret_is_logged(
    tmp_path: Path, locked: Mosquitto
) -> None:
    env = bridge_env(
        locked.port,
        tmp_path,
        QLIK2MQTT_MQTT__USERNAME="qlik2mqtt",
        QLIK2MQTT_MQTT__PASSWORD=SECRET + "-wrong",
        QLIK2MQTT_LOGGING__LEVEL="debug",
    )
    check = run_cli(["check"], env)
    assert "FAIL  mqtt       cannot connect to 127.0.0.1:" in check
    assert "as qlik2mqtt" in check
    running = run_cli(["run"], env, seconds=3.0)  # debug logging, retries, then SIGTERM
    assert "MQTT broker unreachable, retrying" in running
    for output in (check, running):
        assert SECRET not in output


@pytest.mark.parametrize("user", ["qlik2mqtt", "nobody"])
def test_refused_credentials_are_said_in_words_by_every_command(
    tmp_path: Path, locked: Mosquitto, user: str
) -> None:
    """status crashed with gmqtt's MQTTConnectError; acknowledge, forget and start-task said
    "cannot reach the MQTT broker"; every one printed gmqtt's own lines. Now one line each,
    exit 1, naming the broker and what to check (a wrong password: mosquitto answers "not
    authorised" over MQTT 3.1.1)."""
    env = bridge_env(
        locked.port, tmp_path, QLIK2MQTT_MQTT__USERNAME=user, QLIK2MQTT_MQTT__PASSWORD="wrong"
    )
    where = f"127.0.0.1:{locked.port}"
    hint = "check mqtt.username and mqtt.password (or mqtt.password_file)"
    for args in (["status"], ["status", "--watch"], ["acknowledge"], ["forget", "QS1"]):
        result = subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env},
        )  # fmt: skip
        said = complaints(result.stderr)
        assert result.returncode == 1, (args, said)
        assert "Traceback" not in said
        assert "[MqttPackageHandler]" not in said + result.stdout
        assert "TRYING WRITE" not in said + result.stdout
        (line,) = said.splitlines()
        assert where in line, (args, line)
        assert f"the broker refused the connection (not authorised): {hint}" in line, args
    check = run_cli(["check"], env)
    assert f"FAIL  mqtt       cannot connect to {where} as {user}: the broker refused" in check
    assert "[MqttPackageHandler]" not in check


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    certs = make_certificates(tmp_path)
    broker = Mosquitto(tmp_path, tls=(certs.ca_file, certs.certfile, certs.keyfile))
    broker.start()
    yield broker, certs.ca_file
    broker.stop()


async def test_tls_with_the_sites_ca(tmp_path: Path, tls_broker: tuple[Mosquitto, Path]) -> None:
    broker, ca_file = tls_broker
    config = bridge_config(
        tmp_path, broker.port, mqtt__tls={"enabled": True, "ca_file": str(ca_file)}
    )
    client_tls = ssl.create_default_context(cafile=str(ca_file))
    sub = await Subscriber(broker.port, tls=client_tls).start("qlik2mqtt/#")
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
        bridge.tasks.send("QS1;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
    finally:
        await bridge.close()
        await sub.stop()


async def test_tls_verification_is_on_by_default(
    tmp_path: Path, tls_broker: tuple[Mosquitto, Path]
) -> None:
    broker, ca_file = tls_broker
    env = {
        "QLIK2MQTT_MQTT__HOST": "127.0.0.1",
        "QLIK2MQTT_MQTT__PORT": str(broker.port),
        "QLIK2MQTT_MQTT__TLS__ENABLED": "true",
        "QLIK2MQTT_STATE_FILE": str(tmp_path / "state.json"),
    }
    untrusted = await asyncio.to_thread(run_cli, ["check"], env)  # system CAs only
    assert "FAIL  mqtt" in untrusted
    assert "TLS: the broker's certificate is not trusted" in untrusted
    assert "check mqtt.tls.ca_file" in untrusted
    trusted = await asyncio.to_thread(
        run_cli, ["check"], {**env, "QLIK2MQTT_MQTT__TLS__CA_FILE": str(ca_file)}
    )
    assert "PASS  mqtt       connected to 127.0.0.1:" in trusted


def test_tls_and_password_config_errors(tmp_path: Path) -> None:
    from bridge.config import ConfigError, load_config

    (tmp_path / "pw").write_text("x")
    with pytest.raises(ConfigError) as missing:
        load_config(None, environ={"QLIK2MQTT_MQTT__TLS__CA_FILE": str(tmp_path / "none.pem")})
    assert missing.value.problems[0].startswith("mqtt.tls.ca_file: no such file:")
    with pytest.raises(ConfigError) as both:
        load_config(
            None,
            environ={
                "QLIK2MQTT_MQTT__PASSWORD": "a",
                "QLIK2MQTT_MQTT__PASSWORD_FILE": str(tmp_path / "pw"),
            },
        )
    assert [p.split(" (from")[0] for p in both.value.problems] == [
        "mqtt: set password or password_file, not both"
    ]
