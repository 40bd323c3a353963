"""Whoever can send a UDP datagram writes every string of an event: none of it may become a
Slack control sequence (`<!channel>`, `<@U…>`, `<#C…>`) or a link of its own, in the blocks,
the context (the links to Qlik Sense) or the plain `text` Slack shows in notifications. Pure
layouts in every form (folded, summary, overflow, template), then the JSON a real bridge sends
to the local Slack server, as a webhook and through the Web API."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge.slack.sink as sink
from bridge.config import SlackConfig
from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.privacy import Privacy
from bridge.slack.layout import SlackLayout
from bridge.slack.messages import SlackMessage, log_message, task_message, user_message
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto
from tests.slack_server import SlackServer

BASE = "https://qlik.corp.example"
PHISH = "x|Open the app> <https://evil.example/login|Re-enter your Qlik password"
HOSTILE = [
    PHISH,
    "<!channel> reload now",
    "<!here|here>",
    "<@U024BE7LH> <#C024BE7LH|ops>",
    "<https://evil.example|Click me>",
    "&lt;!channel&gt; already escaped?",
]
LINK = re.compile(r"<([^<>]*)>")


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON body (the text, every block's every text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def assert_inert(body: Any) -> None:
    """No control sequence, and no link but the bridge's own to `BASE` with its own labels."""
    for text in strings(body):
        for inner in LINK.findall(text):
            url, _, label = inner.partition("|")
            assert url.startswith(f"{BASE}/"), (inner, text[:200])
            assert label in {"Open the app", "Tasks in the QMC"}, (inner, text[:200])
            assert not re.search(r"[\s|<>]", url), inner  # event text percent-encoded
        for control in ("<!", "<@", "<#"):
            assert control not in text, text[:200]


def hostile_task(value: str, kind: TaskEventType) -> TaskEvent:
    event = TaskEvent(event_type=kind, server="QS1", source_format=SourceFormat.XML)
    for field in dataclasses.fields(TaskEvent):
        if field.name not in {"event_type", "source_format"}:
            setattr(event, field.name, value)
    return event


def hostile_user(value: str) -> UserEvent:
    event = UserEvent(
        event_type=UserEventType.SESSION_START, server=value, source_format=SourceFormat.XML
    )
    for name in ("message", "user_directory", "user_id", "origin", "context", "log_timestamp"):
        setattr(event, name, value)
    return event


def hostile_log(value: str) -> LogEvent:
    event = LogEvent(
        source=LogSource.SCHEDULER,
        level=LogLevel.ERROR,
        server=value,
        source_format=SourceFormat.TAGGED,
        category=None,
    )
    for field in dataclasses.fields(LogEvent):
        if field.type in ("str | None",) and field.name != "category":
            setattr(event, field.name, value)
    return event


def body(message: SlackMessage) -> dict[str, Any]:
    return {"text": message.text, "blocks": message.blocks}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("privacy", [Privacy(), Privacy("hashed", "salt")])
def test_every_built_in_layout_is_inert(value: str, privacy: Privacy) -> None:
    messages = [
        task_message(hostile_task(value, kind), value, folded, BASE, privacy)
        for kind in TaskEventType
        for folded in (0, 3)
    ]
    messages.append(user_message(hostile_user(value), privacy))
    log = hostile_log(value)
    messages += [
        log_message(log, value, 0, privacy=privacy),
        log_message(log, value, 5, privacy=privacy),  # folded
        log_message(log, value, 5, overflow=True, privacy=privacy),  # the overflow summary
        log_message(dataclasses.replace(log, category="net"), value, 4, False, privacy, 2),
    ]
    for message in messages:
        assert_inert(body(message))


def test_the_app_link_keeps_its_label_and_encodes_the_id() -> None:
    message = task_message(hostile_task(PHISH, TaskEventType.TASK_FAILED), None, 0, BASE)
    context = [block for block in message.blocks if block["type"] == "context"]
    links = LINK.findall(context[-1]["elements"][-1]["text"])
    assert links[0].startswith(f"{BASE}/sense/app/x%7COpen%20the%20app%3E%20%3Chttps")
    assert links[0].endswith("|Open the app")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_template_sees_the_event_escaped(value: str, tmp_path: Path) -> None:
    (tmp_path / "task.j2").write_text("*{{ event.task_name }}* {{ event.app_id }} {{ text }}")
    (tmp_path / "blocks.j2").write_text(
        '[{"type": "section", "text": {"type": "mrkdwn", "text": {{ event.task_name|tojson }}}}]'
    )
    for template in ("task.j2", "blocks.j2"):
        config = SlackConfig.model_validate({"task_events": {"template": str(tmp_path / template)}})
        layout = SlackLayout(config, BASE, Privacy())
        event = hostile_task(value, TaskEventType.TASK_FAILED)
        event.execution_id = "eid-1"
        assert_inert(body(layout.message(event, 1_700_000_000.0)))


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("api", ["webhook", "web_api"])
async def test_what_reaches_slack_is_inert(
    api: str, tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sink, "CHANNEL_GAP", 0.01)
    settings: dict[str, Any] = {"enabled": True}
    if api == "webhook":
        settings |= {"webhook_url": f"{slack.url}/services/T0/B0/X", "user_activity": {}}
    else:
        settings |= {"token": "xoxb-test", "base_url": f"{slack.url}/api/"}
        settings |= {"task_events": {"channel": "#qlik"}, "user_activity": {"channel": "#qlik"}}
    settings["user_activity"]["enabled"] = True
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        slack=settings,
        homeassistant__enabled=False,
        qlik={"base_url": BASE},
    )
    bridge = await RunningBridge(config).start()
    try:
        # Butler's tagged layout: the phishing app id, a mention in the task name and user.
        bridge.tasks.send(
            f"/scheduler-task-failed/;QS1;<!channel> Reload <@U1>;Sales <#C1|x>;CORP\\svc;"
            f"tid-1;{PHISH};2026-05-06 14:23:45,123;ERROR;eid-1;<https://evil.example|log in>"
        )
        bridge.users.send("/proxy-session/;QS1;Start session;CORP;<!here>;AppAccess;/hub/;x")
        requests = await asyncio.to_thread(slack.wait_for, 2)
        for request in requests:
            assert_inert(request.body)
        task = next(r.body for r in requests if "Reload" in r.body["text"])
        assert "&lt;!channel&gt; Reload &lt;@U1&gt;" in task["text"]  # shown, not obeyed
        assert any("/sense/app/x%7COpen" in text for text in strings(task))
    finally:
        await bridge.close()
