"""Butler SOS's QIX performance lines end to end (finding 4 of issue 23): real UDP datagrams on
the log port, a real mosquitto. Enabled, with filters, they are published on
`<server>/event/qix_performance`; off (the default), counted as received and never refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber
from tests.inputs.test_qix_perf import APP, qix_line

BASE = "qlik2mqtt"
OTHER_APP = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
TOPIC = f"{BASE}/qsnode24/event/qix_performance"


@pytest.fixture
async def sub(mosquitto: Mosquitto) -> AsyncIterator[Subscriber]:
    subscriber = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    yield subscriber
    await subscriber.stop()


async def test_enabled_qix_performance_events_are_filtered_and_published(
    tmp_path: Path, mosquitto: Mosquitto, sub: Subscriber
) -> None:
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        log_events__qix_performance={
            "enabled": True,
            "exclude_app_ids": [OTHER_APP],
            "min_process_time": 100,
        },
    )
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        bridge.logs.send(  # the scheduler names the app
            "/qseow-scheduler/;16;20241015T101505.331+0200;2024-10-15 10:15:05,331;INFO;QSNODE24;"
            "System.Scheduler.Scheduler.Master.Task.TaskSession;DOMAIN\\qlikservice;Started;"
            f"(null);(null);(null);(null);Reload Budget;Budget;(null);{APP};(null)".encode()
        )
        await sub.wait_for(f"{BASE}/qsnode24/event/log")
        bridge.logs.send(qix_line(process="12").encode())  # too quick: filtered
        bridge.logs.send(qix_line(app=OTHER_APP).encode())  # an excluded app: filtered
        bridge.logs.send(qix_line(process="250.5", proxy_session="0").encode())
        bridge.logs.send(qix_line(object_id="a;b").encode())
        received = await sub.wait_count(TOPIC, 2)
        assert not any(message.retain for message in received)
        first, second = (message.json() for message in received)
        assert (first["event_type"], first["server"], first["app_id"]) == (
            "qix_performance",
            "QSNODE24",
            APP,
        )
        assert (first["process_time"], first["activity"], first["method"]) == (
            250.5,
            "non-user",
            "GenericObject::GetLayout",
        )
        assert (first["app_name"], second["app_name"]) == ("Budget", "Budget")
        assert (first["user"], first["object_type"], first["net_ram"]) == (
            "LAB\\goran",
            "linechart",
            1024000,
        )
        assert (second["object_id"], second["activity"]) == ("a;b", "user")
        stats = await sub.wait_json(
            f"{BASE}/bridge/stats", lambda p: p["qix_performance"]["received"] == 4
        )
        assert stats["qix_performance"] == {
            "received": 4,
            "published": 2,
            "filtered": 2,
            "servers": {"QSNODE24": 4},
        }
        assert stats["rejected_total"] == 0
    finally:
        await bridge.close()


async def test_off_qix_performance_events_are_counted_never_unknown(
    bridge: RunningBridge, sub: Subscriber
) -> None:
    await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
    for _ in range(3):
        bridge.logs.send(qix_line().encode())
    stats = await sub.wait_json(
        f"{BASE}/bridge/stats", lambda p: p["qix_performance"]["received"] == 3
    )
    assert stats["rejected"]["unknown_format"] == 0
    assert stats["rejected_total"] == 0
    assert (stats["qix_performance"]["published"], stats["events"]) == (0, 0)
    assert not sub.on(TOPIC)
