"""Butler SOS's log events (UDP 9996): the fixtures field by field, `;` in messages, every
refusal, and a property test that any message survives the round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    Rejected,
    RejectReason,
    TaskEvent,
    UserEvent,
)
from bridge.inputs.fields import is_null, message_text
from bridge.inputs.log_events import (
    LOG_TAGS,
    MAX_MESSAGE_PARTS,
    TAILS,
    iso_timestamp,
    looks_shifted,
)
from bridge.inputs.parse import parse_datagram

FIXTURES = [
    json.loads(line)
    for line in (Path(__file__).parent.parent / "fixtures" / "butler-sos-log-events.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
]

HEAD = "12;20261104T091502.417+0100;2026-11-04 09:15:02,417"
SCHEDULER_TAIL = (
    "(null);CORP;mia;CORP\\mia;Reload Sales;Sales;"
    "dec2a02a-1680-44ef-8dc2-e2bfb180af87;e7af59a0-c243-480d-9571-08727551a66f;"
    "4831c6a5-34f6-45bb-9d40-73a6e6992670"
)
PROXY_TAIL = ";CORP;mia;Login;401;AppAccess;/hub/"  # after the exception


def log_event(text: str) -> LogEvent:
    parsed = parse_datagram(text.encode())
    assert isinstance(parsed, LogEvent), parsed
    return parsed


def refused(text: str) -> Rejected:
    parsed = parse_datagram(text.encode())
    assert isinstance(parsed, Rejected), parsed
    return parsed


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f["note"][:40] for f in FIXTURES])
def test_fixture_parses_to_its_intended_event_with_every_field(fixture: dict[str, Any]) -> None:
    event = log_event(fixture["text"])
    fields = dataclasses.asdict(event)
    assert fields.pop("source_format") == "tagged"
    assert fields.pop("category") is None  # set by the core path's rules, not by the parser
    fields["source"], fields["level"] = event.source.value, event.level.value
    assert fields == fixture["expected"]


def test_fixtures_cover_every_source_and_level_with_semicolons_and_quotes() -> None:
    events = [log_event(f["text"]) for f in FIXTURES]
    assert {e.source for e in events} == set(LogSource)
    assert {e.level for e in events} == set(LogLevel)
    for source in LogSource:
        messages = [e.message or "" for e in events if e.source is source]
        assert any(";" in m for m in messages), source
        assert any("'" in m or '"' in m for m in messages), source


@pytest.mark.parametrize(
    ("tag", "source"),
    [
        ("/qseow-engine/", LogSource.ENGINE),
        ("/QSEOW-Proxy/", LogSource.PROXY),
        ("/qseow-repository/", LogSource.REPOSITORY),
        ("/Qseow-Scheduler/", LogSource.SCHEDULER),
    ],
)
def test_tags_ignore_case(tag: str, source: LogSource) -> None:
    nulls = ["(null)"] * len(TAILS[source])
    if source is LogSource.ENGINE:
        nulls[0] = "0"  # the engine's proxy session id is never (null): `0` for its own work
    tail = ";".join(nulls)
    event = log_event(f"{tag};{HEAD};ERROR;QS1;Some.Logger;CORP\\svc;boom;{tail}")
    assert (event.source, event.level, event.server, event.message) == (
        source,
        LogLevel.ERROR,
        "QS1",
        "boom",
    )


def test_event_types_follow_the_level() -> None:
    assert [level.event_type for level in LogLevel] == [
        "log_debug",
        "log_info",
        "log_warning",
        "log_error",
        "log_fatal",
    ]


@pytest.mark.parametrize(
    ("written", "level"),
    [("INFO", LogLevel.INFO), ("debug", LogLevel.DEBUG), ("NOTICE", LogLevel.INFO),
     ("TRACE", LogLevel.DEBUG), ("Warning", LogLevel.WARN), ("CRITICAL", LogLevel.ERROR),
     ("EMERGENCY", LogLevel.FATAL)],
)  # fmt: skip
def test_every_level_that_arrives_is_published(written: str, level: LogLevel) -> None:
    """Finding 3 of issue 23: INFO and DEBUG were refused (`unknown_event`); every log4net
    level is published, at the nearest of DEBUG, INFO, WARN, ERROR, FATAL at or below it."""
    event = log_event(
        f"/qseow-proxy/;{HEAD};{written};QS1;Audit.Proxy;D\\svc;msg;(null){PROXY_TAIL}"
    )
    assert (event.level, event.message, event.command) == (level, "msg", "Login")


def test_an_empty_message_and_nulls_are_none() -> None:
    event = log_event(f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;D\\svc;(null);(null){PROXY_TAIL}")
    assert (event.message, event.exception_message) == (None, None)


@pytest.mark.parametrize(
    ("text", "reason", "says"),
    [
        (  # not even a head
            f"/qseow-proxy/;{HEAD};WARN;QS1",
            RejectReason.TOO_FEW_FIELDS,
            "no head",
        ),
        (  # the head shifted: no level where the level goes
            f"/qseow-proxy/;{HEAD};QS1;WARN;Audit.Proxy;CORP\\svc;msg;(null){PROXY_TAIL}",
            RejectReason.UNKNOWN_LEVEL,
            "'QS1' is no log level",
        ),
        (
            f"/qseow-proxy/;{HEAD};WARN;(null);Audit.Proxy;CORP\\svc;msg;(null){PROXY_TAIL}",
            RejectReason.NO_HOST,
            "without a host",
        ),
        (
            f"/qseow-proxy/;{HEAD};WARN;QS\x1b1;Audit.Proxy;CORP\\svc;msg;(null){PROXY_TAIL}",
            RejectReason.NOT_TEXT,
            "control characters in the host",
        ),
    ],
)
def test_only_a_line_without_a_sound_head_is_refused_saying_why(
    text: str, reason: RejectReason, says: str
) -> None:
    rejected = refused(text)
    assert rejected.reason is reason
    assert says in rejected.detail


def test_at_the_layouts_field_count_every_field_is_taken_as_it_is() -> None:
    """Finding 1: no field can hold an extra `;`, so none is judged by its shape: a row and
    times that are none are null (Butler SOS: empty), a Windows user without a domain, ids
    that are not GUIDs, a user id without its directory, a result code that is a word."""
    line = (
        "/qseow-proxy/;x;yesterday;now;WARN;host1;sub1;user1;message1;Not an exception;"
        "(null);uid1;401;Denied;Origin;/context"
    )
    event = log_event(line)
    assert (event.log_row, event.log_timestamp, event.subsystem, event.windows_user) == (
        None,
        None,
        "sub1",
        "user1",
    )
    assert (event.message, event.exception_message, event.user_directory, event.user_id) == (
        "message1",
        "Not an exception",
        None,
        "uid1",
    )
    assert (event.command, event.result_code, event.origin, event.context) == (
        "401",
        "Denied",
        "Origin",
        "/context",
    )
    assert not event.fields_uncertain
    engine = log_event(  # Butler SOS's own test line: every id, time and version a word
        "/qseow-engine/;1;20211109T153726.028+0200;2021-11-09 15:37:26,028;WARN;host1;sub1;"
        "user1;message1;3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;dir1;uid1;ts1;"
        "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;v1;ts2;type1;3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;"
        "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b"
    )
    assert (engine.engine_timestamp, engine.engine_version, engine.server_started) == (
        "ts1",
        "v1",
        "ts2",
    )
    assert (engine.entry_type, engine.user, engine.fields_uncertain) == (
        "type1",
        "dir1\\uid1",
        False,
    )


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (";CORP;mia;Login;401;App;/a;b", "a `;` in the context shifts the result code"),
        ("(null);CORP;mia;CORP\\mia;Reload A;B;A;dec2a02a-1680-44ef-8dc2-e2bfb180af87;(null);"
         "(null)",
         "a `;` in a task name shifts the user"),
        ("not an exception;CORP;mia;Login;401;AppAccess;/hub/",
         "an exception text beside a `;` message: which holds the `;` cannot be told"),
        ("System.I;O.IOException: The disk is full;CORP;mia;Login;401;AppAccess;/hub/",
         "`;` inside the exception's type"),
        ("(null);(null);(null);Start;Stop;403;AppAccess;/hub/", "`;` in the command, no user"),
    ],
)  # fmt: skip
def test_a_tail_that_cannot_be_split_is_published_uncertain(tail: str, why: str) -> None:
    """Finding 1: extra `;` and a shape that disagrees. The head's fields, the rest of the line
    as it came in the message, every tail field None: an alarm, never a field in the wrong
    place."""
    tag = "/qseow-scheduler/" if "Reload A" in tail else "/qseow-proxy/"
    event = log_event(f"{tag};{HEAD};ERROR;QS1;Some.Logger;CORP\\svc;Failed; see log;{tail}")
    assert event.fields_uncertain, why
    assert (event.level, event.server, event.subsystem, event.windows_user) == (
        LogLevel.ERROR,
        "QS1",
        "Some.Logger",
        "CORP\\svc",
    )
    assert event.message == f"Failed; see log;{tail}"
    tail_fields = TAILS[LogSource.SCHEDULER if "Reload A" in tail else LogSource.PROXY]
    assert all(getattr(event, name) is None for name in (*tail_fields, "user"))


def test_the_head_is_taken_from_the_left_as_butler_sos_takes_it() -> None:
    """Butler SOS's own test line: a proxy tag on an engine layout (three extra fields), a
    logger and a Windows user of no particular shape. Head as the peer reads it; the tail
    cannot be split (a result code `type1`), so it is uncertain, never misread."""
    line = (
        "/qseow-proxy/;1;20211109T153726.028+0200;2021-11-09 15:37:26,028;WARN;host1;sub1;"
        "user1;message1;3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;dir1;uid1;ts1;"
        "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;v1;ts2;type1;3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;"
        "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b"
    )
    event = log_event(line)
    assert (event.log_row, event.level, event.server, event.subsystem, event.windows_user) == (
        1,
        LogLevel.WARN,
        "host1",
        "sub1",
        "user1",
    )
    assert event.fields_uncertain
    assert event.message is not None
    assert event.message.startswith("message1;3b3b3b3b-")
    assert (event.command, event.result_code, event.user) == (None, None, None)


def test_fewer_fields_than_the_layout_are_published_uncertain() -> None:
    event = log_event(f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;CORP\\svc;msg;(null);CORP")
    assert (event.fields_uncertain, event.message, event.user_directory) == (
        True,
        "msg;(null);CORP",
        None,
    )
    bare = log_event(f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;CORP\\svc")
    assert (bare.fields_uncertain, bare.message, bare.server) == (True, None, "QS1")


def test_an_exception_beside_a_semicolon_message_is_kept_when_it_reads_as_one() -> None:
    exception = "System.IO.IOException: disk"
    event = log_event(
        f"/qseow-repository/;{HEAD};ERROR;QS1;Service;CORP\\svc;a;b;{exception}{PROXY_TAIL}"
    )
    assert (event.message, event.exception_message) == ("a;b", "System.IO.IOException: disk")
    assert not event.fields_uncertain


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("20211109T153726.028+0200", "2021-11-09T15:37:26.028+02:00"),
        ("2021-11-09T15:37:26.028-0530", "2021-11-09T15:37:26.028-05:30"),
        ("2021-11-09T15:37:26Z", "2021-11-09T15:37:26Z"),
        ("2026-11-04T09:15:02.4179999+01:00", "2026-11-04T09:15:02.417+01:00"),
        ("2026-11-04T09:15:02.5+01:00", "2026-11-04T09:15:02.500+01:00"),
        ("(null)", None),
        ("", None),
        ("not a time", "not a time"),
    ],
)
def test_iso_timestamp(raw: str, iso: str | None) -> None:
    assert iso_timestamp(raw) == iso


def test_the_reviewed_misassignments_are_published_uncertain() -> None:
    """Three lines that once parsed with their fields in the wrong places."""
    engine = log_event(  # `;` in the user id: the directory would land in the proxy session id
        f"/qseow-engine/;{HEAD};ERROR;QS1;System.Engine.Engine;CORP\\qlikservice;Out of memory;"
        "0;CORP;jo;hn;20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;14.129.5.0;"
        "20261101T060000.000Z;Error;(null);(null)"
    )
    proxy = log_event(  # `;` in the command, no user: `Start` would be the user id
        f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy.Proxy;CORP\\qlikservice;Session refused;"
        "(null);(null);(null);Start;Stop;403;AppAccess;/hub/"
    )
    scheduler = log_event(  # `;` in the app name: the task name would be the user
        f"/qseow-scheduler/;{HEAD};ERROR;QS1;System.Scheduler;CORP\\qlikservice;Reload failed;"
        "(null);(null);(null);(null);Reload Sales/Finance;Sales;Q1;"
        "dec2a02a-1680-44ef-8dc2-e2bfb180af87;e7af59a0-c243-480d-9571-08727551a66f;"
        "4831c6a5-34f6-45bb-9d40-73a6e6992670"
    )
    for event in (engine, proxy, scheduler):
        assert event.fields_uncertain
        assert (event.proxy_session_id, event.user_id, event.user, event.task_name) == ((None,) * 4)
    assert engine.message is not None
    assert engine.message.startswith("Out of memory;0;CORP;jo;hn;")


@pytest.mark.parametrize(
    ("source", "last"),
    [
        (LogSource.PROXY, "(null)"),
        (LogSource.REPOSITORY, " "),
        (LogSource.SCHEDULER, "System.Net.WebException: boom"),
        (LogSource.SCHEDULER, "System.Net."),
        (LogSource.ENGINE, "0"),
        (LogSource.ENGINE, "3f6b1c8e-2a41-4d1f-9c3e-7b52a0d9e611"),
    ],
)
def test_a_message_ending_like_a_shifted_first_tail_field_is_uncertain(
    source: LogSource, last: str
) -> None:
    """When the message absorbed parts, a last part that reads as the source's first tail
    field (what a `;` further right pushes into the message) makes the split uncertain."""
    assert looks_shifted(source, last)
    tail = _TAILS_OK[source]
    text = f"/qseow-{source.value}/;{HEAD};ERROR;QS1;Some.Logger;CORP\\svc;Failed;{last};{tail}"
    event = log_event(text)
    assert (event.fields_uncertain, event.message) == (True, f"Failed;{last};{tail}".strip())
    assert not log_event(text.replace(f";{last};", ";")).fields_uncertain  # without the part


_TAILS_OK = {
    LogSource.ENGINE: "0;(null);(null);20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;"
    "14.129.5.0;20261101T060000.000Z;Error;(null);(null)",
    LogSource.PROXY: "(null);CORP;mia;Login;401;AppAccess;/hub/",
    LogSource.REPOSITORY: "(null);CORP;mia;Login;401;AppAccess;/hub/",
    LogSource.SCHEDULER: "(null);CORP;mia;(null);Reload A;A;(null);(null);(null)",
}


def test_a_message_of_too_many_parts_is_uncertain() -> None:
    tail = _TAILS_OK[LogSource.PROXY]
    fits = ";".join(["a"] * MAX_MESSAGE_PARTS)
    head = f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;CORP\\svc"
    kept = log_event(f"{head};{fits};{tail}")
    assert (kept.message, kept.fields_uncertain, kept.command) == (fits, False, "Login")
    many = log_event(f"{head};a;{fits};{tail}")
    assert (many.fields_uncertain, many.command, many.message) == (True, None, f"a;{fits};{tail}")


@pytest.mark.parametrize(
    "message",
    [
        "Script error: LOAD * FROM [lib://Data/x.qvd];",
        "Script error: a;;b",
        "Script error: ends in two;;",
        "(null) came back;(null)",
    ],
)
def test_an_engine_message_ending_in_a_semicolon_or_null_is_text(message: str) -> None:
    """With a proxy session id there, a message ending in `;` cannot be a shifted one."""
    tail = _TAILS_OK[LogSource.ENGINE]
    text = f"/qseow-engine/;{HEAD};ERROR;QS1;System.Engine.Engine;CORP\\svc;{message};{tail}"
    event = log_event(text)
    assert (event.message, event.proxy_session_id, event.app_id) == (message, "0", None)
    assert not event.fields_uncertain


@pytest.mark.parametrize("session", ["(null)", ""])
def test_an_engine_line_without_a_proxy_session_id_splits_unless_its_message_ends_in_one(
    session: str,
) -> None:
    """Qlik leaves the engine's proxy session id unfilled at times (finding 1): with `;` in the
    message the tail still splits, unless the message ends in `;`, which could be an empty
    proxy session id pushed left."""
    tail = _TAILS_OK[LogSource.ENGINE].replace("0;", f"{session};", 1)
    head = f"/qseow-engine/;{HEAD};ERROR;QS1;System.Engine.Engine;CORP\\svc"
    split = log_event(f"{head};Script error: a;b;{tail}")
    assert (split.fields_uncertain, split.message, split.proxy_session_id) == (
        False,
        "Script error: a;b",
        None,
    )
    assert split.engine_version == "14.129.5.0"
    ends = log_event(f"{head};Script error: LOAD * FROM x.qvd;;{tail}")
    assert (ends.fields_uncertain, ends.engine_version) == (True, None)


def test_a_user_directory_without_a_user_id_is_kept() -> None:
    proxy = f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;CORP\\svc;a;b;(null);INTERNAL;(null);"
    event = log_event(proxy + "Login;401;AppAccess;/hub/")
    assert (event.message, event.user_directory, event.user_id) == ("a;b", "INTERNAL", None)


def test_a_semicolon_after_a_dot_of_the_exception_type_is_not_a_message_part() -> None:
    head = f"/qseow-proxy/;{HEAD};ERROR;QS1;Audit.Proxy;CORP\\svc;Disk full;"
    kept = log_event(f"{head}System.IO.IOException: The disk is full{PROXY_TAIL}")
    assert kept.exception_message == "System.IO.IOException: The disk is full"
    spaced = log_event(f"{head[:-1]}; see log;System.IO.IOException: x{PROXY_TAIL}")
    assert (spaced.message, spaced.fields_uncertain) == ("Disk full; see log", False)


def test_a_control_character_is_shown_in_every_field_but_the_host() -> None:
    """An ESC quoted in a message costs one character, not the whole warning."""
    head = f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;CORP\\svc;"
    event = log_event(f"{head}Bad \x1b[31mcolour\x00;here\x07;(null){PROXY_TAIL}")
    assert event.message == "Bad \ufffd[31mcolour\ufffd;here\ufffd"
    assert log_event(f"{head}tab\tand\r\nlines;(null){PROXY_TAIL}").message == "tab\tand\r\nlines"
    outside = log_event(f"{head}msg;(null){PROXY_TAIL}\x1b")
    assert outside.context == "/hub/\ufffd"
    user = parse_datagram(b"/proxy-session/;QS1;Start session;CORP;mia;A;/;m\x1b")
    assert isinstance(user, Rejected)
    assert user.reason is RejectReason.NOT_TEXT


@pytest.mark.parametrize("control", ["\x1b", "\x7f", "\x85", "\x9b"])
def test_a_host_with_a_control_character_is_refused_as_a_session_line_s_is(control: str) -> None:
    """One policy for a name: C1 too (a CSI, U+009B, is a terminal escape in a topic level and
    a Home Assistant device name), in a log event as in a session line."""
    host = f"QS{control}PROD02"
    logged = parse_datagram(
        f"/qseow-engine/;{HEAD};ERROR;{host};System.Engine;CORP\\svc;m".encode()
    )
    session = parse_datagram(f"/proxy-session/;{host};Start session;CORP;mia;A;/;m".encode())
    assert isinstance(logged, Rejected)
    assert isinstance(session, Rejected)
    assert logged.reason is session.reason is RejectReason.NOT_TEXT


def test_the_scheduler_user_is_taken_as_it_came_at_the_layouts_count() -> None:
    ids = ";(null);(null);(null)"
    both = f"/qseow-scheduler/;{HEAD};ERROR;QS1;System.Scheduler;CORP\\svc;msg;(null);CORP;mia;"
    assert log_event(f"{both}corp\\MIA;Reload A;A{ids}").user == "corp\\MIA"
    assert log_event(f"{both}CORP\\ann;Reload A;A{ids}").user == "CORP\\ann"
    shifted = log_event(f"{both}CORP\\ann;Reload;A;A{ids}")  # disagreeing beside an extra `;`
    assert (shifted.fields_uncertain, shifted.user) == (True, None)


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff\u2028\u2029\x85")
    | st.sampled_from(";;;'\""),
    max_size=120,
)
_GUID = st.uuids().map(str)
_ID = _GUID | st.just("(null)")
_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._-]{0,30}", fullmatch=True).map(str.strip).filter(bool)
_DIR = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,14}", fullmatch=True)
"""A user directory as Qlik names them: no spaces."""


def _unambiguous(message: str, source: LogSource) -> bool:
    """Whether a message can come back whole: not one whose last `;`-part reads as a shifted
    first tail field (those are refused; see the test above)."""
    return ";" not in message or not looks_shifted(source, message.rsplit(";", 1)[1])


@settings(max_examples=300, deadline=None)
@given(
    message=_TEXT,
    source=st.sampled_from(list(LogSource)),
    level=st.sampled_from(["WARN", "ERROR", "FATAL"]),
    host=_NAME,
    ids=st.lists(_ID, min_size=5, max_size=5),
    proxy_session=_GUID | st.just("0"),
    directory=_DIR,
    names=st.lists(_NAME, min_size=4, max_size=4),
)
def test_any_message_survives_between_the_head_and_the_tail(
    message: str,
    source: LogSource,
    level: str,
    host: str,
    ids: list[str],
    proxy_session: str,
    directory: str,
    names: list[str],
) -> None:
    """Fixed from the left and from the right, the message is what lies between, whatever
    `;` and quotes it holds; every other field comes back as it was sent."""
    assume(_unambiguous(message, source))
    tails = {
        LogSource.ENGINE: [proxy_session, directory, names[1], "20261104T081502.417Z", ids[1],
                           "14.1", "(null)", names[2], ids[2], ids[3]],
        LogSource.PROXY: ["(null)", directory, names[1], names[2], "200", names[3], "/hub/"],
        LogSource.REPOSITORY: ["", directory, names[1], names[2], "-1", names[3], "/qrs/"],
        LogSource.SCHEDULER: ["(null)", directory, names[1], f"{directory}\\{names[1]}",
                              names[2], names[3], ids[0], ids[1], ids[2]],
    }  # fmt: skip
    tail = tails[source]
    text = ";".join([f"/qseow-{source.value}/", HEAD, level, host, "Some.Logger", "D\\svc",
                     message, *tail])  # fmt: skip
    event = log_event(text)
    expected_message = message.strip() or None
    assert event.message == expected_message
    assert (event.source, event.level.value, event.server) == (source, level, host)
    for name, value in zip(TAILS[source], tail, strict=True):
        assert getattr(event, name) == (None if value in ("", "(null)") else value), name


_NULL = st.sampled_from(["(null)", ""])
_EXCEPTION = _NULL | st.sampled_from(
    [
        "System.Net.WebException: The remote server returned an error: (503) Server Unavailable.",
        "System.IO.IOException: The disk is full",
        "Qlik.Sense.Common.Exceptions.TaskFailedException",
    ]
)
_TASK = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._/'€-]{0,30}", fullmatch=True).map(str.strip)
_HEAD_NAMES = ("row", "time", "local time", "level", "host", "logger", "windows user")


@st.composite
def _user_pair(draw: st.DrawFn) -> tuple[str, str]:
    return draw(
        st.tuples(_DIR, _NAME) | st.tuples(_DIR, st.just("(null)")) | st.just(("(null)", "(null)"))
    )


@st.composite
def _tail(draw: st.DrawFn, source: LogSource) -> list[str]:
    """A tail as a Qlik Sense node logs it: ids as GUIDs, `(null)` where a property is
    absent, a user directory and id together or neither."""
    directory, user_id = draw(_user_pair())
    if source is LogSource.ENGINE:
        return [draw(_GUID | st.just("0") | _NULL), directory, user_id, "20261104T081509.001Z",
                draw(_GUID), draw(st.sampled_from(["14.129.5.0", "12.1306.4.0"])),
                "20261101T060000.000+0100", draw(st.sampled_from(["Session", "Error", "(null)"])),
                draw(_ID), draw(_ID)]  # fmt: skip
    if source is LogSource.SCHEDULER:
        user = f"{directory}\\{user_id}" if "(null)" not in (directory, user_id) else "(null)"
        directory, user_id, user = draw(
            st.sampled_from([(directory, user_id, user), (directory, user_id, "(null)"),
                             ("(null)", "(null)", user)])
        )  # fmt: skip
        return [draw(_EXCEPTION), directory, user_id, user, draw(_TASK | _NULL),
                draw(_TASK | _NULL), draw(_ID), draw(_ID), draw(_ID)]  # fmt: skip
    return [draw(_EXCEPTION), directory, user_id, draw(_NAME | _NULL),
            draw(st.integers(-1, 599).map(str) | _NULL), draw(_NAME | _NULL),
            draw(st.sampled_from(["/hub/", "/qrs/about", "/qps/status", "(null)"]))]  # fmt: skip


def _expected(source: LogSource, head: list[str], message: str, tail: list[str]) -> dict[str, Any]:
    """The event a line of these fields means, field by field (`None` for absent ones)."""

    def value(raw: str) -> str | None:
        return None if raw.strip() in ("", "(null)") else raw.strip()

    row, time, _local, level, host, logger, windows_user = head
    fields: dict[str, Any] = {
        "level": level,
        "server": host,
        "log_row": int(row) if row.isdigit() else row,
        "log_timestamp": iso_timestamp(time),
        "subsystem": logger,
        "windows_user": windows_user,
        "message": value(message),
    }
    fields |= {name: value(raw) for name, raw in zip(TAILS[source], tail, strict=True)}
    if source is LogSource.SCHEDULER and fields["user"] is None and fields["user_id"]:
        fields["user"] = f"{fields['user_directory']}\\{fields['user_id']}"
    if source is LogSource.SCHEDULER and fields["user"] is not None and not fields["user_id"]:
        fields["user_directory"], _, fields["user_id"] = fields["user"].partition("\\")
    return fields


@settings(max_examples=500, deadline=None)
@given(data=st.data(), source=st.sampled_from(list(LogSource)), message=_TEXT)
def test_a_semicolon_in_any_other_field_is_never_misassigned(
    data: st.DataObject, source: LogSource, message: str
) -> None:
    """A `;` inserted anywhere in any field but the message either gets the line refused for
    its head, or published uncertain (the head's fields as intended, the rest in the message,
    every tail field None), or leaves every field as intended — never in the wrong place. Not
    in the host (a DNS name never holds one), the logger (nor does a .NET logger name) or the
    Windows user (Windows forbids `;` in account names): a `;` there would shift the head
    unseen. (Nor one in front of the
    engine's proxy session id, which is the line of a message ending in `;`.)"""
    assume(_unambiguous(message, source))
    head = ["812", "20261104T091502.417+0100", "2026-11-04 09:15:02,417",
            data.draw(st.sampled_from(["WARN", "ERROR", "FATAL"])),
            data.draw(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,14}", fullmatch=True)),
            data.draw(st.sampled_from(["System.Engine.Engine", "Audit.Proxy.Proxy.Core",
                                       "Service.Repository.Repository.Core.Status.Worker"])),
            "CORP\\qlikservice"]  # fmt: skip
    tail = data.draw(_tail(source))
    fields = [*head, message, *tail]
    event = log_event(";".join([f"/qseow-{source.value}/", *fields]))
    parsed_fields = dataclasses.asdict(event)
    parsed_fields["level"] = event.level.value
    intended = _expected(source, head, message, tail)
    assert {k: parsed_fields[k] for k in intended} == intended  # the line as it was: whole
    assert not event.fields_uncertain

    which = data.draw(st.sampled_from([i for i in range(len(fields)) if i not in (4, 5, 6, 7)]))
    at = data.draw(st.integers(0, len(fields[which])))
    # `;` in front of a proxy session id is the line of a message ending in `;` (`LOAD … FROM
    # x.qvd;`), which is text: a GUID, `0` or a hash never holds a `;`.
    assume(not (source is LogSource.ENGINE and which == 8 and at == 0 and not is_null(tail[0])))
    fields[which] = f"{fields[which][:at]};{fields[which][at:]}"
    parsed = parse_datagram(";".join([f"/qseow-{source.value}/", *fields]).encode())
    name = (_HEAD_NAMES + ("message",) + TAILS[source])[which]
    if isinstance(parsed, Rejected):
        assert parsed.reason in (RejectReason.UNKNOWN_LEVEL, RejectReason.NO_HOST), parsed
        assert which < 4, f"`;` in {name} refused: {parsed}"  # only a shifted level or host
        return
    assert isinstance(parsed, LogEvent), parsed
    parsed_fields = dataclasses.asdict(parsed)
    parsed_fields["level"] = parsed.level.value
    intended = _expected(source, fields[:7], fields[7], fields[8:])
    if not parsed.fields_uncertain:
        assert {k: parsed_fields[k] for k in intended} == intended, f"`;` in {name}"
        return
    for key in ("level", "server", "log_row", "log_timestamp"):
        assert parsed_fields[key] == intended[key], f"`;` in {name}: {key}"
    assert all(parsed_fields[key] is None for key in (*TAILS[source], "user")), name
    assert (parsed.subsystem, parsed.windows_user) == (fields[5], fields[6])
    assert parsed.message == message_text(fields[7:])


@settings(max_examples=300, deadline=None)
@given(
    level=st.sampled_from(["WARN", "ERROR", "FATAL", "warn", "Error", "INFO", "debug"]),
    host=_NAME,
    rest=st.lists(st.text(max_size=40), min_size=1, max_size=30),
    row=st.text(max_size=8),
    times=st.lists(st.text(max_size=30), min_size=2, max_size=2),
    source=st.sampled_from(list(LogSource)),
)
def test_a_sound_head_is_always_published(
    level: str, host: str, rest: list[str], row: str, times: list[str], source: LogSource
) -> None:
    """Whatever follows it (any count of fields, any text, `;` and control characters), a
    line whose level is a level and whose host is a host is published: level and host as
    sent."""
    row, *times = (value.replace(";", ",") for value in (row, *times))
    text = ";".join([f"/qseow-{source.value}/", row, *times, level, host, *rest])
    parsed = parse_datagram(text.encode("utf-8", "surrogatepass"))
    if "\ufeff" in text or any(ord(c) >= 0xD800 and ord(c) < 0xE000 for c in text):
        return  # not UTF-8 text (refused as such) or a byte-order mark the decoder strips
    assert isinstance(parsed, LogEvent), parsed
    assert (parsed.source, parsed.level.value, parsed.server) == (source, level.upper(), host)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["/qseow-engine/", "/qseow-scheduler/", "/qseow-proxy/", "QS1", "(null)", "", "ERROR",
             "20261104T091502.417+0100", "12", "CORP\\mia", "x;y", "0", "System.X.YException: z"]
        ),
        max_size=30,
    )
)  # fmt: skip
def test_the_log_parser_never_raises(fields: list[str]) -> None:
    parsed = parse_datagram(";".join(fields).encode())
    assert isinstance(parsed, (Rejected, LogEvent, UserEvent, TaskEvent)), parsed
    if isinstance(parsed, LogEvent):  # a log event only from a log-event tag
        assert fields[0].strip("/").lower() in LOG_TAGS


@settings(max_examples=500, deadline=None)
@given(
    tag=st.sampled_from([*(f"/{tag}/" for tag in LOG_TAGS), "/qseow-qix-perf/"]),
    body=st.binary(max_size=600),
)
def test_the_log_parser_never_raises_on_any_bytes(tag: str, body: bytes) -> None:
    """Any bytes after a log-event tag: an event or a refusal, never an exception."""
    parsed = parse_datagram(tag.encode() + b";" + body)
    assert parsed is not None
