"""qlik2mqtt's own log-event appenders end to end against a real mosquitto: the datagrams real
log4net sent (tests/fixtures/log4net-log-events.jsonl) on the log port, each on its event topic
with every field, the counts in the retained state, and a broken one refused and counted."""

from __future__ import annotations

import json
from collections import Counter

from tests.bridge_runner import RunningBridge
from tests.helpers import FIXTURES, Mosquitto, Subscriber

BASE = "qlik2mqtt"
CAPTURED = [
    json.loads(line)
    for line in (FIXTURES / "log4net-log-events.jsonl").read_text(encoding="utf-8").splitlines()
]
EVENT_TYPES = {"WARN": "log_warning", "ERROR": "log_error", "FATAL": "log_fatal"}
PUBLISHED_AS_LOGGED = (
    "source",
    "level",
    "server",
    "subsystem",
    "message",
    "exception_message",
    "user_directory",
    "user_id",
    "task_name",
    "app_name",
    "task_id",
    "execution_id",
    "session_id",
    "proxy_session_id",
    "command",
    "result_code",
    "origin",
    "context",
    "log_timestamp",
)


async def test_real_log4net_log_events_come_out_of_the_bridge_intact(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        host = CAPTURED[0]["expected"]["server"]
        slug = host.lower()
        for fixture in CAPTURED:
            bridge.logs.send(bytes.fromhex(fixture["hex"]))
        bridge.logs.send(bytes.fromhex(CAPTURED[0]["hex"]).replace(b"message>", b"message>!"))
        received = await sub.wait_count(f"{BASE}/{slug}/event/log", len(CAPTURED))
        levels = Counter(f["expected"]["level"] for f in CAPTURED)
        state = await sub.wait_json(
            f"{BASE}/{slug}",
            lambda p: (
                p["log_events"]["warnings_total"] == levels["WARN"]
                and p["log_events"]["errors_total"] == levels["ERROR"]
                and p["log_events"]["fatals_total"] == levels["FATAL"]
            ),
        )
        stats = await sub.wait_json(
            f"{BASE}/bridge/stats", lambda p: p["rejected"].get("bad_xml", 0) == 1
        )
    finally:
        await sub.stop()
    payloads = [message.json() for message in received]
    assert len(payloads) == len(CAPTURED)
    for payload, fixture in zip(payloads, CAPTURED, strict=True):
        expected = fixture["expected"]
        assert payload["event_type"] == f"log_{expected['level'].lower()}".replace(
            "warn", "warning"
        )
        for name in PUBLISHED_AS_LOGGED:
            assert payload[name] == expected[name], name
    sources = state["log_events"]["sources"]
    for source in ("engine", "proxy", "repository", "scheduler"):
        logged = Counter(f["expected"]["level"] for f in CAPTURED if f["source"] == source)
        assert sources[source]["errors"] == logged["ERROR"], source
        assert sources[source]["warnings"] == logged["WARN"], source
    last = [f for f in CAPTURED if f["expected"]["level"] != "WARN"][-1]["expected"]
    assert (
        state["log_events"]["last_error"]["source"],
        state["log_events"]["last_error"]["message"],
    ) == (
        last["source"],
        last["message"],
    )
    assert stats["events"] >= len(CAPTURED)
