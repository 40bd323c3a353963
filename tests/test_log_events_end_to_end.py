"""Log events end to end against a real mosquitto: Butler SOS-format datagrams from two servers
and all four services on the log port, the event topics, and the counts in retained state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.bridge_runner import RunningBridge
from tests.helpers import Mosquitto, Subscriber

BASE = "qlik2mqtt"
FIXTURES = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "butler-sos-log-events.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
]


@pytest.fixture
async def sub(mosquitto: Mosquitto) -> AsyncIterator[Subscriber]:
    subscriber = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    yield subscriber
    await subscriber.stop()


def window_counts(payload: dict[str, Any]) -> tuple[int, int, int]:
    events = payload["log_events"]
    return events["warnings"], events["errors"], events["fatals"]


async def test_log_events_from_two_servers_and_four_services(
    bridge: RunningBridge, sub: Subscriber, mosquitto: Mosquitto
) -> None:
    await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
    for fixture in FIXTURES:
        bridge.logs.send(fixture["text"].encode())
    uncertain = (  # a `;` in the context: published uncertain, counted, never misread
        "/qseow-proxy/;9;20261104T091744.102+0100;x;WARN;QSPROD02;Audit.Proxy;svc;msg;;"
        "CORP;mia;Login;401;App;/a;b"
    )
    bridge.logs.send(uncertain.encode())

    by_server: dict[str, list[dict[str, Any]]] = {}
    for slug, host in (
        ("qsprod01", "QSPROD01"),
        ("qsprod02", "QSPROD02"),
        ("qsnode24", "QSNODE24"),
    ):
        expected = [f for f in FIXTURES if f["expected"]["server"] == host]
        received = await sub.wait_count(f"{BASE}/{slug}/event/log", len(expected))
        assert not any(message.retain for message in received)
        by_server[host] = [message.json() for message in received[: len(expected)]]
        assert [p["message"] for p in by_server[host]] == [
            f["expected"]["message"] for f in expected
        ]
    events = [payload for payloads in by_server.values() for payload in payloads]
    assert {p["source"] for p in events} == {"engine", "proxy", "repository", "scheduler"}
    for payload in events:
        fixture = next(f for f in FIXTURES if f["expected"]["message"] == payload["message"])
        expected = fixture["expected"]
        assert payload["event_type"] == f"log_{expected['level'].lower()}".replace(
            "log_warn", "log_warning"
        )
        for name, value in expected.items():
            assert payload[name] == value, name  # every field intact, `;` and quotes too
        assert payload["timestamp"].endswith("Z")

    # QSPROD01: engine WARN + ERROR, repository ERROR + FATAL. QSPROD02: proxy WARN + ERROR,
    # scheduler ERROR + WARN.
    qs1 = await sub.wait_json(f"{BASE}/qsprod01", lambda p: window_counts(p) == (1, 2, 1))
    assert qs1["log_events"]["sources"]["repository"]["fatals"] == 1
    assert qs1["log_events"]["last_error"]["message"] == "The license for this site has expired"
    qs2 = await sub.wait_json(f"{BASE}/qsprod02", lambda p: window_counts(p) == (3, 2, 0))
    assert qs2["log_events"]["sources"]["scheduler"]["errors_total"] == 1
    assert qs2["log_events"]["last_error"]["source"] == "scheduler"
    # QSNODE24: its INFO and DEBUG lines are published above, never counted.
    node = await sub.wait_json(f"{BASE}/qsnode24", lambda p: window_counts(p) == (3, 4, 0))
    assert node["log_events"]["last_error"]["level"] == "ERROR"
    assert {p["event_type"] for p in by_server["QSNODE24"]} >= {"log_info", "log_debug"}
    site = await sub.wait_json(f"{BASE}/site", lambda p: window_counts(p) == (7, 8, 1))
    assert site["log_events"]["errors_total"] == 8
    assert site["log_events"]["last_error"]["server"] in ("QSPROD01", "QSPROD02", "QSNODE24")
    stats = await sub.wait_json(f"{BASE}/bridge/stats", lambda p: p["uncertain_fields"] == 2)
    assert stats["events"] >= len(FIXTURES) + 1
    assert stats["rejected_total"] == 0
    published = await sub.wait_count(f"{BASE}/qsprod02/event/log", 5)
    last = published[-1].json()
    assert (last["fields_uncertain"], last["subsystem"], last["context"]) == (
        True,
        "Audit.Proxy",
        None,
    )
    assert (last["windows_user"], last["message"]) == ("svc", "msg;;CORP;mia;Login;401;App;/a;b")

    # A late subscriber gets the counts from the retained state.
    late = await Subscriber(mosquitto.port).start(f"{BASE}/site", f"{BASE}/qsprod01")
    try:
        retained = await late.wait_for(f"{BASE}/site", lambda m: m.retain)
        assert window_counts(retained.json()) == (7, 8, 1)
        retained = await late.wait_for(f"{BASE}/qsprod01", lambda m: m.retain)
        assert window_counts(retained.json()) == (1, 2, 1)
    finally:
        await late.stop()


async def test_a_flood_of_warnings_costs_a_handful_of_state_publishes(
    bridge: RunningBridge, sub: Subscriber
) -> None:
    await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
    line = FIXTURES[0]["text"]  # an engine WARN on QSPROD01
    for _ in range(2000):
        bridge.logs.send(line.encode())
    await sub.wait_count(f"{BASE}/qsprod01/event/log", 2000, timeout=60.0)
    await sub.wait_json(f"{BASE}/qsprod01", lambda p: p["log_events"]["warnings"] == 2000)
    state_publishes = sub.on(f"{BASE}/qsprod01")
    assert len(state_publishes) < 100, len(state_publishes)
