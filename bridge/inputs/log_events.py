"""Butler SOS's log-event lines (`/qseow-engine/;…` and the proxy, repository and scheduler
kinds) → `LogEvent`. Pure: no I/O, no clock.

Every line has a head common to the four services and a tail of its own (the `conversionpattern`
of Butler SOS's `LocalLogConfig.xml` files, the same order as its handlers read)::

    /qseow-<source>/;row;ISO time;local time;level;host;logger;Windows user;message;<tail>

    engine      ProxySessionId;UserDirectory;UserId;EngineTimestamp;ProcessId;Exe Version;
                Server Started;Entry Type;SessionId;AppId
    proxy       exception;UserDirectory;UserId;Command;Result;Origin;Context
    repository  (as proxy)
    scheduler   exception;UserDirectory;UserId;User;TaskName;AppName;TaskId;AppId;ExecutionId

The rules, in order (a line with a sound head is never dropped for its tail):

1. **The head** (row, times, level, host, logger, Windows user) is read from the left. It is
   sound when the level is a log4net level (`LEVELS`) and the host is there and holds no
   control character; otherwise the line is refused (`unknown_level`, `no_host`, `not_text`;
   fewer fields than the head: `too_few_fields`). A row that is not a number and a time that
   is not a time are published as null, as Butler SOS publishes them as empty.
2. **Exactly the layout's field count**: no field can hold an extra `;`, so every field is
   taken as it is. Any field may be empty or `(null)` (published as null): Qlik leaves
   properties unfilled (ProxySessionId "is not present in all log files"), a service logs
   another's logger (Butler SOS's engine appender catches the `System` logger: repository and
   proxy lines under `/qseow-engine/`, Butler SOS issue #805), a user id comes without its
   directory, an exception text without a .NET type.
3. **More fields**: a message holds `;`. The tail is fixed from the right and the message is
   what lies between, when the shapes agree (GUIDs for ids, times, a version, a result code,
   `DIR\\user`, a message whose last part does not read as a shifted first tail field, an
   exception text starting with a .NET type…; `_tail_misfit`).
4. **Otherwise** (a shape disagrees, or fewer fields than the layout): the split cannot be
   told, and a guess would put a value in the wrong field. The event is published with the
   head's fields, the rest of the line as it came in `message`, every tail field null and
   `fields_uncertain` set (counted: `uncertain_fields`).

A control character (an ESC a script error quoted, say) is shown as U+FFFD in every field but
the host, which names the server (topics, Home Assistant's device) and refuses it, tab and line
ends too (`NAME_CONTROLS`). qlik2mqtt's XML appenders follow the same policy.

What cannot be caught: a `;` in the host (a DNS name never holds one), the logger (a .NET
logger name never holds one) or the Windows user (Windows forbids `;` in account names) would
shift the head unseen; the head is taken from the left as Butler SOS takes it.
`/qseow-qix-perf/` lines are Butler SOS's QIX performance events (`bridge.inputs.qix_perf`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    Rejected,
    RejectReason,
    SourceFormat,
)
from bridge.inputs.fields import (
    MAX_FIELD_CHARS,
    NAME_CONTROLS,
    NULL,
    clip,
    field,
    is_null,
    message_text,
    visible_controls,
)

LOG_TAGS: dict[str, LogSource] = {
    "qseow-engine": LogSource.ENGINE,
    "qseow-proxy": LogSource.PROXY,
    "qseow-repository": LogSource.REPOSITORY,
    "qseow-scheduler": LogSource.SCHEDULER,
}
"""The tags (lower case, without slashes) of the four log-event kinds."""

HEAD_FIELDS = 7
"""After the tag: row, ISO time, local time, level, host, logger, Windows user."""
SOUND_HEAD_FIELDS = 6
"""The fewest fields after the tag a published line has: the head up to its logger."""

_PROXY_TAIL = (
    "exception_message",
    "user_directory",
    "user_id",
    "command",
    "result_code",
    "origin",
    "context",
)
TAILS: dict[LogSource, tuple[str, ...]] = {
    LogSource.ENGINE: (
        "proxy_session_id",
        "user_directory",
        "user_id",
        "engine_timestamp",
        "process_id",
        "engine_version",
        "server_started",
        "entry_type",
        "session_id",
        "app_id",
    ),
    LogSource.PROXY: _PROXY_TAIL,
    LogSource.REPOSITORY: _PROXY_TAIL,
    LogSource.SCHEDULER: (
        "exception_message",
        "user_directory",
        "user_id",
        "user",
        "task_name",
        "app_name",
        "task_id",
        "app_id",
        "execution_id",
    ),
}
"""Each source's fields after the message, in the order its appender sends them."""

