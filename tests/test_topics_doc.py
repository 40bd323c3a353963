"""docs/topics.md's payload examples have exactly the keys the bridge publishes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.bridge_runner import RunningBridge
from tests.helpers import ROOT, Mosquitto, Subscriber, bridge_env

TOPICS_MD = ROOT / "docs/topics.md"
BASE = "qlik2mqtt"
COUNTED_BY_NAME = {
    "servers",
    "extension_errors",
    "task_restarts",
    "task_start_errors",
    "task_contexts",
    "task_context_unavailable",
}
"""Objects of bridge/info and bridge/stats keyed by whatever is there (a server, a reason)."""


def example(heading: str) -> dict[str, Any]:
    """The first JSON block after the `## <heading>` line."""
    text = TOPICS_MD.read_text(encoding="utf-8")
    start = text.index(f"## `{heading}`\n")
    block = re.search(r"```json\n(.*?)\n```", text[start:], re.DOTALL)
    assert block is not None, heading
    parsed: dict[str, Any] = json.loads(block.group(1))
    return parsed


async def test_the_payload_examples_have_the_published_keys(
    bridge: RunningBridge, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        sent = await bridge.send_test_events(bridge_env(mosquitto.port, tmp_path))
        assert sent.returncode == 0, sent.stderr
        site = await sub.wait_json(f"{BASE}/site", lambda p: p["aborted_tasks"] == 1)
        server = await sub.wait_json(f"{BASE}/qswin01", lambda p: p["aborted_tasks"] == 1)
        user = await sub.wait_json(f"{BASE}/qswin01/event/user", lambda p: True)
        users = await sub.wait_json(f"{BASE}/qswin01/users", lambda p: True)
        task = await sub.wait_json(
            f"{BASE}/qswin01/event/task", lambda p: p["event_type"] == "task_failed"
        )
        bridge.logs.send(
            "/qseow-proxy/;7;20261104T091744.102+0100;2026-11-04 09:17:44,102;ERROR;QSWIN01;"
            "Audit.Proxy;CORP\\svc;Login failed;;CORP;mia;Login;401;AppAccess;/hub/"
        )
        log = await sub.wait_json(f"{BASE}/qswin01/event/log", lambda p: True)
        logged = await sub.wait_json(
            f"{BASE}/qswin01", lambda p: p["log_events"]["last_error"] is not None
        )
        info = await sub.wait_json(f"{BASE}/bridge/info", lambda p: "qswin01" in p["servers"])
        stats = await sub.wait_json(f"{BASE}/bridge/stats", lambda p: p["events"] > 0)
    finally:
        await sub.stop()
    published = {
        f"{BASE}/site": site,
        f"{BASE}/<server>": server,
        f"{BASE}/<server>/users": users,
        f"{BASE}/<server>/event/user": user,
        f"{BASE}/<server>/event/task": task,
        f"{BASE}/<server>/event/log": log,
    }
    for heading, payload in published.items():
        assert set(example(heading)) == set(payload), heading
    # bridge/info and bridge/stats: every key, and the keys of their objects.
    for heading, payload in ((f"{BASE}/bridge/info", info), (f"{BASE}/bridge/stats", stats)):
        documented = example(heading)
        assert set(documented) == set(payload), (heading, set(documented) ^ set(payload))
        for key, value in payload.items():
            if isinstance(value, dict) and key not in COUNTED_BY_NAME:
                assert set(documented[key]) == set(value), (heading, key)
    text = TOPICS_MD.read_text(encoding="utf-8")
    block = text[text.index("### `log_events` in") :].split("```json\n")[1].split("```")[0]
    documented = json.loads(block)["log_events"]
    for state in (server, site):
        assert set(documented) == set(state["log_events"])
        assert set(documented["unacknowledged"]) == set(state["log_events"]["unacknowledged"])
    assert set(documented["last_error"]) == set(logged["log_events"]["last_error"])
    assert site["last_event_at"] is not None
    assert set(example(f"{BASE}/site")["last_failed_task"]) - {"..."} <= set(task)
