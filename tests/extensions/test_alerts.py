"""Alert outputs against a real mosquitto: what a Tasmota plug or a WLED strip would receive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, load_config
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import ROOT, Mosquitto, Subscriber, qlik2mqtt

LAMP = "cmnd/office_lamp/POWER"
STRIP = "wled/desk/api"
FAILURE = (
    "/scheduler-task-failed/;QSPROD02;Reload Sales;Sales;CORP\\svc;tid-1;aid-1;"
    "2026-05-06 14:23:45,123;ERROR;{execution};Max retries reached"
)
ABORT = (
    "/scheduler-task-aborted/;QSPROD02;Reload HR;HR;CORP\\svc;tid-2;aid-2;"
    "2026-05-06 14:23:45,123;INFO;eid-9;Execution State Change to Aborting"
)


def outputs(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"topic": LAMP, "on": "ON", "off": "OFF"}, *extra]


async def start(
    tmp_path: Path, mosquitto: Mosquitto, outs: list[dict[str, Any]]
) -> tuple[RunningBridge, Subscriber]:
    sub = await Subscriber(mosquitto.port).start("cmnd/#", "wled/#", "qlik2mqtt/site")
    config = bridge_config(
        tmp_path, mosquitto.port, alerts={"outputs": outs}, homeassistant__enabled=False
    )
    bridge = await RunningBridge(config).start()
    return bridge, sub


async def test_off_at_start_on_at_failure_off_at_acknowledge(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    strip = {
        "topic": STRIP,
        "on": {"on": True, "bri": 255, "seg": [{"col": [[255, 0, 0]]}]},
        "off": {"on": False},
    }
    bridge, sub = await start(tmp_path, mosquitto, outputs(strip))
    try:
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")  # a lamp left on is corrected
        await sub.wait_json(STRIP, lambda p: p == {"on": False})
        mark = sub.mark()
        bridge.tasks.send(FAILURE.format(execution="eid-1"))
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        on = await sub.wait_json(STRIP, lambda p: p["on"] is True, since=mark)
        assert on["seg"] == [{"col": [[255, 0, 0]]}]

        mark = sub.mark()
        sub.publish("qlik2mqtt/bridge/acknowledge", b"acknowledge")
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark)
        await sub.wait_json(STRIP, lambda p: p == {"on": False}, since=mark)
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "OFF", since=mark)
        assert sub.payloads(LAMP, mark) == [b"OFF"]  # once per change, not per state publish
    finally:
        await sub.stop()
        await bridge.close()


async def test_acknowledge_from_the_command_line_turns_the_lamp_off(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    bridge, sub = await start(tmp_path, mosquitto, outputs())
    try:
        bridge.tasks.send(FAILURE.format(execution="eid-1"))
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON")
        mark = sub.mark()
        env = {"QLIK2MQTT_MQTT__HOST": "127.0.0.1", "QLIK2MQTT_MQTT__PORT": str(mosquitto.port)}
        result = await asyncio.to_thread(qlik2mqtt, "acknowledge", env=env)
        assert result.returncode == 0, result.stderr
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark)
    finally:
        await sub.stop()
        await bridge.close()


async def test_outputs_are_sent_again_after_a_broker_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    bridge, sub = await start(tmp_path, mosquitto, outputs())
    try:
        bridge.tasks.send(FAILURE.format(execution="eid-1"))
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON")
        await sub.stop()
        mosquitto.stop()
        mosquitto.start()
        sub = await Subscriber(mosquitto.port).start("cmnd/#")
        resent = await sub.wait_for(LAMP, timeout=30)  # after the bridge's reconnect
        assert resent.payload == b"ON"
    finally:
        await sub.stop()
        await bridge.close()


async def test_blinks_after_a_new_failure_then_stays_on(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    blinking = {"topic": LAMP, "on": "ON", "off": "OFF", "blink": {"seconds": 0.6, "interval": 0.1}}
    bridge, sub = await start(tmp_path, mosquitto, [blinking])
    try:
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(FAILURE.format(execution="eid-1"))
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON", since=mark)

        # 0.6 s at 0.1 s: six toggles, ON first and OFF last, then steady ON.
        await sub.wait_count(LAMP, 1 + 7)
        assert sub.payloads(LAMP, mark) == [b"ON", b"OFF"] * 3 + [b"ON"]
    finally:
        await sub.stop()
        await bridge.close()


async def test_abort_and_per_server_flags(tmp_path: Path, mosquitto: Mosquitto) -> None:
    aborted = {"topic": "cmnd/amber/POWER", "on": "ON", "off": "OFF", "when": "any_task_aborted"}
    other = {"topic": "cmnd/qs9/POWER", "on": "ON", "off": "OFF", "when": "server:QS9"}
    bridge, sub = await start(tmp_path, mosquitto, outputs(aborted, other))
    try:
        await sub.wait_for("cmnd/qs9/POWER", lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(ABORT)
        await sub.wait_for("cmnd/amber/POWER", lambda m: m.payload == b"ON", since=mark)
        bridge.tasks.send(FAILURE.format(execution="eid-1"))  # on QSPROD02, not QS9
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        assert sub.payloads("cmnd/qs9/POWER", mark) == []
    finally:
        await sub.stop()
        await bridge.close()


def test_config_reads_yaml_on_off_as_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "alerts:\n  outputs:\n"
        "    - {topic: cmnd/lamp/POWER, on: ON, off: OFF}\n"
        "    - topic: wled/desk/api\n      on: {on: true, bri: 255}\n      off: {on: false}\n"
        "      when: server:QSPROD02\n      blink: {seconds: 10, interval: 500ms}\n"
    )
    lamp, strip = load_config(path, environ={}).alerts.outputs
    assert (lamp.on, lamp.off) == ("ON", "OFF")
    assert (strip.on, strip.off) == ({"on": True, "bri": 255}, {"on": False})
    assert strip.when == "server:qsprod02"
    assert strip.blink is not None
    assert strip.blink.interval == 0.5


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("{topic: 'cmnd/+/POWER', on: a, off: b}", "alerts.outputs[0].topic"),
        ("{topic: t, on: [1], off: b}", "alerts.outputs[0].on: must be text or a JSON object"),
        ("{topic: t, on: a}", "alerts.outputs[0].off: Field required"),
        ("{topic: t, on: a, off: b, when: never}", "alerts.outputs[0].when: 'never': expected"),
    ],
)
def test_bad_outputs_are_named(tmp_path: Path, output: str, problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"alerts:\n  outputs:\n    - {output}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_every_example_in_the_alert_lights_doc_is_a_valid_output(tmp_path: Path) -> None:
    doc = (ROOT / "docs/alert-lights.md").read_text(encoding="utf-8")
    blocks = doc.split("```yaml\n")[1:]
    outputs = []
    for block in blocks:
        text = block.split("```")[0]
        lines = [line for line in text.splitlines() if line.strip()]
        items = [line for line in lines if not line.startswith(("alerts:", "  outputs:"))]
        outputs.append("\n".join(items))
    path = tmp_path / "c.yaml"
    path.write_text("alerts:\n  outputs:\n" + "\n".join(outputs) + "\n")
    loaded = load_config(path, environ={}).alerts.outputs
    assert len(loaded) == 8
    assert [output.when for output in loaded[6:]] == ["log_error", "log_category:licence"]
    assert loaded[1].on == {
        "id": 1,
        "src": "qlik2mqtt",
        "method": "Switch.Set",
        "params": {"id": 0, "on": True},
    }
    assert loaded[3].on == {"state": "ON", "color": {"hex": "#ff0000"}, "brightness": 254}


async def test_an_abort_lamp_goes_off_by_itself_with_auto_clear(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start("cmnd/#")
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        alerts={"outputs": [{"topic": LAMP, "on": "ON", "off": "OFF", "when": "any_task_aborted"}]},
        homeassistant__enabled=False,
        sessions__stale_after=4.0,  # the expiry runs every second
        tasks__auto_clear_after=1.0,
    )
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(ABORT)
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        mark = sub.mark()
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark, timeout=10)
    finally:
        await sub.stop()
        await bridge.close()


def log_line(level: str, server: str, message: str, row: int = 1) -> str:
    """A Butler SOS repository log event (the log port)."""
    return (
        f"/qseow-repository/;{row};20261104T092100.000+0100;2026-11-04 09:21:00,000;{level};"
        f"{server};System.Repository.Repository.Licensing;CORP\\qlikservice;{message};(null);"
        "INTERNAL;sa_repository;License check;0;(null);(null)"
    )


async def test_log_error_and_log_category_lamps_blink_once_per_burst_and_clear_on_acknowledge(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    errors = {
        "topic": LAMP,
        "on": "ON",
        "off": "OFF",
        "when": "log_error",
        "blink": {"seconds": 0.4, "interval": 0.1},
    }
    licence = {"topic": "cmnd/licence/POWER", "on": "ON", "off": "OFF"}
    licence["when"] = "log_category:licence:QSPROD02"
    sub = await Subscriber(mosquitto.port).start("cmnd/#", "qlik2mqtt/#")
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        alerts={"outputs": [errors, licence]},
        homeassistant__enabled=False,
    )
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for("cmnd/licence/POWER", lambda m: m.payload == b"OFF")
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.logs.send(log_line("WARN", "QSPROD01", "Disk almost full"))
        await sub.wait_for("qlik2mqtt/qsprod01/event/log", since=mark)
        for row in range(300):  # a burst of errors: one blink, not 300
            bridge.logs.send(log_line("ERROR", "QSPROD01", "Node qs3 is not responding", row))
        await sub.wait_count("qlik2mqtt/qsprod01/event/log", 301)
        site = await sub.wait_json(
            "qlik2mqtt/site", lambda p: p["log_events"]["errors"] == 300, since=mark
        )
        assert site["log_events"]["unacknowledged"] == {
            "error": True,
            "categories": ["connectivity"],
        }
        await sub.wait_count(LAMP, 1 + 5)  # ON OFF ON OFF, then steady ON
        assert sub.payloads(LAMP, mark) == [b"ON", b"OFF"] * 2 + [b"ON"]
        assert sub.payloads("cmnd/licence/POWER", mark) == []  # no licence event on QSPROD02

        bridge.logs.send(log_line("WARN", "QSPROD01", "The licence expires in 9 days"))
        bridge.logs.send(log_line("FATAL", "QSPROD02", "The license for this site has expired"))
        await sub.wait_for("cmnd/licence/POWER", lambda m: m.payload == b"ON", since=mark)
        event = await sub.wait_json("qlik2mqtt/qsprod02/event/log", lambda p: True, since=mark)
        assert event["category"] == "licence"

        mark = sub.mark()
        sub.publish("qlik2mqtt/bridge/acknowledge", b"acknowledge")
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark)
        await sub.wait_for("cmnd/licence/POWER", lambda m: m.payload == b"OFF", since=mark)
        site = await sub.wait_json(
            "qlik2mqtt/site", lambda p: not p["log_events"]["unacknowledged"]["error"], since=mark
        )
        assert site["log_events"]["unacknowledged"]["categories"] == []
        assert site["log_events"]["fatals"] == 1  # the counts stay
    finally:
        await sub.stop()
        await bridge.close()