LEVELS = {
    **{name: LogLevel.DEBUG for name in ("ALL", "FINEST", "VERBOSE", "FINER", "TRACE", "FINE")},
    "DEBUG": LogLevel.DEBUG,
    "INFO": LogLevel.INFO,
    "NOTICE": LogLevel.INFO,
    "WARN": LogLevel.WARN,
    "WARNING": LogLevel.WARN,
    "ERROR": LogLevel.ERROR,
    "SEVERE": LogLevel.ERROR,
    "CRITICAL": LogLevel.ERROR,
    "ALERT": LogLevel.FATAL,
    "FATAL": LogLevel.FATAL,
    "EMERGENCY": LogLevel.FATAL,
}
"""log4net's level names (upper case) → the published level: each to the nearest at or below
it of DEBUG, INFO, WARN, ERROR, FATAL (log4net's `Critical` is below its `Fatal`). Qlik Sense
logs DEBUG, INFO, WARN, ERROR and FATAL."""

_TIME = (
    r"(\d{4})-?(\d{2})-?(\d{2})[T ](\d{2}):?(\d{2}):?(\d{2})(?:[.,](\d{1,7}))?"
    r"(Z|[+-]\d{2}:?\d{2})?"
)
_TIMESTAMP = re.compile(_TIME)
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_ID = re.compile(_GUID)
"""Session, app, task and execution ids: GUIDs (8-4-4-4-12 hex digits)."""
_PROXY_SESSION_ID = re.compile(rf"{_GUID}|0|[0-9A-Fa-f]{{32,128}}")
"""The engine's proxy session id: a GUID, `0` for the engine's own work, or (newer releases
log it as a salted hash) a long run of hex digits. Qlik may leave it unfilled: beside an empty
one, a message ending in `;` cannot be told from a shifted tail (`_tail_misfit`)."""
_USER = re.compile(r"[^\s\\/]+\\[^\\]+")
"""`DIR\\user`: a directory without spaces or slashes, a backslash, an id without one."""
_SHAPES: dict[str, re.Pattern[str]] = {
    "proxy_session_id": _PROXY_SESSION_ID,
    "process_id": re.compile(rf"{_GUID}|\d{{1,10}}"),
    "engine_version": re.compile(r"\d{1,5}(?:\.\d{1,9}){1,3}"),
    "session_id": _ID,
    "app_id": _ID,
    "task_id": _ID,
    "execution_id": _ID,
    "engine_timestamp": _TIMESTAMP,
    "server_started": _TIMESTAMP,
    "result_code": re.compile(r"-?\d{1,12}"),
    "command": re.compile(r".*[^\W\d_].*"),
    "user_directory": re.compile(r"[^\\]+"),
    "user_id": re.compile(r"[^\\]+"),
    "user": _USER,
}
"""Fields a `;` elsewhere in the tail would move text into, and what each must look like
(stripped). `command` holds a letter (a shifted result code does not)."""
_EXCEPTION_START = re.compile(r"(?:[A-Z][\w`+]*\.)+[A-Za-z_][\w`+]*(?:Exception|Error|Fault)\b")
"""How an exception text starts: its namespace-qualified type (`System.Net.WebException: …`).
Cut by a `;` anywhere but at a dot, what is left does not start so (`ystem.Net.…`,
`OException`); cut at a dot, the front (`System.`) ends the message and is caught there."""
_EXCEPTION_PIECE = re.compile(
    r"(?:[A-Za-z_][\w`+]*\.)+(?:[A-Za-z_][\w`+]*(?:Exception|Error|Fault)(?::.*|\s*))?", re.S
)
"""A dotted .NET exception type (`System.IO.IOException: …`) or the front of one cut at a dot
(`System.`): what the message's last part looks like when a `;` in the exception split it."""

_TYPE_FRONT = re.compile(r"[A-Za-z_][\w`+.]*")
"""The front of a .NET type name, as a `;` inside the exception's type leaves it in the message
(no space on either side: an exception text starts with its type)."""

MAX_MESSAGE_PARTS = 256
"""At most this many `;`-separated parts in a message (255 `;`). Qlik's messages hold a few;
a load-script statement quoted in an error a few dozen. Past this the line is refused: it is a
shifted or garbage line, not a message worth publishing."""


