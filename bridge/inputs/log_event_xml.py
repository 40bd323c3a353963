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

The prefix is the source (Butler SOS's tag, any case: `LOG_TAGS`). Two readers, one result
(`Read`): `read_exact` reads the layout exactly as log4net writes it (one regular expression
over the whole datagram, linear, with the XML rules for what it lets through: characters XML
allows, the five predefined entities, character references, CDATA in the exception), about a
quarter of defusedxml's cost; whatever it does not recognise (a DTD, an entity, a comment, a
single quote, another element…) goes to `read_defused`, never guessed. log4net does not declare
the prefix, so there the event is wrapped in an element that does before defusedxml reads it
(no DTD, no entities, no external anything), and elements nested deeper than the layout's
event > properties > data are refused.

Each source's properties map to the `LogEvent` fields the Butler SOS format fills for that
source (`TAILS`), so both formats give the same event; the XML adds the exception for
the engine too, and has no row number. The host is log4net's `log4net:HostName`, the Windows
user the `username` attribute, the time the `timestamp` attribute (ISO 8601 with the node's
offset, 7 fraction digits, kept to milliseconds as in Butler SOS's lines).

XML turns a carriage return into a line feed; a datagram's carriage returns are kept (as
character references for defusedxml), so a Windows stack trace keeps its CRLF. The exception
text is not base64: log4net before 1.2.11 replaces its characters from U+0800 up with `?`.

Refusals: not well-formed (`bad_xml`: a DOCTYPE or an entity declaration can only sit inside
the wrapper, where XML allows none, and defusedxml forbids a DTD as well; elements nested
deeper than the layout; text merely quoting `<!DOCTYPE html>`, escaped or in CDATA, is an
ordinary message); a message or property value that is not base64 of UTF-8 (`bad_xml`: the
appender lost its `base64Encode…` settings); a prefix that is no `qseow-<service>`
(`unknown_event`); as in `;` lines, a level that is no log4net level (`unknown_level`), no
host (`no_host`), a host holding a control character, line ends and tabs too (`not_text`: it
names the server). Every level is published (DEBUG and INFO too, as `log_debug` and
`log_info`: `LEVELS`).

One text policy with the `;` lines (`bridge.inputs.log_events`): base64 lets any character
through, so a control character in the message, a property, the exception, the logger or the
user is shown as U+FFFD (tab and line ends are kept); the host refuses it.
"""

from __future__ import annotations

import binascii
import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from bridge.core.events import LogEvent, LogSource, Rejected, RejectReason, SourceFormat
from bridge.inputs.fields import NAME_CONTROLS, clip, field, message_text, visible_controls
from bridge.inputs.log_events import (
    HOST_CONTROLS,
    LEVELS,
    LOG_TAGS,
    complete_user,
    iso_timestamp,
)

START = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?<([A-Za-z][\w.-]*):event[\s/>]")
"""The opening of a log event in the XML layout; group 1 is the prefix."""
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CDATA_OPEN = "<![CDATA["
_CDATA_CLOSE = "]]>"
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
"""Base64 with its padding: whole groups of four."""
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


class LogXmlRefusedError(ValueError):
    """The datagram is not a log event of this layout (`bad_xml`); the text is the reason."""


class _UnsoundHeadError(ValueError):
    """Well-formed, but without a sound head: the reason and the text say why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _NotExactError(ValueError):
    """The exact reader met something it does not read itself: defusedxml decides."""


Read = tuple[
    tuple[str | None, str | None, str | None, str | None],
    list[tuple[str, str | None, str | None]],
]
"""What a log event's XML holds, whichever reader read it: the event element's attributes
`READ` (None: absent), and
its parts in document order: `("message", None, text)`, `("exception", None, text or None)`,
`("data", name, value)` (the message and the values still base64)."""


def is_log_event_xml(text: str) -> bool:
    """Whether `text` opens as a log event of the XML layout (any prefix but log4j's)."""
    match = START.match(text)
    return match is not None and match.group(1) != "log4j"


