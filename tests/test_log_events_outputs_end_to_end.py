"""Log events' outputs end to end against a real mosquitto: two servers and all four services
on the log port, category rules on the event topics and in the retained state, and alert
outputs lit by an ERROR (and a category), kept across a restart, cleared by acknowledge."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.core.events import LogEvent, LogLevel, LogSource, SourceFormat
from bridge.core.persistence import save_state
from bridge.core.state import BridgeState, StateSettings, apply_event
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Received, Subscriber

BASE = "qlik2mqtt"
LAMP = "cmnd/errors_lamp/POWER"
LICENCE_LAMP = "cmnd/licence_lamp/POWER"
CATEGORIES = [
    {"name": "licence", "pattern": r"licen[cs]e"},
    {"name": "engine_memory", "source": "engine", "level": ["error", "fatal"], "pattern": "memory"},
    {"name": "document", "pattern": r"'sales; emea\.qvf'"},  # a `;` inside the message
    {"name": "reload", "source": "scheduler", "pattern": "^message from reloadprovider"},
]


def head(row: int, level: str, server: str, logger: str, message: str) -> str:
    return (
        f"{row};2026-11-04T09:15:09.001+0100;2026-11-04 09:15:09,001;{level};{server};{logger};"
        f"CORP\\qlikservice;{message}"
    )


def engine(row: int, level: str, server: str, message: str) -> str:
    return (
        f"/qseow-engine/;{head(row, level, server, 'System.Engine.Engine', message)};0;(null);"
        "(null);20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;14.129.5.0;"
        "20261101T060000.000Z;Error;(null);(null)"
    )


def proxy(row: int, level: str, server: str, message: str) -> str:
    return (
        f"/qseow-proxy/;{head(row, level, server, 'Audit.Proxy.Proxy', message)};;CORP;mia;"
        "Login;401;AppAccess;/hub/"
    )


def repository(row: int, level: str, server: str, message: str) -> str:
    logger = "System.Repository.Repository.Licensing"
    return (
        f"/qseow-repository/;{head(row, level, server, logger, message)};(null);INTERNAL;"
        "sa_repository;License check;0;(null);(null)"
    )


def scheduler(row: int, level: str, server: str, message: str) -> str:
    logger = "System.Scheduler.Scheduler.Slave.Tasks.ReloadTask"
    return (
        f"/qseow-scheduler/;{head(row, level, server, logger, message)};(null);(null);(null);"
        "CORP\\mia;Reload Sales;Sales;dec2a02a-1680-44ef-8dc2-e2bfb180af87;"
        "e7af59a0-c243-480d-9571-08727551a66f;4831c6a5-34f6-45bb-9d40-73a6e6992670"
    )


Sent = tuple[str, str, str, str | None]
"""(datagram, server slug, message, expected category)"""


def item(
    build: Callable[[int, str, str, str], str],
    row: int,
    level: str,
    server: str,
    message: str,
    category: str | None,
) -> Sent:
    return build(row, level, server, message), server.lower(), message, category


WARNINGS = [
    item(engine, 1, "WARN", "QSPROD01", "Document 'Sales; EMEA.qvf' is locked", "document"),
    item(proxy, 2, "WARN", "QSPROD02", "The licence expires in 9 days", "licence"),
    item(scheduler, 3, "WARN", "QSPROD02", "Task is waiting for a slot", None),
    item(repository, 4, "WARN", "QSPROD01", "Slow database; 900 ms", None),
]
ERRORS = [
    item(engine, 5, "WARN", "QSPROD02", "Engine memory is high", None),  # not an error
    item(engine, 6, "ERROR", "QSPROD02", "Out of memory: 2048 MB refused", "engine_memory"),
    item(
        scheduler,
        7,
        "ERROR",
        "QSPROD01",
        "Message from ReloadProvider: Reload failed; exit 3",
        "reload",
    ),
    item(proxy, 8, "ERROR", "QSPROD01", "Request to the engine failed", None),
    item(repository, 9, "FATAL", "QSPROD01", "The license for this site has expired", "licence"),
]


def lamp(topic: str, when: str) -> dict[str, Any]:
    return {"topic": topic, "on": "ON", "off": "OFF", "when": when}


async def check_events(sub: Subscriber, sent: list[Sent], since: int) -> None:
    """Each datagram on its server's event topic, in order, whole, with its category."""
    for slug in ("qsprod01", "qsprod02"):
        topic = f"{BASE}/{slug}/event/log"
        expected = [(message, category) for _, s, message, category in sent if s == slug]

        def arrived(topic: str = topic) -> list[dict[str, Any]]:
            return [m.json() for m in sub.on(topic, since)]

        def complete(_: Received, count: int = len(expected)) -> bool:
            return len(arrived()) >= count

        await sub.wait_for(topic, complete, since=since)
        assert [(p["message"], p["category"]) for p in arrived()] == expected


