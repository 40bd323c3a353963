"""qlik2mqtt's log-event appenders (log4net XmlLayout, `<qseow-<service>:event>`): the datagrams
real log4net sent parse back field by field, every refusal has its reason, and a property test
that any event survives the round trip through what log4net sends."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
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
from bridge.inputs.fields import visible_controls
from bridge.inputs.log_event_xml import keep_carriage_returns
from bridge.inputs.parse import parse_datagram
from tests.helpers import FIXTURES
from tests.log4net_model import LogEvent as Logged
from tests.log4net_model import render_xml_layout
from tests.qlik_events import (
    ENGINE_PROPERTIES,
    PROXY_PROPERTIES,
    SCHEDULER_PROPERTIES,
    complete_expected_user,
    expected_log_event,
)

CAPTURED = [
    json.loads(line)
    for line in (FIXTURES / "log4net-log-events.jsonl").read_text(encoding="utf-8").splitlines()
]
PROPERTIES = {
    "engine": ENGINE_PROPERTIES,
    "proxy": PROXY_PROPERTIES,
    "repository": PROXY_PROPERTIES,
    "scheduler": SCHEDULER_PROPERTIES,
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def event_xml(
    prefix: str = "qseow-proxy",
    level: str = "ERROR",
    message: str = "b64:Boom",
    properties: str | None = None,
    extra: str = "",
) -> bytes:
    """A hand-written datagram of the layout; `b64:` values are encoded."""
    text = message.removeprefix("b64:")
    body = b64(text) if message.startswith("b64:") else text
    if properties is None:
        properties = f'<{prefix}:data name="log4net:HostName" value="{b64("QS1")}" />'
    return (
        f'<{prefix}:event logger="System.Proxy.Proxy" timestamp="2026-11-04T09:15:02.4170000'
        f'+01:00" level="{level}" thread="7" domain="Proxy.exe" username="CORP\\svc">'
        f"<{prefix}:message>{body}</{prefix}:message><{prefix}:properties>{properties}"
        f"</{prefix}:properties>{extra}</{prefix}:event>\r\n"
    ).encode()


LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
).replace("&lol0;", "&lol;")
"""The entity declarations of a billion laughs."""


def parsed_event(data: bytes) -> LogEvent:
    parsed = parse_datagram(data)
    assert isinstance(parsed, LogEvent), parsed
    return parsed


@pytest.mark.parametrize("fixture", CAPTURED, ids=[f["logged"]["message"][:30] for f in CAPTURED])
def test_captured_datagram_parses_to_its_intended_event_with_every_field(
    fixture: dict[str, Any],
) -> None:
    data = bytes.fromhex(fixture["hex"])
    assert data.decode("utf-8") == fixture["text"]
    assert dataclasses.asdict(parsed_event(data)) == fixture["expected"]


@pytest.mark.parametrize("fixture", CAPTURED, ids=[f["logged"]["message"][:30] for f in CAPTURED])
def test_the_model_renders_what_real_log4net_sent_byte_for_byte(fixture: dict[str, Any]) -> None:
    """The model the Hypothesis test sends through is real log4net's output, not a guess."""
    text = fixture["text"]
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', text.partition(">")[0]))
    logged = fixture["logged"]
    # log4net keeps properties in a hash table: their order, and the ones another appender of
    # the same event added (XmlLayoutSchemaLog4j's log4jmachinename…), come from the capture.
    properties = {
        name: base64.b64decode(value).decode()
        for name, value in re.findall(r'data name="([^"]*)" value="([^"]*)"', text)
    }
    assert {k: v for k, v in properties.items() if k in logged["properties"]} == logged[
        "properties"
    ]
    event = Logged(
        logged["logger"], logged["level"], logged["message"], properties, logged["exception"]
    )
    rendered = render_xml_layout(
        event,
        f"qseow-{fixture['source']}",
        fixture["expected"]["server"],
        timestamp=attributes["timestamp"],
        username=attributes["username"],
        thread=attributes["thread"],
        domain=attributes["domain"],
        newline="\n",  # Mono; CRLF on Windows
    )
    assert rendered == bytes.fromhex(fixture["hex"])


def test_captured_fixtures_cover_every_source_and_level_and_hard_text() -> None:
    events = [parsed_event(bytes.fromhex(f["hex"])) for f in CAPTURED]
    assert {e.source for e in events} == set(LogSource)
    assert {e.level.value for e in events} == {"WARN", "ERROR", "FATAL"}
    messages = "".join(e.message or "" for e in events)
    for needle in (";", '"', "'", "<", ">", "&", "\n", "€", "日本"):
        assert needle in messages, needle
    exceptions = [e.exception_message for e in events if e.exception_message]
    assert any("\r\n" in e for e in exceptions)
    assert any("<![CDATA[" in f["text"] for f in CAPTURED)  # log4net chose CDATA once


def test_the_prefix_names_the_source_in_any_case() -> None:
    assert parsed_event(event_xml("QSEOW-Repository")).source is LogSource.REPOSITORY
    assert parsed_event(event_xml("qseow-engine")).source is LogSource.ENGINE


