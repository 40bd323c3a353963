"""Home Assistant discovery against a real mosquitto: what HA would receive, and when."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, qlik2mqtt

PREFIX = "homeassistant"
SERVER_CONFIG = f"{PREFIX}/sensor/qlik2mqtt/qsprod02_active_sessions/config"
FLAG_CONFIG = f"{PREFIX}/binary_sensor/qlik2mqtt/reload_failure/config"
BUTTON_CONFIG = f"{PREFIX}/button/qlik2mqtt/acknowledge/config"


async def retained(port: int, pattern: str, expect: str) -> Subscriber:
    """A subscriber that arrives (as HA does at its start) once the broker holds `expect`."""
    watcher = await Subscriber(port).start(pattern)
    try:
        await watcher.wait_for(expect)  # published, live or retained: the broker has it
    finally:
        await watcher.stop()
    sub = await Subscriber(port).start(pattern)
    await sub.wait_for(expect)
    return sub


async def test_bridge_configs_are_retained_valid_json(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    last_config = f"{PREFIX}/sensor/qlik2mqtt/last_event/config"  # the bridge sends it last
    sub = await retained(mosquitto.port, f"{PREFIX}/#", last_config)
    try:
        await sub.wait_for(FLAG_CONFIG)
        configs = [m for m in sub.messages if m.topic.startswith(f"{PREFIX}/")]
        assert all(m.retain for m in configs)
        payloads = [json.loads(m.payload) for m in configs]
        assert all(p["availability_topic"] == "qlik2mqtt/bridge/state" for p in payloads)
        assert not sub.on(SERVER_CONFIG)  # no server has sent anything yet
    finally:
        await sub.stop()


async def test_a_server_appears_with_its_first_event(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{PREFIX}/#", "qlik2mqtt/#")
    try:
        await sub.wait_for(FLAG_CONFIG)
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        config = await sub.wait_json(SERVER_CONFIG, lambda p: True)
        assert config["device"]["name"] == "Qlik Sense QSPROD02"
        assert config["default_entity_id"] == "sensor.qlik_sense_qsprod02_active_sessions"
        triggers = await sub.wait_count(  # device triggers come with the entities
            f"{PREFIX}/device_automation/qlik2mqtt/qsprod02_task_failed/config", 1
        )
        assert json.loads(triggers[0].payload)["type"] == "task_failed"

        count = len(sub.on(SERVER_CONFIG))
        bridge.users.send("QSPROD02;Start session;CORP;bob")
        await sub.wait_json("qlik2mqtt/qsprod02", lambda p: p["active_sessions"] == 2)
        assert len(sub.on(SERVER_CONFIG)) == count  # not re-sent for every event
    finally:
        await sub.stop()


async def test_configs_are_published_again_when_home_assistant_comes_online(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{PREFIX}/#", "qlik2mqtt/#")
    try:
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        await sub.wait_for(SERVER_CONFIG)
        mark = sub.mark()
        sub.publish(f"{PREFIX}/status", b"online")
        await sub.wait_for(SERVER_CONFIG, since=mark)
        await sub.wait_for(FLAG_CONFIG, since=mark)
    finally:
        await sub.stop()


async def test_the_button_acknowledges_the_failure(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{PREFIX}/#", "qlik2mqtt/#")
    try:
        button = await sub.wait_json(BUTTON_CONFIG, lambda p: True)
        bridge.tasks.send("QSPROD02;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        mark = sub.mark()
        sub.publish(button["command_topic"], button["payload_press"].encode())  # as HA does
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "OFF", since=mark)
    finally:
        await sub.stop()


def cli(*args: str, port: int) -> subprocess.CompletedProcess[str]:
    return qlik2mqtt(
        *args, env={"QLIK2MQTT_MQTT__HOST": "127.0.0.1", "QLIK2MQTT_MQTT__PORT": str(port)}
    )


async def test_forget_removes_the_device_and_its_state(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{PREFIX}/#", "qlik2mqtt/#")
    try:
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        bridge.tasks.send("QSPROD02;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        await sub.wait_json("qlik2mqtt/qsprod02/users", lambda p: p["active_users"] == 1)
        server_topics = {m.topic for m in sub.messages if "/qlik2mqtt/qsprod02_" in m.topic}
        assert len(server_topics) == 8 + 9 + 4 + 3  # entities + device triggers, + log events
        mark = sub.mark()

        result = await asyncio.to_thread(cli, "forget", "QSPROD02", port=mosquitto.port)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "forgot 'QSPROD02' (server qsprod02)"
        nope = await asyncio.to_thread(cli, "forget", "QSPROD02", port=mosquitto.port)
        assert nope.returncode == 1  # nothing left to forget: said, not "sent"
        assert "forget 'QSPROD02': no such server: QSPROD02" in nope.stderr

        await sub.wait_for("qlik2mqtt/qsprod02", lambda m: m.payload == b"", since=mark)
        await sub.wait_for("qlik2mqtt/qsprod02/users", lambda m: m.payload == b"", since=mark)
        for topic in server_topics:
            await sub.wait_for(topic, lambda m: m.payload == b"", since=mark)
        site = await sub.wait_json("qlik2mqtt/site", lambda p: p["servers"] == 0, since=mark)
        assert site["reload_failure"] == "OFF"  # its failures went with it
        info = await sub.wait_json("qlik2mqtt/bridge/info", lambda p: True, since=mark)
        assert info["servers"] == {}
    finally:
        await sub.stop()

    late = await Subscriber(mosquitto.port).start(f"{PREFIX}/+/qlik2mqtt/+/config")
    try:
        await late.wait_for(FLAG_CONFIG)
        assert not [m.topic for m in late.messages if "qsprod02" in m.topic]  # nothing retained
    finally:
        await late.stop()


async def test_acknowledge_command_line(bridge: RunningBridge, mosquitto: Mosquitto) -> None:
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        bridge.tasks.send("QSPROD02;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        result = await asyncio.to_thread(cli, "acknowledge", port=mosquitto.port)
        assert result.returncode == 0, result.stderr
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "OFF")
    finally:
        await sub.stop()


def test_commands_report_an_unreachable_broker(tmp_path: Path) -> None:
    from tests.helpers import free_port

    result = cli("acknowledge", port=free_port())
    assert result.returncode == 1
    assert "cannot connect to the MQTT broker at 127.0.0.1:" in result.stderr


async def test_discovery_can_be_switched_off(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = bridge_config(tmp_path, mosquitto.port, homeassistant__enabled=False)
    bridge = RunningBridge(config)
    sub = await Subscriber(mosquitto.port).start(f"{PREFIX}/#", "qlik2mqtt/#")
    try:
        await bridge.start()
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        await sub.wait_json("qlik2mqtt/qsprod02", lambda p: p["active_sessions"] == 1)
        info = await sub.wait_json("qlik2mqtt/bridge/info", lambda p: True)
        assert info["homeassistant"] is False
        assert not [m for m in sub.messages if m.topic.startswith(f"{PREFIX}/")]
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_new_servers_first_event_reaches_a_subscriber_that_follows_discovery(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    """As Home Assistant does: subscribe to an event topic only once its config arrived."""
    discovery = await Subscriber(mosquitto.port).start(f"{PREFIX}/event/#")
    follower = Subscriber(mosquitto.port)
    try:
        bridge.users.send("QSNEW;Start session;CORP;first")
        config = await discovery.wait_json(
            f"{PREFIX}/event/qlik2mqtt/qsnew_user_activity/config", lambda p: True
        )
        await follower.start(config["state_topic"])
        first = await follower.wait_json(config["state_topic"], lambda p: True)
        assert (first["event_type"], first["user_id"]) == ("session_start", "first")
    finally:
        await follower.stop()
        await discovery.stop()


async def test_forget_answers_each_request_on_the_response_topic(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    """zigbee2mqtt's convention: the answer carries the request's transaction back."""
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/bridge/response/#", "qlik2mqtt/qs1")
    try:
        bridge.users.send("QS1;Start session;CORP;anna")
        await sub.wait_json("qlik2mqtt/qs1", lambda p: p["active_sessions"] == 1)
        sub.publish("qlik2mqtt/bridge/forget", b'{"server": "nope", "transaction": 7}')
        sub.publish("qlik2mqtt/bridge/forget", b'{"server": "QS1", "transaction": "t-2"}')
        sub.publish("qlik2mqtt/bridge/forget", b"{not json")
        answers = await sub.wait_count("qlik2mqtt/bridge/response/forget", 3)
        assert [a.json() for a in answers] == [
            {"status": "error", "error": "no such server: nope", "transaction": 7},
            {"status": "ok", "data": {"server": "qs1"}, "transaction": "t-2"},
            {"status": "error", "error": 'no server named: send a host name or {"server": …}'},
        ]
        assert not any(a.retain for a in answers)
    finally:
        await sub.stop()
