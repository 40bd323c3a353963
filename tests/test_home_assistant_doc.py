"""docs/home-assistant.md's automations do not fire again across a restart of the bridge: every
state trigger leaves out the change from `unavailable`/`unknown` (what the entities are while
the bridge is away), as issue 22 asks."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helpers import ROOT

DOC = ROOT / "docs/home-assistant.md"


def documented_automations() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```yaml\n")[1:]]
    found: list[dict[str, Any]] = []
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, dict) and "automation" in data:
            found.extend(data["automation"])
    return found


def test_every_state_trigger_ignores_the_return_from_unavailable() -> None:
    automations = documented_automations()
    triggers = [
        (automation["alias"], trigger)
        for automation in automations
        for trigger in automation["trigger"]
        if trigger["platform"] == "state"
    ]
    assert len(triggers) == 5
    for alias, trigger in triggers:
        left_out = trigger.get("not_from", [])
        assert {"unavailable", "unknown"} <= set(left_out) or trigger.get("from") in (
            "on",
            "off",
        ), alias
