"""One text policy for control characters in every format (issue 23, finding 7): shown as
U+FFFD in free text, refused where a name cannot hold them, in log4j XML as in `;` lines."""

from __future__ import annotations

import base64

import pytest

from bridge.core.events import Rejected, RejectReason, TaskEvent, UserEvent
from bridge.inputs.fields import ControlCharacterError, free_text, name_field
from bridge.inputs.parse import parse_datagram

TASK_LOGGER = "System.Scheduler.Scheduler.Master.Task.TaskSession"


def log4j(message: str, *, logger: str = TASK_LOGGER, host: str = "QS1", **props: str) -> bytes:
    """A log4j event as XmlLayoutSchemaLog4j writes it; values are inserted as given, so a
    test can put character references (`&#10;`) or raw C1 controls in them."""
    data = "".join(f'<log4j:data name="{k}" value="{v}" />' for k, v in props.items())
    return (
        f'<log4j:event logger="{logger}" timestamp="1795565191804" level="ERROR" thread="1">'
        f"<log4j:message>{message}</log4j:message><log4j:properties>"
        f'<log4j:data name="log4jmachinename" value="{host}" />{data}'
        "</log4j:properties></log4j:event>\r\n"
    ).encode()


def test_free_text_shows_controls_and_keeps_line_breaks() -> None:
    assert free_text("a\x1b[31mb\x00c\u009b2Jd\x7f") == "a\ufffd[31mb\ufffdc\ufffd2Jd\ufffd"
    assert free_text("line 1\r\n\tline 2") == "line 1\r\n\tline 2"
    assert free_text("(null)") is None
    assert free_text(None) is None


@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\x1b", "\x00", "\x7f", "\u0085", "\u009b"])
def test_a_name_cannot_hold_a_control_character(bad: str) -> None:
    with pytest.raises(ControlCharacterError, match="the host"):
        name_field(f"QS{bad}1", "the host")
    assert name_field(" QS1 \n", "the host") == "QS1"  # around it: stripped, as every field


def test_base64_decoded_values_take_the_same_helpers() -> None:
    """What the log-event XML decodes from base64 can hold anything: the helpers are the same."""
    decoded = base64.b64decode(base64.b64encode(b"boom\x1b]0;pwned\x07\nat x")).decode()
    assert free_text(decoded) == "boom\ufffd]0;pwned\ufffd\nat x"
    with pytest.raises(ControlCharacterError):
        name_field(base64.b64decode(base64.b64encode(b"QS1\nEVIL")).decode(), "log4net:HostName")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (log4j("Max retries reached", host="QS1&#10;EVIL"), "the host"),
        (log4j("Max retries reached", host="QS1\u009b2J"), "the host"),
        (log4j("Max retries reached", TaskName="Reload&#9;Sales"), "TaskName"),
        (log4j("Max retries reached", TaskName="T", User="CORP\\mi&#13;a"), "User"),
        (log4j("Max retries reached", logger="System.Scheduler&#10;X"), "the logger"),
        (
            log4j(
                "Start session",
                logger="AuditActivity.Proxy",
                Command="Start session",
                UserDirectory="CORP",
                UserId="mi\u0085a",
            ),
            "UserId",
        ),
    ],
)
def test_log4j_xml_refuses_a_control_character_in_a_name(data: bytes, says: str) -> None:
    """Before, `QS1\\nEVIL` became the server (a topic level, the Home Assistant device name)."""
    result = parse_datagram(data)
    assert isinstance(result, Rejected), result
    assert result.reason is RejectReason.NOT_TEXT
    assert says in result.detail


def test_log4j_xml_message_shows_control_characters() -> None:
    event = parse_datagram(log4j("Max retries reached\u009b31m&#10;next line", TaskName="T"))
    assert isinstance(event, TaskEvent), event
    assert event.message == "Max retries reached\ufffd31m\nnext line"
    assert (event.server, event.task_name) == ("QS1", "T")


def test_a_line_break_in_a_name_of_a_semicolon_line_is_refused_too() -> None:
    line = "/proxy-session/;QS1;Start session;CORP;mia\u009b;AppAccess;/hub/;hi".encode()
    result = parse_datagram(line)
    assert isinstance(result, Rejected), result
    assert (result.reason, result.detail) == (
        RejectReason.NOT_TEXT,
        "a control character in the user id",
    )
    ok = parse_datagram(b"/proxy-session/;QS1;Start session;CORP;mia;AppAccess;/hub/;hi")
    assert isinstance(ok, UserEvent)
