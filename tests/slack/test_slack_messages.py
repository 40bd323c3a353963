"""The built-in Slack layouts stay within Slack's block limits whatever the log said: text is
escaped first and cut after, never inside an entity (Slack answers `invalid_blocks` otherwise,
and the message is lost)."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import pytest

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
from bridge.slack.messages import (
    FIELD_TEXT_MAX,
    SECTION_TEXT_MAX,
    SlackMessage,
    log_message,
    task_message,
    user_message,
)

NASTY = ["<" * 10_000, "&" * 10_000, "\U0001f600" * 10_000, "a<b>&c;" * 2_000 + "\U0001f600<"]
PRIVACIES = [Privacy(), Privacy("hashed", "salt")]


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def texts_of(message: SlackMessage) -> list[tuple[str, str, int]]:
    """(where, text, limit) for every text object in the blocks."""
    found: list[tuple[str, str, int]] = []
    for block in message.blocks:
        kind = block["type"]
        if kind == "header":
            found.append((kind, block["text"]["text"], 150))
        if kind == "section":
            found.append((kind, block["text"]["text"], SECTION_TEXT_MAX))
            found += [("field", field["text"], FIELD_TEXT_MAX) for field in block.get("fields", [])]
        if kind == "context":
            found += [(kind, element["text"], SECTION_TEXT_MAX) for element in block["elements"]]
    return found


def assert_within_limits(message: SlackMessage) -> None:
    for where, text, limit in texts_of(message):
        assert units(text) <= limit, (where, units(text))
        if where != "context":  # links in the context are Slack's own <url|label>
            assert "&" not in re.sub(r"&(amp|lt|gt);", "", text), (where, text[-20:])
            assert "<" not in text, where
            assert ">" not in text, where


def every_field(cls: type[Any], text: str, **fixed: Any) -> dict[str, Any]:
    values = {f.name: text for f in fields(cls) if f.type == "str | None"}
    return {**values, **fixed}


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("privacy", PRIVACIES)
def test_every_log_message_block_is_within_slacks_limits(text: str, privacy: Privacy) -> None:
    for level in LogLevel:
        event = LogEvent(
            **every_field(
                LogEvent,
                text,
                source=LogSource.SCHEDULER,
                level=level,
                server=text,
                source_format=SourceFormat.XML,
            )
        )
        for folded, overflow, distinct in [(0, False, None), (7, False, None), (7, True, None)]:
            assert_within_limits(log_message(event, None, folded, overflow, privacy, distinct))
        event.category = "connectivity"
        assert_within_limits(log_message(event, None, 7, False, privacy, 3))


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("privacy", PRIVACIES)
def test_every_task_and_user_message_block_is_within_slacks_limits(
    text: str, privacy: Privacy
) -> None:
    for task_type in TaskEventType:
        task = TaskEvent(
            **every_field(
                TaskEvent, text, event_type=task_type, server=text, source_format=SourceFormat.XML
            )
        )
        for folded in (0, 3):
            assert_within_limits(task_message(task, None, folded, None, privacy))
    for user_type in UserEventType:
        user = UserEvent(
            **every_field(
                UserEvent, text, event_type=user_type, server=text, source_format=SourceFormat.XML
            )
        )
        assert_within_limits(user_message(user, privacy))


def test_a_short_message_is_escaped_whole() -> None:
    event = LogEvent(
        source=LogSource.ENGINE,
        level=LogLevel.ERROR,
        server="n1",
        source_format=SourceFormat.XML,
        message="a < b & c",
    )
    blocks = log_message(event, None).blocks
    assert blocks[2]["text"]["text"] == "```a &lt; b &amp; c```"


@pytest.mark.parametrize(
    ("kind", "noun"),
    [
        (TaskEventType.TASK_FAILED, "3 failures of this task"),
        (TaskEventType.ENGINE_RELOAD_FAILED, "3 failures of this task"),
        (TaskEventType.TASK_ABORTED, "3 aborts of this task"),
        (TaskEventType.TASK_SUCCEEDED, "3 successes of this task"),
    ],
)
def test_a_folded_message_counts_what_it_folded(kind: TaskEventType, noun: str) -> None:
    event = TaskEvent(
        event_type=kind, server="QS1", source_format=SourceFormat.TAGGED, task_name="Reload Sales"
    )
    assert task_message(event, None, folded=3).text.endswith(f"— {noun} since the last message")