async def test_categories_alert_outputs_and_acknowledge_across_two_servers_and_four_services(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start("cmnd/#", f"{BASE}/#")
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        log_events={"categories": CATEGORIES},
        alerts={
            "outputs": [
                lamp(LAMP, "log_error"),
                lamp(LICENCE_LAMP, "log_category:licence:QSPROD01"),
            ]
        },
        homeassistant__enabled=False,
    )
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        await sub.wait_for(LICENCE_LAMP, lambda m: m.payload == b"OFF")

        # Warnings from all four services: categories, and no lamp (a licence warning is on
        # QSPROD02, the licence lamp watches QSPROD01).
        mark = sub.mark()
        for text, *_ in WARNINGS:
            bridge.logs.send(text)
        await check_events(sub, WARNINGS, mark)
        site = await sub.wait_json(
            f"{BASE}/site", lambda p: p["log_events"]["warnings"] == 4, since=mark
        )
        assert site["log_events"]["unacknowledged"] == {
            "error": False,
            "categories": ["document", "licence"],
        }
        assert sub.payloads(LAMP, mark) == sub.payloads(LICENCE_LAMP, mark) == []

        # Errors: the lamp goes on at the first ERROR, the licence lamp at QSPROD01's licence.
        mark = sub.mark()
        for text, *_ in ERRORS:
            bridge.logs.send(text)
        await check_events(sub, ERRORS, mark)
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        await sub.wait_for(LICENCE_LAMP, lambda m: m.payload == b"ON", since=mark)
        server = await sub.wait_json(
            f"{BASE}/qsprod01", lambda p: p["log_events"]["fatals"] == 1, since=mark
        )
        events = server["log_events"]
        assert (events["warnings"], events["errors"], events["fatals"]) == (2, 2, 1)
        assert events["last_error"]["category"] == "licence"
        assert events["unacknowledged"] == {
            "error": True,
            "categories": ["document", "licence", "reload"],
        }
        other = await sub.wait_json(
            f"{BASE}/qsprod02", lambda p: p["log_events"]["errors"] == 1, since=mark
        )
        assert other["log_events"]["last_error"]["category"] == "engine_memory"
        assert other["log_events"]["sources"]["engine"]["warnings"] == 1

        # A restart keeps the flags: the lamps are set ON again when the bridge connects; and
        # the sensors agree with them: the last error and the window's counts are kept too.
        await bridge.stop()
        mark = sub.mark()
        await bridge.start()
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        await sub.wait_for(LICENCE_LAMP, lambda m: m.payload == b"ON", since=mark)
        assert sub.payloads(LAMP, mark) == [b"ON"]
        server = await sub.wait_json(f"{BASE}/qsprod01", lambda p: True, since=mark)
        events = server["log_events"]
        assert (events["warnings"], events["errors"], events["fatals"]) == (2, 2, 1)
        assert events["errors_total"] == 0  # since start: this bridge's start
        assert events["last_error"]["category"] == "licence"

        # Acknowledge: both lamps off; the window's counts and the last error stay.
        mark = sub.mark()
        sub.publish(f"{BASE}/bridge/acknowledge", b"acknowledge")
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark)
        await sub.wait_for(LICENCE_LAMP, lambda m: m.payload == b"OFF", since=mark)
        site = await sub.wait_json(
            f"{BASE}/site",
            lambda p: p["log_events"]["unacknowledged"] == {"error": False, "categories": []},
            since=mark,
        )
        assert (site["log_events"]["errors"], site["log_events"]["fatals"]) == (3, 1)
        assert site["log_events"]["errors_total"] == 0  # since start: this bridge's start
        assert site["log_events"]["last_error"] is not None
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_bridge_restarted_hours_later_publishes_no_old_window_counts(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The restored window catches up before the first connect: the first retained server
    state has the last error but no count from hours ago."""
    config = bridge_config(
        tmp_path, mosquitto.port, mqtt__base_topic="catchup", homeassistant__enabled=False
    )
    state = BridgeState()
    old = LogEvent(
        source=LogSource.ENGINE,
        level=LogLevel.ERROR,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        subsystem="System.Engine",
        message="Out of memory",
    )
    apply_event(state, old, time.time() - 2 * 3600, StateSettings(None, 60.0, None))
    save_state(config.state_file, state)
    sub = await Subscriber(mosquitto.port).start("catchup/#")
    bridge = await RunningBridge(config).start()
    try:
        server = await sub.wait_json("catchup/qs1", lambda payload: True)
        assert server["log_events"]["errors"] == 0  # 2 h ago: out of the 1 h window
        assert server["log_events"]["last_error"]["message"] == "Out of memory"
    finally:
        await bridge.stop()
        await sub.stop()
