"""Slack's `log_events` kind against the local Slack server: off by default, a burst of one
error folded into one message with its count, distinct errors each posted, and a flood of
distinct errors capped per interval."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bridge.slack.sink as sink
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, qlik2mqtt
from tests.slack_server import SlackServer

TASK_FAILURE = (
    "/scheduler-task-failed/;QSPROD02;Reload Sales;Sales;CORP\\svc;tid-1;aid-1;"
    "2026-05-06 14:23:45,123;ERROR;eid-1;Max retries reached: script error"
)


def engine(level: str, server: str, message: str, row: int = 1) -> bytes:
    """A Butler SOS engine log event (the log port)."""
    return (
        f"/qseow-engine/;{row};2026-11-04T09:15:09.001+0100;2026-11-04 09:15:09,001;{level};"
        f"{server};System.Engine.Engine;CORP\\qlikservice;{message};0;(null);(null);"
        "20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;14.129.5.0;"
        "20261101T060000.000Z;Error;(null);(null)"
    ).encode()


@pytest.fixture(autouse=True)
def quick_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink, "CHANNEL_GAP", 0.01)
    monkeypatch.setattr(sink, "STOP_GRACE", 10.0)


def texts(slack: SlackServer) -> list[str]:
    return [request.body.get("text", "") for request in slack.requests]


async def start(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, **kinds: Any
) -> tuple[RunningBridge, Subscriber]:
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/bridge/stats")
    settings = {"enabled": True, "webhook_url": f"{slack.url}/services/T0/B0/X", **kinds}
    config = bridge_config(tmp_path, mosquitto.port, slack=settings, homeassistant__enabled=False)
    return await RunningBridge(config).start(), sub


async def test_log_events_are_not_posted_unless_enabled(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    bridge, sub = await start(tmp_path, mosquitto, slack)
    try:
        bridge.logs.send(engine("FATAL", "QSPROD01", "Out of memory"))
        bridge.tasks.send(TASK_FAILURE)
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 2)
        await asyncio.to_thread(slack.wait_for, 1)
        await bridge.stop()
        assert texts(slack) == ["Reload task failed: Reload Sales (app Sales) on QSPROD02"]
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_burst_of_one_error_is_one_message_with_its_count_and_distinct_ones_are_kept(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    bridge, sub = await start(
        tmp_path, mosquitto, slack, log_events={"enabled": True, "min_interval": 600}
    )
    try:
        same = "Failed to render object 7 in app Sales"
        for row in range(1000):  # one error, a thousand times
            bridge.logs.send(engine("ERROR", "QSPROD01", same, row))
        bridge.logs.send(engine("ERROR", "QSPROD01", "Failed to render object 8 in app Sales"))
        bridge.logs.send(engine("ERROR", "QSPROD02", same))  # the same on another server
        bridge.logs.send(engine("FATAL", "QSPROD01", "Out of memory: 2048 MB refused"))
        bridge.logs.send(engine("ERROR", "QSPROD01", "Connection refused by qs3"))
        for message in ["Node qs4 is not responding"] * 2 + ["Connection reset by qs5"]:
            bridge.logs.send(engine("ERROR", "QSPROD01", message))  # the same category
        for row in range(5):
            bridge.logs.send(engine("WARN", "QSPROD01", f"Slow response {row}"))  # below ERROR
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 1012, timeout=60)
        await asyncio.to_thread(slack.wait_for, 5)
        await bridge.stop()  # the folded errors' summaries are posted at stop
        assert texts(slack) == [
            f"Error in the Qlik Sense engine on QSPROD01: {same}",
            "Error in the Qlik Sense engine on QSPROD01: Failed to render object 8 in app Sales",
            f"Error in the Qlik Sense engine on QSPROD02: {same}",
            "Fatal error in the Qlik Sense engine on QSPROD01: Out of memory: 2048 MB refused",
            "Error in the Qlik Sense engine on QSPROD01: Connection refused by qs3",
            f"Error in the Qlik Sense engine on QSPROD01: {same} — 999 more times since the "
            "last message",
            "Error in the Qlik Sense engine on QSPROD01: 3 more `connectivity` errors since the "
            "last message (2 distinct messages); the last: Connection reset by qs5",
        ]
        oom = str(slack.requests[3].body["blocks"])
        for field in ("out_of_memory", "System.Engine.Engine", "2026-11-04T09:15:09.001+01:00"):
            assert field in oom, field
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_flood_of_distinct_errors_is_capped_per_interval(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sink, "LOG_MESSAGES_PER_INTERVAL", 5)
    bridge, sub = await start(
        tmp_path, mosquitto, slack, log_events={"enabled": True, "min_level": "warn"}
    )
    try:
        for row in range(50):
            bridge.logs.send(engine("WARN", "QSPROD01", f"Object {row} is slow", row))
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 50)
        await asyncio.to_thread(slack.wait_for, 5)
        await bridge.stop()
        posted = texts(slack)
        assert posted[:5] == [
            f"Warning in the Qlik Sense engine on QSPROD01: Object {row} is slow"
            for row in range(5)
        ]
        assert posted[5:] == [
            "45 more Qlik Sense log events on QSPROD01 were not posted one by one; the last: "
            "warning in the engine: Object 49 is slow"
        ]
    finally:
        await sub.stop()
        await bridge.close()


def test_test_slack_posts_a_log_event_sample(slack: SlackServer) -> None:
    env = {
        "QLIK2MQTT_SLACK__ENABLED": "true",
        "QLIK2MQTT_SLACK__TASK_EVENTS__ENABLED": "false",
        "QLIK2MQTT_SLACK__LOG_EVENTS__ENABLED": "true",
        "QLIK2MQTT_SLACK__LOG_EVENTS__WEBHOOK_URL": f"{slack.url}/services/SECRET",
    }
    result = qlik2mqtt("test-slack", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS  log_events")
    assert "SECRET" not in result.stdout + result.stderr
    (request,) = slack.wait_for(1)
    assert request.body["text"].startswith("Error in the Qlik Sense repository on QSTEST")