def test_an_xml_declaration_and_leading_space_are_allowed() -> None:
    data = b'<?xml version="1.0" encoding="utf-8"?>\n  ' + event_xml()
    assert parsed_event(data).message == "Boom"


def test_carriage_returns_survive_in_text_and_in_cdata() -> None:
    exception = "<qseow-proxy:exception><![CDATA[A\r\nB]]>\r\nC\rD</qseow-proxy:exception>"
    event = parsed_event(event_xml(extra=exception))
    assert event.exception_message == "A\r\nB\r\nC\rD"
    assert keep_carriage_returns("no returns") == "no returns"


def test_only_the_fields_of_its_source_are_filled() -> None:
    properties = "".join(
        f'<qseow-proxy:data name="{k}" value="{b64(v)}" />'
        for k, v in {"log4net:HostName": "QS1", "TaskName": "T", "Command": "Login"}.items()
    )
    event = parsed_event(event_xml(properties=properties))
    assert (event.command, event.task_name) == ("Login", None)


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (event_xml(level="SOMETIMES"), RejectReason.UNKNOWN_LEVEL, "is no log level"),
        (event_xml("log4net"), RejectReason.UNKNOWN_EVENT, "not a qseow-<service> log event"),
        (event_xml("qseow-nprinting"), RejectReason.UNKNOWN_EVENT, "qseow-nprinting"),
        (event_xml(properties=""), RejectReason.NO_HOST, "without log4net:HostName"),
        (event_xml(message="Boom!"), RejectReason.BAD_XML, "the message is not base64"),
        (event_xml(message="/w=="), RejectReason.BAD_XML, "not base64 of UTF-8"),
        (
            event_xml(properties='<qseow-proxy:data name="UserId" value="mia" />'),
            RejectReason.BAD_XML,
            "property 'UserId' is not base64",
        ),
        (event_xml()[:-30], RejectReason.BAD_XML, "not well-formed"),
        (event_xml() + event_xml(), RejectReason.BAD_XML, "exactly one qseow-proxy:event"),
        (
            b'<!DOCTYPE x [<!ENTITY a "b">]><qseow-proxy:event/>',
            RejectReason.BAD_XML,
            "DOCTYPE",
        ),
        (event_xml(message="&a;"), RejectReason.BAD_XML, "not well-formed"),
        (
            event_xml(extra='<!DOCTYPE x [<!ENTITY a "b">]>'),
            RejectReason.BAD_XML,
            "not well-formed",
        ),
        (event_xml(extra=f"<!DOCTYPE lolz [{LAUGHS}]>"), RejectReason.BAD_XML, "not well-formed"),
        (
            event_xml(extra='<!ENTITY xxe SYSTEM "file:///etc/passwd">'),
            RejectReason.BAD_XML,
            "not well-formed",
        ),
    ],
)
def test_what_is_not_a_log_event_is_refused_with_its_reason(
    data: bytes, reason: RejectReason, says: str
) -> None:
    parsed = parse_datagram(data)
    assert isinstance(parsed, Rejected), parsed
    assert parsed.reason is reason
    assert says in parsed.detail


@pytest.mark.parametrize(
    "exception",
    [
        "<![CDATA[HttpRequestException: got <!DOCTYPE html><html><body>502</body></html>]]>",
        "HttpRequestException: got &lt;!DOCTYPE html&gt;&lt;html&gt;502&lt;/html&gt;",
        '<![CDATA[<!ENTITY x "y"> quoted from a config file]]>',
    ],
)
def test_an_exception_quoting_a_doctype_is_an_event(exception: str) -> None:
    """A real error whose text quotes an HTML page (a proxy's 502, say) is not an attack."""
    event = parsed_event(
        event_xml(extra=f"<qseow-proxy:exception>{exception}</qseow-proxy:exception>")
    )
    assert event.exception_message is not None
    assert "<!" in event.exception_message


def test_a_message_quoting_a_doctype_is_an_event() -> None:
    event = parsed_event(event_xml(message="b64:Bad answer: <!DOCTYPE html> <!ENTITY a 'b'>"))
    assert event.message == "Bad answer: <!DOCTYPE html> <!ENTITY a 'b'>"


def test_the_session_and_task_xml_is_still_read_as_before() -> None:
    line = json.loads((FIXTURES / "log4net-datagrams.jsonl").read_text().splitlines()[2])
    assert line["format"] == "xml"
    assert isinstance(parse_datagram(bytes.fromhex(line["hex"])), UserEvent)


_XML_CHARS = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="\ufffe\uffff",
).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)
_TEXT = st.text(_XML_CHARS, max_size=200)
_ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
_VALUE = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60)


def _cleaned(value: str | None) -> str | None:
    """As the parser cleans a field: control characters shown (U+FFFD), stripped, `(null)` and
    empty as None."""
    if value is None:
        return None
    value = visible_controls(value).strip()
    return None if value in ("", "(null)") else value


