"""The Home Assistant check finds every automation and card the docs give (issue 28)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_home_assistant", ROOT / "scripts" / "check_home_assistant.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_documented_automation_is_loaded() -> None:
    check = load_check()
    aliases_in_docs = set()
    for name in check.DOCUMENTED:
        text = (ROOT / name).read_text(encoding="utf-8")
        aliases_in_docs |= {
            alias.strip().strip('"') for alias in re.findall(r"- alias: (.+)", text)
        }
    loaded = yaml.safe_load(check.automations())
    aliases = {automation["alias"] for automation in loaded}
    assert aliases_in_docs <= aliases
    assert "Qlik Sense: retry a failed reload, from the event" in aliases
    by_alias = {automation["alias"]: automation for automation in loaded}
    # Only the retry keeps its action: the others publish their alias (no lamp, no second start).
    assert by_alias[check.RETRY_ALIAS]["action"][-1]["service"] == "button.press"
    for alias in aliases_in_docs - {check.RETRY_ALIAS}:
        assert by_alias[alias]["action"] == [
            {"service": "mqtt.publish", "data": {"topic": check.FIRED_TOPIC, "payload": alias}}
        ]


def test_every_documented_card_is_loaded_whole() -> None:
    check = load_check()
    cards = check.cards()
    assert [card["type"] for card in cards] == ["entities", "markdown"]
    # The Markdown card's own code fence does not cut its content short.
    assert cards[1]["content"].rstrip().endswith("{% endif %}")
    rendered = [
        a for a in yaml.safe_load(check.automations()) if a["alias"].startswith("check: render")
    ]
    assert [a["action"][0]["data"]["payload"] for a in rendered] == [cards[1]["content"]]
