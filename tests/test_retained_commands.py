"""Commands happen once (issue 22, finding 3): a command the broker keeps (published with the
retain flag) runs when it is sent, and never again, neither at a reconnect nor at a restart;
the new request topics answer, the old ones are aliases. Real mosquitto, real datagrams, a local
QRS."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Gate, Mosquitto, Subscriber
from tests.qrs_server import SALES_ID, QrsServer, qrs_settings

BASE = "qlik2mqtt"
SITE = f"{BASE}/site"
STATS = f"{BASE}/bridge/stats"
STATE = f"{BASE}/bridge/state"
FAILURE = "QSPROD02;Reload Sales;Sales;CORP\\svc"  # Butler <= v4: a failed reload


async def health_says(path: Path, key: str, value: object, timeout: float = 30.0) -> None:
    """Until the health file reports `key` as `value`: a file the bridge rewrites within a
    second of a change, with no event to await (polled, bounded, as `healthy_report`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(await asyncio.to_thread(path.read_bytes)).get(key) == value:
                return
        assert asyncio.get_running_loop().time() < deadline, f"{path} never said {key}={value}"
        await asyncio.sleep(0.1)


async def site_after_a_login(bridge: RunningBridge, sub: Subscriber, sessions: int) -> Any:
    """The site once it shows a login sent now (`sessions` active with it): whatever the
    bridge did before it shows too."""
    mark = sub.mark()
    bridge.users.send(f"QSPROD02;Start session;CORP;user{sessions}")
    return await sub.wait_json(SITE, lambda p: p["active_sessions"] == sessions, since=mark)


async def test_a_retained_acknowledge_runs_once_and_never_at_a_reconnect_or_a_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    gate = await Gate(mosquitto.port).start()  # the bridge reaches the broker through it
    bridge = RunningBridge(bridge_config(tmp_path, gate.port))
    sub = await Subscriber(mosquitto.port).start(SITE, STATS, STATE)
    try:
        await bridge.start()
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        bridge.tasks.send(FAILURE)
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "ON")
        # Sent retained (a Node-RED node with retain on): it runs now, once.
        mark = sub.mark()
        sub.publish(f"{BASE}/bridge/acknowledge", b"acknowledge", retain=True)
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "OFF", since=mark)
        mark = sub.mark()
        bridge.tasks.send(FAILURE.replace("Sales", "HR"))
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "ON", since=mark)

        mark = sub.mark()
        gate.crash()  # a network blip: the bridge reconnects, the broker sends it the command
        await sub.wait_json(STATS, lambda p: p["commands_retained_ignored"] == 1, since=mark)
        assert (await site_after_a_login(bridge, sub, 1))["reload_failure"] == "ON"
        await health_says(tmp_path / "health.json", "commands_retained_ignored", 1)

        await bridge.stop()  # and a restart: the command is there before the bridge connects
        mark = sub.mark()
        await bridge.start()
        await sub.wait_json(STATS, lambda p: p["commands_retained_ignored"] == 1, since=mark)
        assert (await site_after_a_login(bridge, sub, 2))["reload_failure"] == "ON"
    finally:
        await sub.stop()
        await bridge.close()
        await gate.stop()


async def test_retained_task_starts_ours_and_butlers_never_reach_qrs(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    publisher = await Subscriber(mosquitto.port).start()
    publisher.publish(
        f"{BASE}/bridge/request/task/start", json.dumps({"id": SALES_ID}).encode(), retain=True
    )
    publisher.publish("qliksense/start_task", SALES_ID.encode(), retain=True)
    await publisher.subscribe("qliksense/start_task")  # the SUBACK: both were taken
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        qrs=qrs_settings(qrs_server),
        butler_compat={"enabled": True},
    )
    bridge = RunningBridge(config)
    sub = await Subscriber(mosquitto.port).start(STATE, STATS, f"{BASE}/bridge/response/task/start")
    try:
        await bridge.start()
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        # A request sent now arrives after the retained ones (one connection, in order).
        sub.publish(
            f"{BASE}/bridge/request/task/start",
            json.dumps({"name": "Reload Sales", "transaction": "now"}).encode(),
        )
        answer = await sub.wait_json(
            f"{BASE}/bridge/response/task/start", lambda p: p.get("transaction") == "now"
        )
        assert answer["status"] == "ok"
        stats = await sub.wait_json(STATS, lambda p: p["task_starts"] == 1)
        assert stats["commands_retained_ignored"] == 2
        assert [request.path for request in qrs_server.requests] == ["/qrs/task/start"]
        assert len(sub.on(f"{BASE}/bridge/response/task/start")) == 1
    finally:
        await sub.stop()
        await publisher.stop()
        await bridge.close()


async def test_acknowledge_and_forget_answer_on_the_request_topics_and_the_aliases(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(
        STATE, SITE, f"{BASE}/bridge/response/acknowledge", f"{BASE}/bridge/response/forget"
    )
    try:
        await sub.wait_for(STATE, lambda m: m.payload == b"online")
        bridge.tasks.send(FAILURE)
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "ON")
        mark = sub.mark()
        sub.publish(f"{BASE}/bridge/request/acknowledge", b'{"transaction": "t1"}')
        answer = await sub.wait_json(
            f"{BASE}/bridge/response/acknowledge", lambda p: p.get("transaction") == "t1"
        )
        assert answer == {"status": "ok", "transaction": "t1"}
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "OFF", since=mark)
        sub.publish(f"{BASE}/bridge/acknowledge", b"acknowledge")  # the alias (the HA button)
        await sub.wait_count(f"{BASE}/bridge/response/acknowledge", 2)
        sub.publish(f"{BASE}/bridge/request/forget", b'{"server": "QSPROD02", "transaction": 3}')
        forgot = await sub.wait_json(f"{BASE}/bridge/response/forget", lambda p: True)
        assert forgot == {"status": "ok", "data": {"server": "qsprod02"}, "transaction": 3}
        sub.publish(f"{BASE}/bridge/forget", b"QSPROD02")  # the alias: gone already
        again = await sub.wait_json(
            f"{BASE}/bridge/response/forget", lambda p: p["status"] == "error"
        )
        assert again == {"status": "error", "error": "no such server: QSPROD02"}
    finally:
        await sub.stop()


async def test_clearing_a_retained_command_as_the_warning_says_runs_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """`mosquitto_pub -r -n -t <topic>` (the bridge's own advice) sends an empty message,
    which the broker hands on live: it acknowledged every failure."""
    config = bridge_config(tmp_path, mosquitto.port)
    bridge = await RunningBridge(config).start()
    answers = "qlik2mqtt/bridge/response/forget"
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/site", answers)
    try:
        bridge.tasks.send("QSPROD02;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        mark = sub.mark()
        for topic in ("qlik2mqtt/bridge/acknowledge", "qlik2mqtt/bridge/request/acknowledge"):
            sub.publish(topic, b"", retain=True)  # as mosquitto_pub -r -n does
        # A request answered after them (one client's messages arrive in order): by its
        # answer the bridge has handled both.
        sub.publish("qlik2mqtt/bridge/request/forget", b'{"server": "none", "transaction": "t"}')
        await sub.wait_json(answers, lambda p: p.get("transaction") == "t", since=mark)
        bridge.users.send("QSPROD02;Start session;CORP;anna")  # the site published after them
        site = await sub.wait_json(
            "qlik2mqtt/site", lambda p: p["active_sessions"] == 1, since=mark
        )
        assert site["reload_failure"] == "ON"  # it said OFF: the empty message acknowledged
    finally:
        await sub.stop()
        await bridge.close()