def parse_log_fields(tag: str, fields: Sequence[str]) -> LogEvent | Rejected:
    """One log-event line, split on `;`, without its tag (`tag` is lower case, a key of
    `LOG_TAGS`)."""
    source = LOG_TAGS[tag]
    if len(fields) < SOUND_HEAD_FIELDS:
        return Rejected(
            reason=RejectReason.TOO_FEW_FIELDS,
            detail=f"/{tag}/ {len(fields) + 1} fields: no head (row, times, level, host and "
            f"logger need {SOUND_HEAD_FIELDS + 1})",
        )
    head = read_head(tag, fields)
    if isinstance(head, Rejected):
        return head
    level, host = head
    names = TAILS[source]
    wanted = HEAD_FIELDS + 1 + len(names)
    row, logged_at = fields[0].strip(), fields[1]
    logger = fields[5]
    windows_user = fields[6] if len(fields) >= HEAD_FIELDS else ""
    values: dict[str, str | None]
    uncertain = False
    tail_start = len(fields) - len(names)
    if len(fields) == wanted:  # no field holds an extra `;`: each as it is
        message = message_text([visible_controls(fields[HEAD_FIELDS])])
        values = _tail_values(names, fields, tail_start)
    elif len(fields) > wanted and _splits(source, fields, tail_start):
        message = message_text([visible_controls(part) for part in fields[HEAD_FIELDS:tail_start]])
        values = _tail_values(names, fields, tail_start)
    else:  # the tail cannot be split, or is cut short: the head, and the rest as it came
        uncertain = True
        values = dict.fromkeys(names)
        message = _uncertain_text(fields[HEAD_FIELDS:])
    complete_user(values)
    return LogEvent(
        source=source,
        level=level,
        server=host,
        source_format=SourceFormat.TAGGED,
        log_row=int(row) if row.isascii() and row.isdigit() and len(row) <= 18 else None,
        log_timestamp=head_time(logged_at),
        subsystem=_value(logger),
        windows_user=_value(windows_user),
        message=message,
        fields_uncertain=uncertain,
        **values,
    )


def _splits(source: LogSource, fields: Sequence[str], tail_start: int) -> bool:
    """Whether a line with extra `;` splits with certainty: the message has no more than
    `MAX_MESSAGE_PARTS` parts, and the tail read from the right fits (`_tail_misfit`)."""
    middle = fields[HEAD_FIELDS:tail_start]
    tail = dict(zip(TAILS[source], fields[tail_start:], strict=True))
    return len(middle) <= MAX_MESSAGE_PARTS and _tail_misfit(source, tail, middle) is None


def read_head(tag: str, fields: Sequence[str]) -> tuple[LogLevel, str] | Rejected:
    """The level and the host of a line's head (its first `HEAD_FIELDS` fields after the tag),
    or why the head is not sound."""
    level_text = fields[3].strip()
    level = LEVELS.get(level_text.upper())
    if level is None:
        return Rejected(
            reason=RejectReason.UNKNOWN_LEVEL,
            detail=f"/{tag}/ level {clip(visible_controls(level_text), 32)!r} is no log level",
        )
    host = fields[4].strip()
    if is_null(host):
        return Rejected(reason=RejectReason.NO_HOST, detail=f"/{tag}/ without a host")
    if NAME_CONTROLS.search(host):
        return Rejected(reason=RejectReason.NOT_TEXT, detail=f"/{tag}/ {HOST_CONTROLS}")
    return level, clip(host, MAX_FIELD_CHARS)


HOST_CONTROLS = "control characters in the host (it names the server)"


def _value(raw: str) -> str | None:
    """A field as published: stripped, control characters shown, `(null)` and empty as None."""
    return None if raw == NULL else field(visible_controls(raw))


def _tail_values(
    names: tuple[str, ...], fields: Sequence[str], tail_start: int
) -> dict[str, str | None]:
    """The tail's fields by name, as published; the unfilled ones (`(null)`, empty) left out
    (None: the event's default)."""
    values: dict[str, str | None] = {}
    for name, raw in zip(names, fields[tail_start:], strict=True):
        if raw != NULL and (value := field(visible_controls(raw))) is not None:
            values[name] = value
    return values


def _uncertain_text(parts: Sequence[str]) -> str | None:
    """What could not be split, as it came (clipped), for `message`."""
    return message_text([visible_controls(part) for part in parts])


def head_time(raw: str) -> str | None:
    """A head time as RFC 3339, or None when it is not a time (Butler SOS: empty)."""
    value = raw.strip()
    compact = _COMPACT.fullmatch(value)
    if compact is not None:
        return _from_compact(compact)
    match = _TIMESTAMP.fullmatch(value)
    return None if match is None else _rfc3339(match)


def looks_shifted(source: LogSource, last_part: str) -> bool:
    """Whether the last `;`-part of a message that absorbed extra parts reads as the source's
    first tail field pushed left by a `;` further right rather than as message text: for the
    engine a proxy session id (a GUID, `0`, a hash; an empty one only when the one read is
    empty too: `_tail_misfit`), for the others empty, `(null)`, an exception type or the front
    of one cut at a dot (`System.`). Such a line's split is uncertain."""
    last = last_part.strip()
    if source is LogSource.ENGINE:  # `LOAD … FROM x.qvd;` beside a proxy session id is text
        return _PROXY_SESSION_ID.fullmatch(last) is not None
    if is_null(last):
        return True
    return _EXCEPTION_PIECE.fullmatch(last) is not None


