"""Delivery guarantees and load shape: broker outages, coalesced state, source filtering."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config, logins_across_an_outage
from tests.helpers import Mosquitto, Subscriber

BASE = "qlik2mqtt"


@pytest.mark.parametrize(
    ("count", "restart_bridge"),
    [(500, False), (100, True)],
    ids=["broker-outage", "bridge-restart-during-outage"],
)
async def test_events_sent_during_an_outage_arrive_in_order_after_it(
    tmp_path: Path, count: int, restart_bridge: bool
) -> None:
    broker = Mosquitto(tmp_path, persistence=True)
    broker.start()
    bridge = RunningBridge(bridge_config(tmp_path, broker.port))
    try:
        users = await logins_across_an_outage(bridge, broker, count, restart_bridge=restart_bridge)
        assert users == [f"user{number:03d}" for number in range(count)]
    finally:
        await bridge.close()
        broker.stop()


async def test_a_login_storm_costs_a_handful_of_state_publishes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    bridge = RunningBridge(bridge_config(tmp_path, mosquitto.port, mqtt__state_interval=0.25))
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        await bridge.start()
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        storm = 3000
        for number in range(storm):
            bridge.users.send(f"QS1;Start session;CORP;u{number}")
        await sub.wait_count(f"{BASE}/qs1/event/user", storm, timeout=60)
        final = await sub.wait_json(f"{BASE}/qs1", lambda p: p["active_sessions"] == storm)
        assert final["users_truncated"] is True  # 3,000 names: 8 KiB of them in the state
        listed = await sub.wait_json(f"{BASE}/qs1/users", lambda p: p["active_users"] == storm)
        assert len(listed["users"]) == storm
        state_messages = len(sub.on(f"{BASE}/qs1"))
        assert 1 <= state_messages < 50, state_messages  # coalesced: never one per login
    finally:
        await sub.stop()
        await bridge.close()


async def test_only_allowed_sources_pass(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = bridge_config(tmp_path, mosquitto.port, udp__allowed_sources=["127.0.0.2/32"])
    bridge = RunningBridge(config)
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        await bridge.start()
        bridge.users.send("QS1;Start session;CORP;intruder")  # from 127.0.0.1
        stats = await sub.wait_json(
            f"{BASE}/bridge/stats", lambda p: p["rejected"]["source_not_allowed"] == 1
        )
        assert stats["events"] == 0
        assert not sub.on(f"{BASE}/qs1/event/user")
    finally:
        await sub.stop()
        await bridge.close()


async def test_butler_compatible_topics(tmp_path: Path, mosquitto: Mosquitto) -> None:
    bridge = RunningBridge(bridge_config(tmp_path, mosquitto.port, butler_compat__enabled=True))
    sub = await Subscriber(mosquitto.port).start("qliksense/#")
    try:
        await bridge.start()
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        bridge.users.send("QSPROD02;Open connection;CORP;anna")
        start = await sub.wait_for("qliksense/session/start")
        assert start.payload == b"QSPROD02: CORP/anna"
        opened = await sub.wait_for("qliksense/connection/open")
        assert opened.payload == b"QSPROD02: CORP/anna"
        await sub.wait_for("qliksense/users/active/count", lambda m: m.payload == b"1")
        await sub.wait_json("qliksense/users/active/usernames", lambda p: p == ["anna"])
        # One user with a session and a connection is one user, never two.
        assert {m.payload for m in sub.on("qliksense/users/active/count")} <= {b"0", b"1"}
        assert all(m.json() in ([], ["anna"]) for m in sub.on("qliksense/users/active/usernames"))

        bridge.tasks.send(
            "/scheduler-task-failed/;QSPROD02;Reload Sales;Sales;CORP\\svc;tid;aid;"
            "2026-05-06 14:23:45,123;ERROR;eid;Max retries reached"
        )
        failure = await sub.wait_for("qliksense/task_failure")
        assert failure.payload == b"Reload Sales"
        full = await sub.wait_json("qliksense/task_failure_full", lambda p: True)
        assert full == {
            "hostName": "QSPROD02",
            "user": "CORP\\svc",
            "taskName": "Reload Sales",
            "taskId": "tid",
            "appName": "Sales",
            "appId": "aid",
            "logTimeStamp": "2026-05-06T14:23:45.123",
            "logLevel": "ERROR",
            "executionId": "eid",
            "logMessage": "Max retries reached",
        }
        bridge.tasks.send(
            "/scheduler-task-aborted/;QSPROD02;Reload HR;HR;CORP\\svc;tid2;aid2;"
            "2026-05-06 14:23:45,123;INFO;eid2;Execution State Change to Aborting"
        )
        aborted = await sub.wait_for("qliksense/task_aborted")
        assert aborted.payload == b"Reload HR"
    finally:
        await sub.stop()
        await bridge.close()
