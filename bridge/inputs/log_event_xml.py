"""qlik2mqtt's own log-event appenders (log4net `XmlLayout`) → `LogEvent`. Pure: no I/O.

What the shipped appenders (`appenders/<service>/LocalLogConfig.xml`, rendered by
`bridge.inputs.appenders`) send, one event per datagram::

    <qseow-scheduler:event logger="System.Scheduler…" timestamp="2026-11-04T09:15:02.4170000+01:00"
        level="ERROR" thread="12" domain="Scheduler.exe" username="CORP\\qlikservice">
      <qseow-scheduler:message>base64 of the UTF-8 message</qseow-scheduler:message>
      <qseow-scheduler:properties>
        <qseow-scheduler:data name="TaskName" value="base64 of the UTF-8 value" /> …
      </qseow-scheduler:properties>
      <qseow-scheduler:exception>exception text, escaped or CDATA</qseow-scheduler:exception>
    </qseow-scheduler:event>

The prefix is the source (Butler SOS's tag, any case: `LOG_TAGS`). log4net does not declare
it, so the event is wrapped in an element that does before defusedxml reads it (no DTD, no
entities). Each source's properties map to the `LogEvent` fields the Butler SOS format fills
for that source (`TAILS`), so both formats give the same event; the XML adds the exception for
the engine too, and has no row number. The host is log4net's `log4net:HostName`, the Windows
user the `username` attribute, the time the `timestamp` attribute (ISO 8601 with the node's
offset, 7 fraction digits, kept to milliseconds as in Butler SOS's lines).

XML turns a carriage return into a line feed; a datagram's carriage returns are kept as
character references first, so a Windows stack trace keeps its CRLF. The exception text is not
base64: log4net before 1.2.11 replaces its characters from U+0800 up with `?`.

Refusals: not well-formed (`bad_xml`: a DOCTYPE or an entity declaration can only sit inside
the wrapper, where XML allows none, and defusedxml forbids a DTD as well; text merely quoting
`<!DOCTYPE html>`, escaped or in CDATA, is an ordinary message); a message or property value
that is not base64 of UTF-8 (`bad_xml`: the appender lost its `base64Encode…` settings); a
prefix that is no `qseow-<service>` (`unknown_event`); as in `;` lines, a level that is no
log4net level (`unknown_level`), no host (`no_host`), a host holding a control character, line
ends and tabs too (`not_text`: it names the server). Every level is published
(DEBUG and INFO too, as `log_debug` and `log_info`: `LEVELS`).

One text policy with the `;` lines (`bridge.inputs.log_events`): base64 lets any character
through, so a control character in the message, a property, the exception, the logger or the
user is shown as U+FFFD (tab and line ends are kept); the host refuses it.
"""

from __future__ import annotations

import base64
import binascii
import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from bridge.core.events import LogEvent, LogSource, Rejected, RejectReason, SourceFormat
from bridge.inputs.fields import clip, field, message_text, visible_controls
from bridge.inputs.log_events import (
    HOST_CONTROLS,
    LEVELS,
    LOG_TAGS,
    NAME_CONTROLS,
    TAILS,
    complete_user,
    iso_timestamp,
)

START = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?<([A-Za-z][\w.-]*):event[\s/>]")
"""The opening of a log event in the XML layout; group 1 is the prefix."""
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CDATA_OPEN = "<![CDATA["
_CDATA_CLOSE = "]]>"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
NAMESPACE = "urn:qlik2mqtt:log-event"
HOST = "log4net:HostName"

PROPERTIES: dict[LogSource, dict[str, str]] = {
    LogSource.ENGINE: {
        "ProxySessionId": "proxy_session_id",
        "ActiveUserDirectory": "user_directory",
        "ActiveUserId": "user_id",
        "EngineTimestamp": "engine_timestamp",
        "ProcessId": "process_id",
        "Exe Version": "engine_version",
        "Server Started": "server_started",
        "Entry Type": "entry_type",
        "SessionId": "session_id",
        "AppId": "app_id",
    },
    LogSource.PROXY: {
        "UserDirectory": "user_directory",
        "UserId": "user_id",
        "Command": "command",
        "Result": "result_code",
        "Origin": "origin",
        "Context": "context",
    },
    LogSource.SCHEDULER: {
        "UserDirectory": "user_directory",
        "UserId": "user_id",
        "User": "user",
        "TaskName": "task_name",
        "AppName": "app_name",
        "TaskId": "task_id",
        "AppId": "app_id",
        "ExecutionId": "execution_id",
    },
}
"""Each source's Qlik properties → LogEvent fields: the properties Butler SOS's appenders send
for it, by the names `TAILS` gives them (the engine's user is its `Active…` properties)."""
PROPERTIES[LogSource.REPOSITORY] = PROPERTIES[LogSource.PROXY]


class _BadXmlError(ValueError):
    """The datagram is not a log event of this layout; the text is the reason."""