def parse_log_event_xml(text: str) -> LogEvent | Rejected:
    """One datagram's text (decoded, stripped) → the log event, or why it is not one."""
    exact = _EXACT.match(text)
    if exact is not None:
        prefix = exact.group(1)
    else:
        match = START.match(text)
        prefix = match.group(1) if match else ""
    source = LOG_TAGS.get(prefix.lower())
    if source is None:
        return Rejected(
            reason=RejectReason.UNKNOWN_EVENT,
            detail=f"XML event of prefix {clip(prefix, 64)!r}: not a qseow-<service> log event",
        )
    try:
        read = None if exact is None else _exact_read(exact)
        if read is None:
            read = read_defused(text, prefix)
        return _log_event(source, read)
    except LogXmlRefusedError as exc:
        return Rejected(reason=RejectReason.BAD_XML, detail=clip(str(exc), 200))
    except _UnsoundHeadError as exc:
        return Rejected(reason=exc.reason, detail=clip(str(exc), 200))


# The exact reader: the layout the shipped appenders send, as log4net writes it (no
# indentation, double quotes, `" />"` or `"/>"`, message, properties and exception in this
# order, each at most once), read with a few regular expressions instead of a parser. Every
# character class leaves out what XML 1.0 forbids, references are the five predefined
# entities and character references to characters XML allows, and a CDATA section is only
# read inside the exception: what it does not match (a DTD, an entity, a comment, a
# processing instruction, an element of another name, a duplicate attribute, a character
# reference to a forbidden character, an XML declaration, a single quote…) goes to the
# defusedxml reader, which refuses or reads it as before. Possessive quantifiers: no
# backtracking, so linear in the datagram's length whatever it holds.
_FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_REFERENCE = r"&(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});"
_VALUE_TEXT = rf'[^"<\t\n\r{_FORBIDDEN}]*+'
"""An attribute value (in double quotes): literal tabs and line ends are left to the parser
(XML turns them into spaces); an `&` must open a reference (`_attribute`)."""
_VALUE = f'"{_VALUE_TEXT}"'
_CDATA = rf"<!\[CDATA\[(?:[^\]{_FORBIDDEN}]++|\](?!\]>))*+\]\]>"
_CONTENT = rf"(?:[^<&\]{_FORBIDDEN}]++|\](?!\]>)|{_REFERENCE}|{_CDATA})*+"
"""Element text: characters (no `]]>`), references and CDATA sections."""
_ATTRIBUTES = ("logger", "timestamp", "level", "thread", "domain", "identity", "username")
"""The event element's attributes, in the order log4net's XmlLayout writes them (each only
when it has a value)."""
READ = ("logger", "timestamp", "level", "username")
"""The attributes a log event is made of."""
_EXACT = re.compile(
    r"<(?P<p>[A-Za-z][A-Za-z0-9_.-]*+):event"
    + "".join(f'(?: {name}="({_VALUE_TEXT})")?' for name in _ATTRIBUTES)
    + r">(?:<(?P=p):message>([A-Za-z0-9+/= \t\n\r]*+)</(?P=p):message>)?"
    r"(?:<(?P=p):properties>"
    rf'((?:<(?P=p):data name={_VALUE} value="[A-Za-z0-9+/=]*+" ?/>)*+)'
    r"</(?P=p):properties>)?"
    rf"(?:<(?P=p):exception>({_CONTENT})</(?P=p):exception>)?"
    r"</(?P=p):event>[ \t\r\n]*+\Z"
)
"""The whole datagram in the shipped layout: the prefix, the attributes (quoted), the message,
the properties and the exception."""
_DATA = re.compile(r'<[^ ]+ name="([^"]*)" value="([^"]*)"')
_BARE_AMPERSAND = re.compile(rf"&(?!{_REFERENCE[1:]})")
"""An `&` that opens no reference of `_REFERENCE` (not well-formed, or an entity)."""
_ESCAPED = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|<!\[CDATA\[(.*?)\]\]>", re.S)
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def read_exact(text: str, prefix: str) -> Read | None:
    """The event as the shipped layout writes it, read as defusedxml would read it; None for
    anything else (the defusedxml reader then decides)."""
    match = _EXACT.match(text)
    return None if match is None or match.group(1) != prefix else _exact_read(match)


