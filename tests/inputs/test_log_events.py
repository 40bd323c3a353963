"""Butler SOS's log events (UDP 9996): the fixtures field by field, `;` in messages, every
refusal, and a property test that any message survives the round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.events import LogEvent, LogLevel, LogSource, Rejected, RejectReason
from bridge.inputs.log_events import TAILS, iso_timestamp
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
    tail = ";".join(["(null)"] * len(TAILS[source]))
    event = log_event(f"{tag};{HEAD};ERROR;QS1;Some.Logger;CORP\\svc;boom;{tail}")
    assert (event.source, event.level, event.server, event.message) == (
        source,
        LogLevel.ERROR,
        "QS1",
        "boom",
    )


def test_event_types_follow_the_level() -> None:
    assert [level.event_type for level in LogLevel] == ["log_warning", "log_error", "log_fatal"]


def test_an_empty_message_and_nulls_are_none() -> None:
    event = log_event(f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;(null);(null);(null){PROXY_TAIL}")
    assert (event.message, event.windows_user, event.exception_message) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "reason", "says"),
    [
        (f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;svc;msg", RejectReason.TOO_FEW_FIELDS, "16"),
        (  # a `;` in the context shifts the result code
            f"/qseow-proxy/;{HEAD};WARN;QS1;Audit.Proxy;svc;msg;;CORP;mia;Login;401;App;/a;b",
            RejectReason.MISFIT_FIELDS,
            "result_code",
        ),
        (  # a `;` in a task name shifts the user
            f"/qseow-scheduler/;{HEAD};ERROR;QS1;System.Scheduler;svc;msg;(null);CORP;mia;"
            "CORP\\mia;Reload A;B;A;dec2a02a-1680-44ef-8dc2-e2bfb180af87;(null);(null)",
            RejectReason.MISFIT_FIELDS,
            "user",
        ),
        (  # extra `;` and an exception text: which one holds them cannot be told
            f"/qseow-repository/;{HEAD};ERROR;QS1;Service;svc;a;b;not an exception{PROXY_TAIL}",
            RejectReason.MISFIT_FIELDS,
            "exception_message",
        ),
        (  # the head shifted: no level where the level goes
            f"/qseow-proxy/;{HEAD};QS1;WARN;Audit.Proxy;svc;msg;{PROXY_TAIL}",
            RejectReason.MISFIT_FIELDS,
            "level",
        ),
        (
            f"/qseow-proxy/;x;{HEAD[3:]};WARN;QS1;Audit.Proxy;svc;msg;{PROXY_TAIL}",
            RejectReason.MISFIT_FIELDS,
            "row",
        ),
        (
            f"/qseow-proxy/;1;yesterday;now;WARN;QS1;Audit.Proxy;svc;msg;{PROXY_TAIL}",
            RejectReason.MISFIT_FIELDS,
            "time",
        ),
        (
            f"/qseow-proxy/;{HEAD};WARN;(null);Audit.Proxy;svc;msg;{PROXY_TAIL}",
            RejectReason.MISFIT_FIELDS,
            "host",
        ),
        (
            f"/qseow-proxy/;{HEAD};INFO;QS1;Audit.Proxy;svc;msg;{PROXY_TAIL}",
            RejectReason.UNKNOWN_EVENT,
            "only WARN and above",
        ),
        (
            f"/qseow-qix-perf/;{HEAD};INFO;QS1;QixPerformance.Engine.Engine;svc;1;2",
            RejectReason.UNKNOWN_FORMAT,
            "qseow-qix-perf",
        ),
    ],
)
def test_what_does_not_fit_is_refused_with_its_reason(
    text: str, reason: RejectReason, says: str
) -> None:
    rejected = refused(text)
    assert rejected.reason is reason
    assert says in rejected.detail


def test_an_exception_beside_a_semicolon_message_is_kept_when_it_reads_as_one() -> None:
    exception = "System.IO.IOException: disk"
    event = log_event(
        f"/qseow-repository/;{HEAD};ERROR;QS1;Service;svc;a;b;{exception}{PROXY_TAIL}"
    )
    assert (event.message, event.exception_message) == ("a;b", "System.IO.IOException: disk")


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("20211109T153726.028+0200", "2021-11-09T15:37:26.028+02:00"),
        ("2021-11-09T15:37:26.028-0530", "2021-11-09T15:37:26.028-05:30"),
        ("2021-11-09T15:37:26Z", "2021-11-09T15:37:26Z"),
        ("(null)", None),
        ("", None),
        ("not a time", "not a time"),
    ],
)
def test_iso_timestamp(raw: str, iso: str | None) -> None:
    assert iso_timestamp(raw) == iso


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff\u2028\u2029\x85")
    | st.sampled_from(";;;'\""),
    max_size=120,
)
_ID = st.uuids().map(str) | st.just("(null)")
_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._-]{0,30}", fullmatch=True).map(str.strip).filter(bool)


@settings(max_examples=300, deadline=None)
@given(
    message=_TEXT,
    source=st.sampled_from(list(LogSource)),
    level=st.sampled_from(["WARN", "ERROR", "FATAL"]),
    host=_NAME,
    ids=st.lists(_ID, min_size=5, max_size=5),
    names=st.lists(_NAME, min_size=4, max_size=4),
)
def test_any_message_survives_between_the_head_and_the_tail(
    message: str,
    source: LogSource,
    level: str,
    host: str,
    ids: list[str],
    names: list[str],
) -> None:
    """Fixed from the left and from the right, the message is what lies between, whatever
    `;` and quotes it holds; every other field comes back as it was sent."""
    tails = {
        LogSource.ENGINE: [ids[0], names[0], names[1], "20261104T081502.417Z", ids[1], "14.1",
                           "(null)", names[2], ids[2], ids[3]],
        LogSource.PROXY: ["(null)", names[0], names[1], names[2], "200", names[3], "/hub/"],
        LogSource.REPOSITORY: ["", names[0], names[1], names[2], "-1", names[3], "/qrs/"],
        LogSource.SCHEDULER: ["(null)", names[0], names[1], f"{names[0]}\\{names[1]}",
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
    assert isinstance(parsed, Rejected) or parsed is not None
