"""The importable Node-RED flow: valid, wired, and subscribed to documented topics only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bridge.commands.builtin import ACKNOWLEDGE
from bridge.config import Config
from bridge.core.payloads import users_payload
from bridge.core.state import ServerState
from bridge.core.topics import Topics

FLOW = Path(__file__).parent.parent / "docs/examples/node-red-flow.json"


def mqtt_match(pattern: str, topic: str) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\+", "[^/]+").replace("\\#", ".*") + "$"
    return re.match(regex, topic) is not None


def test_flow_is_valid_and_fully_wired() -> None:
    nodes = json.loads(FLOW.read_text(encoding="utf-8"))
    ids = {node["id"] for node in nodes}
    assert len(ids) == len(nodes)
    brokers = {node["id"] for node in nodes if node["type"] == "mqtt-broker"}
    assert len(brokers) == 1
    for node in nodes:
        for output in node.get("wires", []):
            assert set(output) <= ids, node["id"]
        if node["type"] in ("mqtt in", "mqtt out"):
            assert node["broker"] in brokers


def test_flow_uses_the_documented_topics() -> None:
    nodes = json.loads(FLOW.read_text(encoding="utf-8"))
    topics = Topics("qlik2mqtt")
    published = [
        topics.site,
        topics.user_event("qsprod02"),
        topics.task_event("qsprod02"),
        topics.server_users("qsprod02"),
    ]
    for node in nodes:
        if node["type"] == "mqtt in":
            assert node["datatype"] == "json"
            assert any(mqtt_match(node["topic"], topic) for topic in published), node["topic"]
    commands = {node["topic"] for node in nodes if node["type"] == "mqtt out"}
    assert ACKNOWLEDGE.topic_for(Config()) in commands
    switch = next(node for node in nodes if node.get("name") == "reload_failure?")
    assert switch["property"] == "payload.reload_failure"  # a key of qlik2mqtt/site


def downstream(nodes: dict[str, dict[str, Any]], start: str) -> set[str]:
    """Every node a message from `start` can reach."""
    seen: set[str] = set()
    todo = [start]
    while todo:  # bounded: each node is visited once
        for output in nodes[todo.pop()].get("wires", []):
            for target in output:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


def test_the_lamp_command_is_sent_only_when_the_flag_changes() -> None:
    """`site` is published at every change of any count: the lamp's command must not be."""
    nodes = {node["id"]: node for node in json.loads(FLOW.read_text(encoding="utf-8"))}
    site_in = next(
        n for n in nodes.values() if n["type"] == "mqtt in" and n["topic"] == "qlik2mqtt/site"
    )
    lamp = next(n["id"] for n in nodes.values() if n["type"] == "mqtt out" and "lamp" in n["name"])
    filters = [
        n
        for n in nodes.values()
        if n["type"] == "rbe" and n["property"] == "payload.reload_failure" and n["func"] == "rbe"
    ]
    assert len(filters) == 1
    only_on_change = filters[0]["id"]
    assert lamp in downstream(nodes, site_in["id"])
    # Every path from the site topic to the lamp passes the filter.
    for first in (target for output in site_in["wires"] for target in output):
        if first != only_on_change:
            assert first != lamp
            assert lamp not in downstream(nodes, first), first


def test_engine_reload_failures_are_reported_like_task_failures() -> None:
    nodes = json.loads(FLOW.read_text(encoding="utf-8"))
    switch = next(
        n for n in nodes if n["type"] == "switch" and n["property"] == "payload.event_type"
    )
    assert len(switch["rules"]) == 1
    rule = switch["rules"][0]
    assert rule["t"] == "regex"
    pattern = re.compile(rule["v"])  # the same syntax in JavaScript for this pattern
    for event_type in ("task_failed", "engine_reload_failed"):
        assert pattern.search(event_type), event_type
    for event_type in ("task_succeeded", "task_aborted", "distribute_finished"):
        assert not pattern.search(event_type), event_type


def test_function_nodes_produce_readable_lines() -> None:
    """Run each function node's code in Node.js, as Node-RED would, on a real payload."""
    import shutil
    import subprocess

    import pytest

    node_js = shutil.which("node")
    if node_js is None:
        pytest.skip("Node.js is not installed")
    nodes = {n.get("name"): n for n in json.loads(FLOW.read_text(encoding="utf-8"))}
    failure = {
        "event_type": "task_failed",
        "server": "QSPROD02",
        "task_name": "Reload; Sales",
        "app_name": "Sales",
        "message": "Max retries reached",
    }
    login = {
        "event_type": "session_start",
        "server": "QSPROD02",
        "user_directory": "CORP",
        "user_id": "anna",
    }
    server = ServerState("QSPROD02", sessions={("CORP", "anna"): 1.0, ("CORP", "bob"): 1.0})
    engine = {
        "event_type": "engine_reload_failed",
        "server": "QSPROD02",
        "task_name": None,
        "app_name": None,
        "app_id": "9f1d2b20-0000-4000-8000-000000000001",
        "session_id": "c0ffee00-0000-4000-8000-000000000002",
        "message": "Reload failed",
    }
    users = users_payload(server, ["CORP\\anna", "CORP\\bob"])  # as the bridge publishes it
    for name, payload, expected in (
        (
            "message",
            failure,
            "Reload failed on QSPROD02: Reload; Sales (app Sales) - Max retries reached",
        ),
        (
            "message",
            engine,
            "Reload failed on QSPROD02: app 9f1d2b20-0000-4000-8000-000000000001 (engine "
            "reload, session c0ffee00-0000-4000-8000-000000000002) - Reload failed",
        ),
        ("who", login, "session_start: CORP\\anna on QSPROD02"),
        ("users", users, "2 on QSPROD02: CORP\\anna, CORP\\bob"),
        (
            "users",
            {**users, "active_users": 5, "users_left_out": 3},
            "5 on QSPROD02: CORP\\anna, CORP\\bob and 3 more",
        ),
    ):
        script = (
            f"const msg = {{payload: {json.dumps(payload)}}};\n"
            f"const out = (function (msg) {{ {nodes[name]['func']} }})(msg);\n"
            "process.stdout.write(out.payload);"
        )
        result = subprocess.run([node_js, "-e", script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