def _exact_read(match: re.Match[str]) -> Read | None:
    groups = match.groups()
    attributes, message, properties, exception = groups[1:8], groups[8], groups[9], groups[10]
    parts: list[tuple[str, str | None, str | None]] = []
    try:
        if any(value is not None and "&" in value for value in attributes):  # each checked
            attributes = tuple(None if value is None else _attribute(value) for value in attributes)
        logger, timestamp, level, _, _, _, username = attributes
        if message is not None:
            parts.append(("message", None, message))
        if properties:
            data = _DATA.findall(properties)
            if "&" in properties:
                data = [(_attribute(name), value) for name, value in data]
            parts += [("data", name, value) for name, value in data]
        if exception is not None:
            parts.append(("exception", None, _unescaped(exception) or None))
    except _NotExactError:
        return None
    return (logger, timestamp, level, username), parts


def _unescaped(text: str) -> str:
    """Element text `_CONTENT` matched, with its references and CDATA sections read;
    _NotExactError for a reference to a character XML forbids."""
    if "&" not in text and "<" not in text:
        return text
    return _ESCAPED.sub(_replacement, text)


def _attribute(value: str) -> str:
    """An attribute's value as XML reads it (`_unescaped`); _NotExactError for an `&` that
    opens no reference."""
    if "&" not in value:
        return value
    if _BARE_AMPERSAND.search(value) is not None:
        raise _NotExactError(value)
    return _ESCAPED.sub(_replacement, value)


def _replacement(match: re.Match[str]) -> str:
    reference = match.group(1)
    if reference is None:
        return match.group(2)
    if reference[0] != "#":
        return _ENTITIES[reference]
    code = int(reference[2:], 16) if reference[1] == "x" else int(reference[1:])
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise _NotExactError(reference)
    return chr(code)


def read_defused(text: str, prefix: str) -> Read:
    """The event as defusedxml reads it (no DTD, no entity, no external anything), for what
    the exact reader does not read; LogXmlRefusedError when it is no one event of the layout,
    or nests elements deeper than the layout does (event, properties, data)."""
    body = keep_carriage_returns(_XML_DECLARATION.sub("", text, count=1))
    wrapped = f'<qlik2mqtt-events xmlns:{prefix}="{NAMESPACE}">{body}</qlik2mqtt-events>'
    try:
        root = safe_fromstring(wrapped, forbid_dtd=True)
    except ParseError as exc:
        reason, _, _ = str(exc).partition(": line ")
        raise LogXmlRefusedError(f"not well-formed XML: {reason}") from None
    except DefusedXmlException as exc:
        raise LogXmlRefusedError(f"refused: {exc}") from None
    children: list[Element] = list(root)
    if len(children) != 1 or children[0].tag != f"{{{NAMESPACE}}}event":
        raise LogXmlRefusedError(f"expected exactly one {prefix}:event element")
    event = children[0]
    if any(len(grandchild) for child in event for grandchild in child):
        raise LogXmlRefusedError(f"elements nested deeper than {prefix}:properties/data")
    parts: list[tuple[str, str | None, str | None]] = []
    for child in event:
        name = child.tag.rpartition("}")[2]
        if name == "message":
            parts.append(("message", None, child.text or ""))
        elif name == "exception":
            parts.append(("exception", None, child.text))
        elif name == "properties":
            for data in child:
                key = data.get("name")
                if key is not None and data.tag.rpartition("}")[2] == "data":
                    parts.append(("data", key, data.get("value", "")))
    logger, timestamp, level, username = (event.get(name) for name in READ)
    return (logger, timestamp, level, username), parts


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


