"""Parser behaviour beyond the captured fixtures: every tag, the pitfalls, every reject reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.events import (
    Rejected,
    RejectReason,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.inputs.fields import MAX_FIELD_CHARS
from bridge.inputs.parse import log_date, parse_datagram
from tests.helpers import log4j_xml

TASK_TAIL = "QS1;Reload Sales;Sales;CORP\\mia;tid-1;aid-1;2026-05-06 14:23:45,123;ERROR;eid-1;boom"


def user(data: bytes | str) -> UserEvent:
    parsed = parse_datagram(data.encode() if isinstance(data, str) else data)
    assert isinstance(parsed, UserEvent), parsed
    return parsed


def task(data: bytes | str) -> TaskEvent:
    parsed = parse_datagram(data.encode() if isinstance(data, str) else data)
    assert isinstance(parsed, TaskEvent), parsed
    return parsed


def rejected(data: bytes | str) -> Rejected:
    parsed = parse_datagram(data.encode() if isinstance(data, str) else data)
    assert isinstance(parsed, Rejected), parsed
    return parsed


@pytest.mark.parametrize(
    "tag",
    ["/proxy-session/", "/proxy-connection/", "/qseow-proxy-session/", "/QSEOW-PROXY-CONNECTION/"],
)
def test_every_user_activity_tag(tag: str) -> None:
    event = user(f"{tag};QS1;Open connection;CORP;mia;AppAccess;/app/1;Opened\r\n")
    assert event.event_type is UserEventType.CONNECTION_OPEN
    assert (event.server, event.user_directory, event.user_id) == ("QS1", "CORP", "mia")
    assert (event.origin, event.context, event.message) == ("AppAccess", "/app/1", "Opened")
    assert event.source_format is SourceFormat.TAGGED


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("/scheduler-reload-failed/", TaskEventType.TASK_FAILED),
        ("/scheduler-task-failed/", TaskEventType.TASK_FAILED),
        ("/scheduler-reloadtask-failed/", TaskEventType.TASK_FAILED),
        ("/scheduler-reload-aborted/", TaskEventType.TASK_ABORTED),
        ("/scheduler-task-aborted/", TaskEventType.TASK_ABORTED),
        ("/scheduler-reloadtask-success/", TaskEventType.TASK_SUCCEEDED),
        ("/scheduler-task-success/", TaskEventType.TASK_SUCCEEDED),
        ("/scheduler-task-success//", TaskEventType.TASK_SUCCEEDED),  # Butler's own typo
        ("/Scheduler-Distribute/", TaskEventType.DISTRIBUTE_FINISHED),
    ],
)
def test_every_scheduler_tag(tag: str, expected: TaskEventType) -> None:
    event = task(f"{tag};{TASK_TAIL}")
    assert event.event_type is expected
    assert (event.task_name, event.app_name, event.user) == ("Reload Sales", "Sales", "CORP\\mia")
    assert (event.task_id, event.app_id, event.execution_id) == ("tid-1", "aid-1", "eid-1")
    assert event.log_timestamp == "2026-05-06T14:23:45.123"
    assert (event.log_level, event.message) == ("ERROR", "boom")


def test_legacy_ten_field_task_is_a_failure() -> None:
    event = task(TASK_TAIL)
    assert event.event_type is TaskEventType.TASK_FAILED
    assert event.source_format is SourceFormat.LEGACY
    assert (event.task_id, event.execution_id, event.message) == ("tid-1", "eid-1", "boom")


def test_a_byte_order_mark_is_ignored() -> None:
    assert user("\ufeffQS1;Start session;CORP;mia".encode()).user_id == "mia"
    xml = xml_event(TASK_LOGGER, "ERROR", "Max retries reached", TaskName="T")
    assert task(b"\xef\xbb\xbf" + xml).task_name == "T"


def test_legacy_login_and_crlf() -> None:
    event = user("QS1;Start session;CORP;mia\r\n")
    assert event.event_type is UserEventType.SESSION_START
    assert (event.user_directory, event.user_id) == ("CORP", "mia")


def test_semicolons_in_names_that_cannot_be_told_apart_leave_them_empty() -> None:
    line = (
        "/scheduler-task-failed/;QS1;Reload; Budget;Budget;CORP\\mia;tid;aid;"
        "2026-05-06 14:23:45.5;ERROR;eid;Error: a;b;c"
    )
    event = task(line)
    # Task "Reload; Budget" of app "Budget", or task "Reload" of app " Budget;Budget": no guess
    assert (event.task_name, event.app_name) == (None, None)
    assert (event.task_id, event.app_id, event.execution_id) == ("tid", "aid", "eid")
    assert event.message == "Error: a;b;c"
    assert event.log_timestamp == "2026-05-06T14:23:45.5"


def test_app_name_with_semicolon_found_by_qlik_default_task_name() -> None:
    line = (
        "/scheduler-task-failed/;QS1;Reload task of A;B;A;B;CORP\\mia;tid;aid;"
        "2026-05-06 14:23:45,1;ERROR;eid;boom"
    )
    assert (task(line).task_name, task(line).app_name) == ("Reload task of A;B", "A;B")


def test_unparsable_log_date_is_kept_raw_not_rejected() -> None:
    line = "/scheduler-task-failed/;QS1;T;A;U;tid;aid;06/05/2026 14:23;ERROR;eid;boom"
    assert task(line).log_timestamp == "06/05/2026 14:23"


def test_engine_reload_failed() -> None:
    event = task(
        "/engine-reload-failed/;QS1;aid-9;sess-1;CORP;mia;2026-05-06 14:23:45,123;ERROR;"
        "Reload failed; syntax error"
    )
    assert event.event_type is TaskEventType.ENGINE_RELOAD_FAILED
    assert (event.app_id, event.session_id, event.user) == ("aid-9", "sess-1", "CORP\\mia")
    assert event.message == "Reload failed; syntax error"


def test_null_fields_become_none() -> None:
    event = user("/proxy-session/;QS1;Start session;(null);svc;(null);(null);(null)")
    assert (event.user_directory, event.origin, event.context, event.message) == (
        None,
        None,
        None,
        None,
    )


def xml_event(logger: str, level: str, message: str, **props: str) -> bytes:
    return log4j_xml(logger, level, message, host="QS1", **props)


TASK_LOGGER = "System.Scheduler.Scheduler.Master.Task.TaskSession"


@pytest.mark.parametrize(
    ("logger", "level", "message", "expected"),
    [
        (TASK_LOGGER, "INFO", "Execution State Change to FinishedSuccess", "task_succeeded"),
        (TASK_LOGGER, "ERROR", "Failed to start session", "task_failed"),
        (TASK_LOGGER, "WARN", "Could not reserve an executor for task", "task_failed"),
        (
            "System.Scheduler.Scheduler.Slave.Tasks.ReloadTask",
            "INFO",
            "Exiting execute of Distribute task request.",
            "distribute_finished",
        ),
        ("System.Engine.Engine", "ERROR", "Reload failed: script error", "engine_reload_failed"),
    ],
)
def test_xml_task_events_are_classified(
    logger: str, level: str, message: str, expected: str
) -> None:
    event = task(xml_event(logger, level, message, TaskName="T;1 €", TaskId="t"))
    assert event.event_type.value == expected
    assert event.source_format is SourceFormat.XML
    assert event.log_timestamp == "2026-11-25T00:06:31.804Z"


def test_xml_keeps_semicolons_and_any_character() -> None:
    event = task(xml_event(TASK_LOGGER, "ERROR", "Max retries reached", TaskName="Reload; €; & ✓"))
    assert event.task_name == "Reload; €; & ✓"


def test_xml_event_we_do_not_track_is_an_unknown_event() -> None:
    result = rejected(xml_event("AuditActivity.Proxy", "INFO", "Something else"))
    assert result.reason is RejectReason.UNKNOWN_EVENT


def test_oversized_fields_are_capped() -> None:
    event = user("QS1;Start session;CORP;" + "x" * 50_000)
    assert event.user_id is not None
    assert len(event.user_id) == MAX_FIELD_CHARS


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", RejectReason.EMPTY),
        (b"\r\n", RejectReason.EMPTY),
        (b"\x81\x8d\x8f\x90\x9d", RejectReason.NOT_TEXT),  # undefined in windows-1252
        (b"QS1;Start\x00 session;CORP;mia", RejectReason.NOT_TEXT),
        (b"hello world", RejectReason.UNKNOWN_FORMAT),
        (b"/no-such-tag/;QS1;x;y;z", RejectReason.UNKNOWN_FORMAT),
        (b"QS1;Start session", RejectReason.TOO_FEW_FIELDS),
        (b"/proxy-session/;QS1;Start session", RejectReason.TOO_FEW_FIELDS),
        (b"/scheduler-task-failed/;QS1;T;A", RejectReason.TOO_FEW_FIELDS),
        (b"/engine-reload-failed/;QS1;aid", RejectReason.TOO_FEW_FIELDS),
        (b"/proxy-session/;QS1;Jump;CORP;mia", RejectReason.UNKNOWN_EVENT),
        (b"<log4j:event><log4j:message>cut", RejectReason.BAD_XML),
        (b"<a/><b/>", RejectReason.BAD_XML),
    ],
)
def test_reject_reasons(data: bytes, reason: RejectReason) -> None:
    assert rejected(data).reason is reason


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            '<log4j:event logger="x" <</log4j:event>',
            "not well-formed (invalid token) at line 1, column 25",
        ),
        (
            '<log4j:event logger="x"><a></log4j:event>',
            "not well-formed: mismatched tag at line 1, column 30",
        ),
        (
            '<?xml version="1.0"?><log4j:event a="x" <',
            "not well-formed (invalid token) at line 1, column 41",
        ),
        (
            "<log4j:event>\n<x y=1/></log4j:event>",
            "not well-formed (invalid token) at line 2, column 6",
        ),
    ],
)
def test_bad_xml_says_what_and_where_once(data: str, detail: str) -> None:
    """The reason once (not `not well-formed: not well-formed …`), at the place in the datagram
    as sent (not in the wrapper the parser sees)."""
    assert rejected(data).detail == detail


def test_too_large() -> None:
    assert parse_datagram(b"x" * 2000, max_bytes=1024) == Rejected(
        reason=RejectReason.TOO_LARGE, detail="2000 bytes > 1024"
    )


def test_a_64_kib_xml_datagram_parses() -> None:
    big = xml_event(TASK_LOGGER, "ERROR", "Max retries reached " + "e" * 65_000, TaskName="T")
    event = task(big)
    assert event.message is not None
    assert event.message.startswith("Max retries reached")


@pytest.mark.parametrize(
    "bomb",
    [
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<log4j:event><log4j:message>&lol2;</log4j:message></log4j:event>",
        '<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1/x.dtd"><x/>',
        "<log4j:event><log4j:message>&xxe;</log4j:message></log4j:event>",
    ],
)
def test_hostile_xml_is_refused_not_expanded(bomb: str) -> None:
    assert rejected(bomb).reason is RejectReason.BAD_XML


def test_a_log4j_event_quoting_a_doctype_is_an_event() -> None:
    """Only a DOCTYPE heading the datagram is refused by name; one quoted in a message (CDATA or
    escaped) is text, and one inside the event is not well-formed."""
    for quoted in ("<![CDATA[got <!DOCTYPE html> back]]>", "got &lt;!DOCTYPE html&gt; back"):
        data = (
            f'<log4j:event logger="{TASK_LOGGER}" level="ERROR" timestamp="1">'
            f"<log4j:message>Max retries reached: {quoted}</log4j:message><log4j:properties>"
            '<log4j:data name="log4jmachinename" value="QS1"/>'
            '<log4j:data name="TaskName" value="T"/></log4j:properties></log4j:event>'
        )
        assert task(data).message == "Max retries reached: got <!DOCTYPE html> back"
    inside = '<log4j:event><!DOCTYPE x [<!ENTITY a "b">]><log4j:message>&a;</log4j:message>'
    assert "not well-formed" in rejected(inside + "</log4j:event>").detail
    assert "DOCTYPE" in rejected('<?xml version="1.0"?>\n<!DOCTYPE x><x/>').detail


def test_log_date_forms() -> None:
    assert log_date("2026-05-06 14:23:45,123") == "2026-05-06T14:23:45.123"
    assert log_date("2026-05-06 14:23:45.123") == "2026-05-06T14:23:45.123"
    assert log_date("2026-05-06 14:23:45") == "2026-05-06T14:23:45"
    assert log_date("(null)") is None


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=2048))
def test_parser_never_raises_on_bytes(data: bytes) -> None:
    assert isinstance(parse_datagram(data), UserEvent | TaskEvent | Rejected)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "/proxy-session/",
                "/scheduler-task-failed/",
                "/engine-reload-failed/",
                "QS1",
                "Start session",
                "(null)",
                "2026-05-06 14:23:45,123",
                "ERROR",
                "",
                "<",
                "x;y",
            ]
        )
        | st.text(max_size=20),
        max_size=16,
    )
)
def test_parser_never_raises_on_field_soup(fields: list[str]) -> None:
    data = ";".join(fields).encode("utf-8", errors="surrogatepass")
    assert isinstance(parse_datagram(data), UserEvent | TaskEvent | Rejected)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_xml_parser_never_raises(inner: str) -> None:
    data = f'<log4j:event logger="x" level="ERROR">{inner}</log4j:event>'.encode(
        "utf-8", errors="surrogatepass"
    )
    assert isinstance(parse_datagram(data), UserEvent | TaskEvent | Rejected)