class _UnsoundHeadError(ValueError):
    """Well-formed, but without a sound head: the reason and the text say why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def is_log_event_xml(text: str) -> bool:
    """Whether `text` opens as a log event of the XML layout (any prefix but log4j's)."""
    match = START.match(text)
    return match is not None and match.group(1) != "log4j"


def parse_log_event_xml(text: str) -> LogEvent | Rejected:
    """One datagram's text (decoded, stripped) → the log event, or why it is not one."""
    match = START.match(text)
    prefix = match.group(1) if match else ""
    source = LOG_TAGS.get(prefix.lower())
    if source is None:
        return Rejected(
            reason=RejectReason.UNKNOWN_EVENT,
            detail=f"XML event of prefix {clip(prefix, 64)!r}: not a qseow-<service> log event",
        )
    try:
        event = _root(text, prefix)
        return _log_event(source, event)
    except _BadXmlError as exc:
        return Rejected(reason=RejectReason.BAD_XML, detail=clip(str(exc), 200))
    except _UnsoundHeadError as exc:
        return Rejected(reason=exc.reason, detail=clip(str(exc), 200))


def _root(text: str, prefix: str) -> Element:
    body = keep_carriage_returns(_XML_DECLARATION.sub("", text, count=1))
    wrapped = f'<qlik2mqtt-events xmlns:{prefix}="{NAMESPACE}">{body}</qlik2mqtt-events>'
    try:
        root = safe_fromstring(wrapped, forbid_dtd=True)
    except ParseError as exc:
        reason, _, _ = str(exc).partition(": line ")
        raise _BadXmlError(f"not well-formed XML: {reason}") from None
    except DefusedXmlException as exc:
        raise _BadXmlError(f"refused: {exc}") from None
    children: list[Element] = list(root)
    if len(children) != 1 or children[0].tag != f"{{{NAMESPACE}}}event":
        raise _BadXmlError(f"expected exactly one {prefix}:event element")
    return children[0]


def keep_carriage_returns(text: str) -> str:
    """`text` with each carriage return as a character reference (`&#13;`, closing and
    reopening a CDATA section around it), which XML keeps; a bare one it reads as a line feed.
    One pass with `str.find` (a regular expression for the sections tried every unclosed
    `<![CDATA[` to the end: 64 KB of them took 1.8 s)."""
    if "\r" not in text:
        return text
    parts = []
    position = 0
    while (start := text.find(_CDATA_OPEN, position)) >= 0:
        end = text.find(_CDATA_CLOSE, start + len(_CDATA_OPEN))
        if end < 0:  # unclosed: no section from here on (the parser refuses it)
            break
        end += len(_CDATA_CLOSE)
        parts.append(text[position:start].replace("\r", "&#13;"))
        parts.append(text[start:end].replace("\r", "]]>&#13;<![CDATA["))
        position = end
    parts.append(text[position:].replace("\r", "&#13;"))
    return "".join(parts)


def _log_event(source: LogSource, event: Element) -> LogEvent:
    level_text = event.get("level", "")
    level = LEVELS.get(level_text.upper())
    if level is None:
        raise _UnsoundHeadError(
            RejectReason.UNKNOWN_LEVEL, f"level {clip(level_text, 32)!r} is no log level"
        )
    message: str | None = None
    exception: str | None = None
    properties: dict[str, str] = {}
    for child in event:
        name = child.tag.rpartition("}")[2]
        if name == "message":
            message = _decoded(child.text or "", "the message")
        elif name == "exception":
            exception = child.text
        elif name == "properties":
            for data in child:
                key = data.get("name")
                if key is not None and data.tag.rpartition("}")[2] == "data":
                    properties[key] = _decoded(data.get("value", ""), f"property {key!r}")
    host = field(properties.get(HOST))
    if host is None:
        raise _UnsoundHeadError(RejectReason.NO_HOST, f"XML log event without {HOST}")
    if NAME_CONTROLS.search(host):
        raise _UnsoundHeadError(RejectReason.NOT_TEXT, HOST_CONTROLS)
    values: dict[str, str | None] = dict.fromkeys(TAILS[source])
    for name, target in PROPERTIES[source].items():
        values[target] = _text(properties.get(name))
    values["exception_message"] = message_text([visible_controls(exception)]) if exception else None
    complete_user(values)
    return LogEvent(
        source=source,
        level=level,
        server=host,
        source_format=SourceFormat.XML,
        log_row=None,  # log4net's XML layout has no row number
        log_timestamp=iso_timestamp(event.get("timestamp", "")),
        subsystem=_text(event.get("logger")),
        windows_user=_text(event.get("username")),
        message=message_text([visible_controls(message)]) if message else None,
        fields_uncertain=False,  # each property in its own element
        **values,
    )


def _text(value: str | None) -> str | None:
    """A field as published: control characters shown as U+FFFD, as in `;` lines."""
    return None if value is None else field(visible_controls(value))


def _decoded(value: str, what: str) -> str:
    """A base64 value (UTF-8) as text; _BadXmlError when it is not one."""
    compact = "".join(value.split())
    if len(compact) % 4 or not _BASE64.fullmatch(compact):
        raise _BadXmlError(f"{what} is not base64: is base64EncodeMessage/Properties set?")
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _BadXmlError(f"{what} is not base64 of UTF-8 text") from None
