"""Retained state stays within 16 KiB whatever the datagrams hold (bridge.core.bounded): texts
clipped in bytes of JSON, the users preview giving way when every other field is at its longest."""

from __future__ import annotations

import orjson
import pytest

from bridge.core.bounded import (
    ELLIPSIS,
    MESSAGE_BYTES,
    STATE_PAYLOAD_BYTES,
    TEXT_BYTES,
    bounded,
    clip_text,
    json_text_bytes,
)
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
from bridge.core.payloads import encode, server_payload, server_state, site_payload
from bridge.core.retry import retry_payload
from bridge.core.state import BridgeState, ServerState, StateSettings, apply_event
from bridge.core.task_context import summary
from bridge.core.watch import watched_payload
from tests.extensions.test_discovery_log_events import WORST_CHARACTERS, longest
from tests.extensions.test_task_context import a_context

SETTINGS = StateSettings(None, 60.0, None)


@pytest.mark.parametrize("char", ["a", "é", *WORST_CHARACTERS])
@pytest.mark.parametrize("keep_end", [False, True])
def test_a_long_text_keeps_the_most_that_fits_and_says_it_was_clipped(
    char: str, keep_end: bool
) -> None:
    text = "".join(f"{char}{n % 10}" for n in range(2_000))
    clipped = clip_text(text, TEXT_BYTES, keep_end)
    assert json_text_bytes(clipped) <= TEXT_BYTES
    kept = clipped[1:] if keep_end else clipped[:-1]
    assert (clipped[0] if keep_end else clipped[-1]) == ELLIPSIS
    assert text.endswith(kept) if keep_end else text.startswith(kept)
    one_more = text[-len(kept) - 1 :] if keep_end else text[: len(kept) + 1]
    assert json_text_bytes(one_more) + json_text_bytes(ELLIPSIS) > TEXT_BYTES  # the most


@pytest.mark.parametrize("text", ["", "Reload Sales", "€" * 85, '"' * 128])
def test_a_text_that_fits_is_kept_whole(text: str) -> None:
    assert clip_text(text, TEXT_BYTES) == text


def test_bounded_clips_texts_at_every_depth_and_keeps_the_rest() -> None:
    record = {
        "message": "m" * 5_000,
        "task_name": "t" * 5_000,
        "failed": 3,
        "flag": None,
        "context": {"log_tail": "line\n" * 1_000 + "the end", "stream": "s" * 5_000, "ok": True},
    }
    kept = bounded(record)
    assert kept["message"] == "m" * (MESSAGE_BYTES - 3) + ELLIPSIS
    assert kept["task_name"] == "t" * (TEXT_BYTES - 3) + ELLIPSIS
    assert (kept["failed"], kept["flag"], kept["context"]["ok"]) == (3, None, True)
    assert kept["context"]["log_tail"].startswith(ELLIPSIS)
    assert kept["context"]["log_tail"].endswith("line\nthe end")  # a log's end is kept
    assert json_text_bytes(kept["context"]["log_tail"]) <= MESSAGE_BYTES
    assert kept["context"]["stream"] == "s" * (TEXT_BYTES - 3) + ELLIPSIS


def worst_site(char: str, users: int) -> tuple[BridgeState, ServerState]:
    """A node whose host, last failure (with its context) and last log error have every text
    at the longest a datagram (or QRS) carries, in `char`, and `users` users with long names."""
    name = "😀" if char == "\x01" else char  # a name (a host, a user) refuses control characters
    host = name * 1_024
    failure = TaskEvent(
        **longest(
            TaskEvent,
            char,
            event_type=TaskEventType.TASK_FAILED,
            server=host,
            source_format=SourceFormat.XML,
        )
    )
    state = BridgeState()
    apply_event(state, failure, 1.0, SETTINGS)
    assert state.last_failed_task is not None
    state.last_failed_task.context = summary(a_context(char, 1_024, 200))
    error = LogEvent(
        **longest(
            LogEvent,
            char,
            source=LogSource.ENGINE,
            level=LogLevel.ERROR,
            server=host,
            source_format=SourceFormat.XML,
        )
    )
    apply_event(state, error, 2.0, SETTINGS)
    for number in range(users):
        login = UserEvent(
            event_type=UserEventType.SESSION_START,
            server=host,
            source_format=SourceFormat.XML,
            user_directory="CORP",
            user_id=f"{number}{name * 60}",
        )
        apply_event(state, login, 3.0, SETTINGS)
    [server] = state.servers.values()
    return state, server


@pytest.mark.parametrize("char", ["x", *WORST_CHARACTERS])
def test_the_retained_state_stays_within_16_kib_with_every_field_at_its_longest(
    char: str,
) -> None:
    state, server = worst_site(char, users=2_000)
    before = len(encode(server_payload(server)))  # the preview at its 8 KiB and the rest
    data = server_state(server)
    assert before > STATE_PAYLOAD_BYTES >= len(data)
    payload = orjson.loads(data)
    assert payload["users_preview"], "the preview gives way, it does not vanish"
    assert payload["users_truncated"] is True
    assert payload["active_users"] == 2_000
    assert len(encode(site_payload(state))) <= STATE_PAYLOAD_BYTES
    assert state.last_failed_task is not None
    assert len(encode(retry_payload(state.last_failed_task))) < 1_024
    assert len(encode(watched_payload("Reload", state.last_failed_task))) < 1_024


def test_a_long_stack_trace_no_longer_fills_the_state() -> None:
    """What a real site sends: an engine error carrying a long SQL statement and stack, and a
    failure message of 8,192 characters: the state keeps their start, the rest stays small."""
    state = BridgeState()
    message = "Error: ODBC read failed; SQL: SELECT " + ", ".join(f"col{n}" for n in range(2_000))
    error = LogEvent(
        source=LogSource.ENGINE,
        level=LogLevel.ERROR,
        server="QSWIN01",
        source_format=SourceFormat.XML,
        message=message[:8_192],
        subsystem="System.Engine.Engine",
    )
    apply_event(state, error, 1.0, SETTINGS)
    data = server_state(state.servers["qswin01"])
    assert len(data) < 2_048
    last = orjson.loads(data)["log_events"]["last_error"]["message"]
    assert last.startswith("Error: ODBC read failed; SQL: SELECT col0, col1")
    assert last.endswith(ELLIPSIS)
