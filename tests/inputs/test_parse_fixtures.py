"""Every datagram captured from real log4net parses to the event it was logged from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.inputs.parse import parse_datagram
from tests.helpers import FIXTURES, fixture_datagrams

COMMAND_TYPES = {
    "Start session": UserEventType.SESSION_START,
    "Stop session": UserEventType.SESSION_STOP,
    "Open connection": UserEventType.CONNECTION_OPEN,
    "Close connection": UserEventType.CONNECTION_CLOSE,
}
FORMATS = {
    "legacy-user": SourceFormat.LEGACY,
    "legacy-task": SourceFormat.LEGACY,
    "tagged-user": SourceFormat.TAGGED,
    "tagged-task": SourceFormat.TAGGED,
    "xml": SourceFormat.XML,
}
DATAGRAMS = fixture_datagrams()
LOGGED = [
    json.loads(line)
    for line in (FIXTURES / "log4net-events.jsonl").read_text(encoding="utf-8").splitlines()
]


def _source_event(parsed: UserEvent | TaskEvent) -> dict[str, Any]:
    """The logged event a datagram came from (each datagram names a unique user or task)."""
    if isinstance(parsed, UserEvent):
        matches = [
            e
            for e in LOGGED
            if e["properties"].get("UserId") == parsed.user_id
            and COMMAND_TYPES.get(e["properties"].get("Command", "")) == parsed.event_type
        ]
    else:
        matches = [e for e in LOGGED if e["properties"].get("TaskName") == parsed.task_name]
    assert len(matches) == 1, parsed
    found: dict[str, Any] = matches[0]
    return found


@pytest.mark.parametrize(
    "datagram", DATAGRAMS, ids=[f"{i}-{d['format']}" for i, d in enumerate(DATAGRAMS)]
)
def test_fixture_datagram_parses_to_its_logged_event(datagram: dict[str, Any]) -> None:
    parsed = parse_datagram(bytes.fromhex(datagram["hex"]))

    assert isinstance(parsed, UserEvent | TaskEvent), parsed
    assert parsed.server == "QSPROD02"
    assert parsed.source_format is FORMATS[datagram["format"]]
    logged = _source_event(parsed)
    props = logged["properties"]
    rich = parsed.source_format is not SourceFormat.LEGACY  # tagged and XML carry everything
    if isinstance(parsed, UserEvent):
        assert parsed.event_type is COMMAND_TYPES[props["Command"]]
        assert parsed.user_directory == props.get("UserDirectory")
        assert parsed.user_id == props["UserId"]
        if rich:
            assert parsed.origin == props.get("Origin")
            assert parsed.context == props.get("Context")
            assert parsed.message == logged["message"]
    else:
        assert parsed.app_name == props["AppName"]
        assert parsed.user == (props.get("User") or props.get("UserId"))
        if rich:
            assert parsed.task_id == props["TaskId"]
            assert parsed.app_id == props["AppId"]
            assert parsed.execution_id == props["ExecutionId"]
            assert parsed.message == logged["message"]
            assert parsed.log_level == logged["level"]
            assert parsed.log_timestamp is not None
            assert parsed.log_timestamp.startswith("20")
        expected = (
            TaskEventType.TASK_ABORTED
            if "Aborting" in logged["message"]
            else TaskEventType.TASK_FAILED
        )
        assert parsed.event_type is expected


def test_every_logged_event_arrives_in_every_layout_that_matches_it() -> None:
    parsed = [parse_datagram(bytes.fromhex(d["hex"])) for d in DATAGRAMS]
    sources = [json.dumps(_source_event(p), sort_keys=True) for p in parsed]  # type: ignore[arg-type]
    assert set(sources) == {json.dumps(e, sort_keys=True) for e in LOGGED}


def test_windows_1252_names_decode_without_loss() -> None:
    legacy = [d for d in DATAGRAMS if d["encoding"] == "windows-1252"]
    raw = [bytes.fromhex(d["hex"]) for d in legacy]
    assert any("Åsa Öberg".encode("cp1252") in data for data in raw)  # really not UTF-8
    names = {getattr(parse_datagram(data), "user_id", None) for data in raw}
    tasks = {getattr(parse_datagram(data), "task_name", None) for data in raw}
    assert "Åsa Öberg" in names
    assert "Reload Lön" in tasks


def test_cdata_message_keeps_its_markup() -> None:
    cdata = next(d for d in DATAGRAMS if "CDATA" in d["text"])
    parsed = parse_datagram(bytes.fromhex(cdata["hex"]))
    assert isinstance(parsed, TaskEvent)
    assert parsed.message == "Max retries reached: <<error>> <in> <script> <line> <42> & <more>"
    assert parsed.task_name == "Reload <X>"
    assert parsed.app_name == "A&B"