def _tail_misfit(
    source: LogSource, tail: dict[str, str], middle: Sequence[str]
) -> tuple[str, str] | None:
    """The first sign that the tail, read from the right, is shifted, as (name, value); None
    when it fits. A `;` in tail field k gives every field left of k its right neighbour's value
    and the first tail field's value to the message as its last part: the shapes catch the
    first, the checks on the message's last part the second."""
    for name, value in reversed(tail.items()):  # the nearest the `;` first
        shape = _SHAPES.get(name)
        if not is_null(value) and shape is not None and not shape.fullmatch(value.strip()):
            return name, value
    if source is LogSource.ENGINE and is_null(tail["proxy_session_id"]) and is_null(middle[-1]):
        # Qlik leaves the proxy session id unfilled at times: then a message ending in `;`
        # cannot be told from one that took an empty proxy session id pushed left.
        return "message", f"…;{middle[-1].strip()}"
    if is_null(tail["user_directory"]) and not is_null(tail["user_id"]):
        # A user id never comes without its directory; a `;` in the command puts one there.
        return "user_id", tail["user_id"]
    if "user" in tail and not any(is_null(tail[n]) for n in ("user", "user_directory", "user_id")):
        user = f"{tail['user_directory'].strip()}\\{tail['user_id'].strip()}"
        if tail["user"].strip().casefold() != user.casefold():
            return "user", tail["user"]
    if len(middle) == 1:
        return None
    if looks_shifted(source, middle[-1]):
        return "message", f"…;{middle[-1].strip()}"
    exception = tail.get("exception_message")
    if (  # `System.I;O.IOException`: cut inside a name, the rest may still read as a type
        exception is not None
        and _TYPE_FRONT.fullmatch(middle[-1])
        and _EXCEPTION_START.match(middle[-1] + exception.strip())
    ):
        return "message", f"…;{middle[-1]}"
    if (
        exception is not None
        and not is_null(exception)
        and not _EXCEPTION_START.match(exception.strip())
    ):
        # Extra `;` and an exception text: they could be in the message or in the exception.
        return "exception_message", exception
    return None


def iso_timestamp(raw: str) -> str | None:
    """Qlik's `20211109T153726.028+0200` or `2021-11-09T15:37:26.028+0200` (or log4net's
    seven fraction digits) as RFC 3339 with milliseconds (`2021-11-09T15:37:26.028+02:00`);
    text of another shape as it came (clipped)."""
    value = raw.strip()
    match = _RFC3339.fullmatch(value)
    if match is not None:  # log4net's XmlLayout: already RFC 3339 but for the digits
        millis, offset = match.groups()
        return millis + offset if offset else millis
    compact = _COMPACT.fullmatch(value)
    if compact is not None:
        return _from_compact(compact)
    if is_null(value):
        return None
    match = _TIMESTAMP.fullmatch(value)
    return clip(value, 64) if match is None else _rfc3339(match)


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})\d{0,4}(Z|[+-]\d{2}:\d{2})?")
"""What `_TIMESTAMP` reads that needs only its extra fraction digits cut (log4net's
`2026-11-04T09:15:02.4170000+01:00`): the milliseconds and the offset."""


_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})([+-]\d{2})(\d{2})")
"""Qlik's own time (`20211109T153726.028+0200`): what `_TIMESTAMP` reads in its most common
shape, converted without its general case's steps."""


def _from_compact(match: re.Match[str]) -> str:
    year, month, day, hour, minute, second, millis, hours, minutes = match.groups()
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}.{millis}{hours}:{minutes}"


def _rfc3339(match: re.Match[str]) -> str:
    """A time `_TIMESTAMP` matched, as RFC 3339 with milliseconds."""
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if fraction:
        text += f".{fraction[:3]:0<3}"  # milliseconds in both formats (XML has seven digits)
    if offset and offset != "Z" and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return text + (offset or "")


def complete_user(values: dict[str, str | None]) -> None:
    """Both forms of the user: `DIR\\user` (`user`) and directory and id, as Butler SOS's
    `user_full`. The scheduler logs either; the other services directory and id only. A field
    missing from `values` is None."""
    user, directory, user_id = (
        values.get("user"),
        values.get("user_directory"),
        values.get("user_id"),
    )
    if user is not None and directory is None and user_id is None and "\\" in user:
        directory, _, user_id = user.partition("\\")
        values["user_directory"], values["user_id"] = directory or None, user_id or None
    elif user is None and directory is not None and user_id is not None:
        values["user"] = f"{directory}\\{user_id}"
