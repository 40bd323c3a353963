"""The importable Node-RED flow: valid, wired, and subscribed to documented topics only."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bridge.topics import Topics

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
    published = [topics.site, topics.user_event("qsprod02"), topics.task_event("qsprod02")]
    for node in nodes:
        if node["type"] == "mqtt in":
            assert node["datatype"] == "json"
            assert any(mqtt_match(node["topic"], topic) for topic in published), node["topic"]
    commands = {node["topic"] for node in nodes if node["type"] == "mqtt out"}
    assert topics.acknowledge in commands
    switch = next(node for node in nodes if node.get("name") == "reload_failure?")
    assert switch["property"] == "payload.reload_failure"  # a key of qlik2mqtt/site


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
    for name, payload, expected in (
        (
            "message",
            failure,
            "Reload failed on QSPROD02: Reload; Sales (app Sales) - Max retries reached",
        ),
        ("who", login, "session_start: CORP\\anna on QSPROD02"),
    ):
        script = (
            f"const msg = {{payload: {json.dumps(payload)}}};\n"
            f"const out = (function (msg) {{ {nodes[name]['func']} }})(msg);\n"
            "process.stdout.write(out.payload);"
        )
        result = subprocess.run([node_js, "-e", script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