def _log_event(source: LogSource, read: Read) -> LogEvent:
    (logger, timestamp, level_text, username), parts = read
    level = LEVELS.get((level_text or "").upper())
    if level is None:
        raise _UnsoundHeadError(
            RejectReason.UNKNOWN_LEVEL, f"level {clip(level_text or '', 32)!r} is no log level"
        )
    message: str | None = None
    exception: str | None = None
    properties: dict[str, tuple[str, str | None]] = {}  # name → (decoded, as published)
    for kind, key, value in parts:
        if key is not None:  # a property
            properties[key] = _property(value or "", key)
        elif kind == "message":
            message = _decoded(value or "", None)
        else:
            exception = value
    host = field(properties[HOST][0]) if HOST in properties else None
    if host is None:
        raise _UnsoundHeadError(RejectReason.NO_HOST, f"XML log event without {HOST}")
    if NAME_CONTROLS.search(host):
        raise _UnsoundHeadError(RejectReason.NOT_TEXT, HOST_CONTROLS)
    values: dict[str, str | None] = {}  # the fields of this source it has: the rest stay None
    wanted = PROPERTIES[source]
    for name, (_, text) in properties.items():  # every target is a distinct field of TAILS
        if (target := wanted.get(name)) is not None:
            values[target] = text
    if exception:
        values["exception_message"] = message_text([visible_controls(exception)])
    complete_user(values)
    return LogEvent(
        source=source,
        level=level,
        server=host,
        source_format=SourceFormat.XML,
        log_row=None,  # log4net's XML layout has none
        log_timestamp=iso_timestamp(timestamp or ""),
        subsystem=_text(logger),
        windows_user=_text(username),
        message=message_text([visible_controls(message)]) if message else None,
        fields_uncertain=False,  # each property in its own element
        **values,
    )


def _text(value: str | None) -> str | None:
    """A field as published: control characters shown as U+FFFD, as in `;` lines."""
    return None if value is None else field(visible_controls(value))


KNOWN_VALUES = 1024
"""Property values remembered decoded and cleaned: a node sends its host, its directory, its
version and its ids again and again, which then cost a dict lookup instead of a decoding and a
cleaning. Emptied when full."""
KNOWN_VALUE_CHARS = 128
"""Longer values are decoded each time (a task's or an app's name may be long and rare)."""
_KNOWN_VALUES: dict[str, tuple[str, str | None]] = {}


def _property(value: str, key: str) -> tuple[str, str | None]:
    """Property `key`'s base64 value as text, and as published (`_text`), remembered
    (`KNOWN_VALUES`)."""
    known = _KNOWN_VALUES.get(value)
    if known is None:
        decoded = _decoded(value, key)
        known = (decoded, _text(decoded))
        if len(value) <= KNOWN_VALUE_CHARS:
            if len(_KNOWN_VALUES) >= KNOWN_VALUES:
                _KNOWN_VALUES.clear()
            _KNOWN_VALUES[value] = known
    return known


def _decoded(value: str, key: str | None) -> str:
    """A base64 value (UTF-8) as text: the message (`key` None) or property `key`;
    LogXmlRefusedError when it is not one."""
    if _BASE64.fullmatch(value) is None:
        value = "".join(value.split())
        if _BASE64.fullmatch(value) is None:
            raise LogXmlRefusedError(
                f"{_what(key)} is not base64: is base64EncodeMessage/Properties set?"
            )
    try:
        return binascii.a2b_base64(value).decode("utf-8")  # checked: strict would agree
    except (binascii.Error, UnicodeDecodeError):
        raise LogXmlRefusedError(f"{_what(key)} is not base64 of UTF-8 text") from None


def _what(key: str | None) -> str:
    return "the message" if key is None else f"property {key!r}"
