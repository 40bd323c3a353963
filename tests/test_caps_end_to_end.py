"""Caps bound state, not events, end to end: past each cap of `limits:` an event still reaches
its event topic on a real mosquitto and Slack (a local server); only what it would add to the
state is left out, counted in `bridge/stats` and named in its `problems`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bridge_runner import RunningBridge, bridge_config
from tests.core.test_limits import retained_under
from tests.helpers import Mosquitto, Subscriber
from tests.slack_server import SlackServer
from tests.task_datagrams import task_datagram

A_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
B_ID = "0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f"


async def test_past_each_cap_events_are_published_and_counted_not_tracked(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    slack = SlackServer().start()
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        limits={"max_servers": 1, "max_sessions_per_server": 2, "max_tasks_per_server": 1},
        slack={"enabled": True, "webhook_url": f"{slack.url}/services/T0/B0/X"},
    )
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        for who in ("anna", "bob", "carl"):  # carl is one user past the cap
            bridge.users.send(f"QS1;Start session;CORP;{who}")
        await sub.wait_json("qlik2mqtt/qs1/event/user", lambda p: p["user_id"] == "carl")
        bridge.users.send("QS2;Start session;CORP;dora")  # one server past the cap
        dora = await sub.wait_json("qlik2mqtt/qs2/event/user", lambda p: True)
        bridge.tasks.send(task_datagram("failed", "Reload A", A_ID, "e1"))
        bridge.tasks.send(task_datagram("failed", "Reload B", B_ID, "e2"))  # one task past
        await sub.wait_json("qlik2mqtt/qs1/event/task", lambda p: p["task_name"] == "Reload B")
        stats = await sub.wait_json(
            "qlik2mqtt/bridge/stats",
            lambda p: (
                (p["untracked_sessions"], p["untracked_servers"], p["untracked_tasks"]) == (1, 1, 1)
                and len(p["problems"]) == 3
            ),
        )
        posted = await asyncio.to_thread(slack.wait_for, 2)
        qs1 = await sub.wait_json("qlik2mqtt/qs1", lambda p: p["failed_tasks"] == 2)
        listed = await sub.wait_json("qlik2mqtt/qs1/users", lambda p: p["active_users"] == 2)
        site = await sub.wait_json("qlik2mqtt/site", lambda p: p["failed_tasks"] == 2)
        retained = await retained_under(mosquitto.port, "qlik2mqtt")
    finally:
        await sub.stop()
        await bridge.close()
        slack.stop()
    assert dora["user_id"] == "dora"
    assert qs1["users_preview"] == ["CORP\\anna", "CORP\\bob"]  # carl not tracked
    assert listed["users"] == ["CORP\\anna", "CORP\\bob"]
    assert (site["servers"], site["failing_tasks"], site["reload_failure"]) == (1, 1, "ON")
    assert not {topic for topic in retained if topic.startswith("qlik2mqtt/qs2")}
    problems = " ".join(stats["problems"])
    for setting in ("max_servers", "max_sessions_per_server", "max_tasks_per_server"):
        assert f"limits.{setting} reached" in problems
    assert any("Reload B" in str(request.body) for request in posted)  # Slack told too


async def test_an_untracked_hosts_failure_blinks_and_is_a_watched_outcome(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Past `max_servers` nothing reached the alert outputs (the blink was cancelled before
    its first toggle: nothing was flagged) and a watched task's outcome on that host was
    lost, though `tasks.watch` is "on any server"."""
    lamp = {"topic": "lamp/any", "on": "ON", "off": "OFF", "blink": {"seconds": 1, "interval": 0.2}}
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        limits={"max_servers": 1},
        alerts={"outputs": [lamp]},
        tasks={"watch": ["Reload A"]},
    )
    sub = await Subscriber(mosquitto.port).start("lamp/#", "qlik2mqtt/#")  # lamps not retained
    bridge = await RunningBridge(config).start()
    try:
        bridge.users.send("QS1;Start session;CORP;anna")  # QS1 is the one tracked server
        await sub.wait_json("qlik2mqtt/qs1/event/user", lambda p: True)
        await sub.wait_for("lamp/any", lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(task_datagram("failed", "Reload A", A_ID, "e1", server="QS2"))
        await sub.wait_json("qlik2mqtt/qs2/event/task", lambda p: True)
        await sub.wait_for("lamp/any", lambda m: m.payload == b"ON", since=mark)  # it blinks
        await sub.wait_for("lamp/any", lambda m: m.payload == b"OFF", since=mark)  # and ends
        watched = await sub.wait_json(
            "qlik2mqtt/tasks/reload_a", lambda p: p.get("outcome") == "failed", since=mark
        )
        assert watched["server"] == "QS2"
    finally:
        await sub.stop()
        await bridge.close()