@settings(max_examples=300, deadline=None)
@given(
    service=st.sampled_from(["engine", "proxy", "repository", "scheduler"]),
    level=st.sampled_from(["WARN", "ERROR", "FATAL"]),
    logger=st.sampled_from(["System.Engine.Engine", "Service", "Audit.Proxy.X", "System"]),
    message=_ANY_TEXT,
    exception=st.none() | _TEXT,
    data=st.data(),
    upper=st.booleans(),
)
def test_any_event_survives_what_log4net_sends(
    service: str,
    level: str,
    logger: str,
    message: str,
    exception: str | None,
    data: st.DataObject,
    upper: bool,
) -> None:
    """Event → XmlLayout as log4net writes it (base64 message and properties, the exception
    escaped or in CDATA) → parse: every field as logged, whatever characters it holds."""
    names = data.draw(st.lists(st.sampled_from(list(PROPERTIES[service])), unique=True))
    properties = {name: data.draw(_VALUE) for name in names}
    logged = Logged(logger, level, message, properties, exception)
    prefix = f"qseow-{service}".upper() if upper else f"qseow-{service}"
    parsed = parse_datagram(render_xml_layout(logged, prefix, "QSPROD02"))
    assert isinstance(parsed, LogEvent), parsed
    fields = dataclasses.asdict(parsed)
    shown = {name: visible_controls(value) for name, value in properties.items()}
    expected = expected_log_event(
        service, Logged(logger, level, message, shown, exception), "QSPROD02"
    )
    expected = {name: _cleaned(v) if isinstance(v, str) else v for name, v in expected.items()}
    expected["source"], expected["level"] = service, level  # not cleaned away
    complete_expected_user(expected)  # after cleaning, as the parser sees the values
    assert fields.pop("log_timestamp") == "2026-11-04T09:15:02.417+01:00"
    assert fields.pop("windows_user") == "CORP\\qlikservice"
    assert fields == expected


@pytest.mark.parametrize(
    ("written", "level"),
    [("INFO", LogLevel.INFO), ("DEBUG", LogLevel.DEBUG), ("NOTICE", LogLevel.INFO)],
)
def test_every_level_that_arrives_in_xml_is_published(written: str, level: LogLevel) -> None:
    parsed = parse_datagram(event_xml(level=written))
    assert isinstance(parsed, LogEvent), parsed
    assert (parsed.level, parsed.event_type) == (level, f"log_{level.value.lower()}")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<qseow-engine:event", "<qseow-proxy:event ", ">", "</qseow-engine:event>", "<",
             "level=\"ERROR\"", "<qseow-engine:message>", "QQ==", "<![CDATA[", "]]>", "\r",
             "<qseow-engine:data name=\"log4net:HostName\" value=\"UTE=\"/>", "&", "&#0;", " "]
        ),
        max_size=30,
    )
)  # fmt: skip
def test_the_xml_log_parser_never_raises(parts: list[str]) -> None:
    parsed = parse_datagram("".join(parts).encode())
    assert isinstance(parsed, (Rejected, LogEvent, UserEvent, TaskEvent)), parsed


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["qseow-engine", "qseow-proxy", "QSEOW-SCHEDULER"]),
    body=st.binary(max_size=600),
)
def test_the_xml_log_parser_never_raises_on_any_bytes(prefix: str, body: bytes) -> None:
    """Any bytes after the opening of a log event: an event or a refusal, never an exception."""
    parsed = parse_datagram(f"<{prefix}:event ".encode() + body)
    assert isinstance(parsed, (Rejected, LogEvent)), parsed


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_control_characters_are_shown_in_text_and_refused_in_the_host() -> None:
    """Finding 7 of issue 23 for qlik2mqtt's appenders: base64 lets ESC, NUL and line ends
    through; the `;` lines' policy applies (U+FFFD in text, refused in the host)."""
    message, host, user = _b64("Bad \x1b[31mcolour\x00 and\ttab"), _b64("QS1"), _b64("mi\x1ba")
    text = (
        '<qseow-proxy:event logger="Audit\x7fProxy" level="ERROR" username="CORP\\svc">'
        f"<qseow-proxy:message>{message}</qseow-proxy:message>"
        "<qseow-proxy:properties>"
        f'<qseow-proxy:data name="log4net:HostName" value="{host}"/>'
        f'<qseow-proxy:data name="UserId" value="{user}"/>'
        "</qseow-proxy:properties></qseow-proxy:event>"
    )
    event = parse_datagram(text.encode())
    assert isinstance(event, LogEvent), event
    assert event.message == "Bad \ufffd[31mcolour\ufffd and\ttab"
    assert (event.user_id, event.subsystem) == ("mi\ufffda", "Audit\ufffdProxy")
    for bad in ("QS\x1b1", "QS\n1", "QS\t1"):
        refused = parse_datagram(text.replace(host, _b64(bad)).encode())
        assert isinstance(refused, Rejected)
        assert (refused.reason, "host" in refused.detail) == (RejectReason.NOT_TEXT, True)
