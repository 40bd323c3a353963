"""Butler SOS's log-event lines (`/qseow-engine/;…` and the proxy, repository and scheduler
kinds) → `LogEvent`, losslessly when the message holds `;`. Pure: no I/O, no clock.

Every line has a head common to the four services and a tail of its own (the `conversionpattern`
of Butler SOS's `LocalLogConfig.xml` files, the same order as its handlers read)::

    /qseow-<source>/;row;ISO time;local time;level;host;logger;Windows user;message;<tail>

    engine      ProxySessionId;UserDirectory;UserId;EngineTimestamp;ProcessId;Exe Version;
                Server Started;Entry Type;SessionId;AppId
    proxy       exception;UserDirectory;UserId;Command;Result;Origin;Context
    repository  (as proxy)
    scheduler   exception;UserDirectory;UserId;User;TaskName;AppName;TaskId;AppId;ExecutionId

Butler SOS splits on `;` and shifts every field after a message that holds one. Here the head
is fixed from the left and the tail from the right, so the message is whatever lies between.
A `;` anywhere else shifts fields, and the line is refused (`misfit_fields`) rather than
mis-assigned. A `;` in tail field k gives each field left of k its right neighbour's value and
the first tail field's value to the message as its last part; a `;` in a head field gives each
later head field its left neighbour's value and the Windows user's to the message as its first
part. What catches it:

- shapes: GUIDs for session, app, task and execution ids; a GUID, `0` or a hex hash (never
  `(null)`) for the engine's proxy session id; a GUID or number for its process id; a dotted
  number for its version; times; an integer result code; a command with a letter in it; the
  scheduler's `user` as `DIR\\user` with no space in the directory; no `\\` in a user
  directory or id; a logger named as .NET names are; a Windows user `DOMAIN\\account`, always there;
- agreement: no user id without its user directory; the scheduler's `user` equal to them when
  all three are there;
- the message's last part, when it absorbed extra parts (`looks_shifted`): for the engine a
  proxy session id (a message ending in `;`, as a script error quoting `LOAD … FROM x.qvd;`,
  is text); for the others empty, `(null)`, an exception type or its front cut at a dot, or
  the front of a name that with the exception text makes a type (`System.I` + `O.IOException`);
  an exception text beside such a message must start with a namespace-qualified type;
- `MAX_MESSAGE_PARTS`: more parts than a real message has.

A control character (an ESC a script error quoted, say) is shown as U+FFFD in the message;
anywhere else in the line it refuses it (`not_text`), as in every other text format.

A `;` after the backslash of the Windows user cannot be caught (it reads as message text);
Windows forbids `;` in account names.

Rules that rest on hand-made fixtures, unverified against a real Qlik capture, and why each
stays as it is or was loosened (tests/fixtures/README.md lists them too):

- a message with `;` beside an exception text that does not start with a .NET type
  (`Unable to connect…`: Qlik's `EncodedExceptionPatternConverter` may write the exception's
  message alone) is refused: the `;` may be in either, and both readings are real. The refusal
  says so and points to qlik2mqtt's XML appenders, which send both intact;
- an engine line with an empty or `(null)` proxy session id is refused: Qlik's engine sets it
  always (`0` for its own work), and if it could be empty a message ending in `;` could not be
  told from a shifted one;
- a Windows user without a domain (`qlikservice`) is refused: Qlik's
  `ServiceUserNameCachedPatternConverter` writes `DOMAIN\account`, and a bare name would let a
  `;` in the logger or the host pass a logger fragment off as the user;
- a user directory without a user id is accepted (loosened: the shapes and the message's last
  part catch every shift that could produce one); a user id without its directory is refused
  (a `;` in the command puts one there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.core.events import LogEvent, LogLevel, LogSource, Rejected, RejectReason, SourceFormat
from bridge.inputs.fields import CONTROL_CHARS, clip, field, is_null, message_text, visible_controls

LOG_TAGS: dict[str, LogSource] = {
    "qseow-engine": LogSource.ENGINE,
    "qseow-proxy": LogSource.PROXY,
    "qseow-repository": LogSource.REPOSITORY,
    "qseow-scheduler": LogSource.SCHEDULER,
}
"""The tags (lower case, without slashes) of the four log-event kinds."""

HEAD_FIELDS = 7
"""After the tag: row, ISO time, local time, level, host, logger, Windows user."""

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
    "WARN": LogLevel.WARN,
    "WARNING": LogLevel.WARN,
    "ERROR": LogLevel.ERROR,
    "FATAL": LogLevel.FATAL,
}
_LOWER_LEVELS = frozenset({"INFO", "DEBUG", "TRACE", "VERBOSE", "NOTICE", "ALL"})

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
log it as a salted hash) a long run of hex digits. Never `(null)`: the engine always sets it."""
_USER = re.compile(r"[^\s\\/]+\\[^\\]+")
"""`DIR\\user`: a directory without spaces or slashes, a backslash, an id without one."""
_SERVICE_USER = re.compile(r"[^\\]+\\[^\\]+")
"""The Windows account a service runs as: `DOMAIN\\account` (`NT AUTHORITY\\…` has a space).
Always there (Qlik's `ServiceUserNameCachedPatternConverter`), so a `;` at the end of the logger
cannot leave it empty and pass."""
_LOGGER = re.compile(r"[A-Za-z_][\w.`+-]*")
"""A log4net logger: a dotted .NET name (`System.Scheduler.Scheduler.Slave.Tasks.ReloadTask`)."""
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
_REQUIRED = frozenset({"proxy_session_id"})
"""Tail fields that are never `(null)` or empty in real logs."""
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
    names = TAILS[source]
    wanted = HEAD_FIELDS + 1 + len(names)
    if len(fields) < wanted:
        return Rejected(
            reason=RejectReason.TOO_FEW_FIELDS,
            detail=f"/{tag}/ needs {wanted + 1} fields, got {len(fields) + 1}",
        )
    middle = fields[HEAD_FIELDS : len(fields) - len(names)]
    if len(middle) > MAX_MESSAGE_PARTS:
        return Rejected(
            reason=RejectReason.MISFIT_FIELDS,
            detail=f"/{tag}/ {len(fields) + 1} fields: a message of {len(middle)} ';'-separated "
            f"parts (at most {MAX_MESSAGE_PARTS})",
        )
    if any(
        CONTROL_CHARS.search(value) for value in (*fields[:HEAD_FIELDS], *fields[-len(names) :])
    ):
        return Rejected(
            reason=RejectReason.NOT_TEXT,
            detail=f"/{tag}/ control characters outside the message",
        )
    row, logged_at, local_time, level_text, host, logger, windows_user = (
        value.strip() for value in fields[:HEAD_FIELDS]
    )
    level = LEVELS.get(level_text.upper())
    if level is None:
        if level_text.upper() in _LOWER_LEVELS:
            return Rejected(
                reason=RejectReason.UNKNOWN_EVENT,
                detail=f"/{tag}/ level {level_text!r}: only WARN and above are log events",
            )
        return _misfit(tag, "level", level_text)
    head_misfit = _head_misfit(row, logged_at, local_time, host, logger, windows_user)
    if head_misfit is not None:
        return _misfit(tag, *head_misfit)
    tail = dict(zip(names, fields[len(fields) - len(names) :], strict=True))
    tail_misfit = _tail_misfit(source, tail, middle)
    if tail_misfit is not None:
        return _misfit(tag, *tail_misfit)
    values = {name: field(value) for name, value in tail.items()}
    complete_user(values)
    return LogEvent(
        source=source,
        level=level,
        server=field(host) or "unknown",
        source_format=SourceFormat.TAGGED,
        log_row=int(row) if row.isdigit() else None,
        log_timestamp=iso_timestamp(logged_at),
        subsystem=field(logger),
        windows_user=field(windows_user),
        message=message_text([visible_controls(part) for part in middle]),
        **values,
    )


def looks_shifted(source: LogSource, last_part: str) -> bool:
    """Whether the last `;`-part of a message that absorbed extra parts reads as the source's
    first tail field pushed left by a `;` further right rather than as message text: for the
    engine a proxy session id (a GUID, `0`, a hash; it is never empty, so a message ending in
    `;` is text), for the others empty, `(null)`, an exception type or the front of one cut at
    a dot (`System.`). Such a line is refused."""
    last = last_part.strip()
    if source is LogSource.ENGINE:  # never empty or `(null)`: `LOAD … FROM x.qvd;` is text
        return _PROXY_SESSION_ID.fullmatch(last) is not None
    if is_null(last):
        return True
    return _EXCEPTION_PIECE.fullmatch(last) is not None


def _head_misfit(
    row: str, logged_at: str, local_time: str, host: str, logger: str, windows_user: str
) -> tuple[str, str] | None:
    """The head's field that a `;` in an earlier head field (or a garbled line) put out of
    shape, as (name, value); None when the head fits. Values are stripped."""
    if not (row.isdigit() or is_null(row)):
        return "row", row
    if not (_TIMESTAMP.fullmatch(logged_at) or is_null(logged_at)):
        return "time", logged_at
    if not (_TIMESTAMP.fullmatch(local_time) or is_null(local_time)):
        return "local time", local_time
    if is_null(host):
        return "host", host
    if not _LOGGER.fullmatch(logger):
        return "logger", logger
    if not _SERVICE_USER.fullmatch(windows_user):  # never (null): the service always has one
        return "windows user", windows_user
    return None


def _tail_misfit(
    source: LogSource, tail: dict[str, str], middle: Sequence[str]
) -> tuple[str, str] | tuple[str, str, str] | None:
    """The first sign that the tail, read from the right, is shifted, as (name, value); None
    when it fits. A `;` in tail field k gives every field left of k its right neighbour's value
    and the first tail field's value to the message as its last part: the shapes catch the
    first, the checks on the message's last part the second."""
    for name, value in reversed(tail.items()):  # the nearest the `;` first
        shape = _SHAPES.get(name)
        if is_null(value):
            if name in _REQUIRED:
                return name, value
        elif shape is not None and not shape.fullmatch(value.strip()):
            return name, value
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
        return "exception_message", exception, _AMBIGUOUS_EXCEPTION
    return None


def iso_timestamp(raw: str) -> str | None:
    """Qlik's `20211109T153726.028+0200` or `2021-11-09T15:37:26.028+0200` (or log4net's
    seven fraction digits) as RFC 3339 with milliseconds (`2021-11-09T15:37:26.028+02:00`);
    text of another shape as it came (clipped)."""
    value = raw.strip()
    if is_null(value):
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return clip(value, 64)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if fraction:
        text += f".{fraction[:3]:0<3}"  # milliseconds in both formats (XML has seven digits)
    if offset and offset != "Z" and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return text + (offset or "")


def complete_user(values: dict[str, str | None]) -> None:
    """The scheduler logs a user as `DIR\\user`, or as directory and id: give both forms."""
    if "user" not in values:
        return
    user, directory, user_id = values["user"], values["user_directory"], values["user_id"]
    if user is not None and directory is None and user_id is None:
        directory, _, user_id = user.replace("/", "\\").partition("\\")
        values["user_directory"], values["user_id"] = directory or None, user_id or None
    elif user is None and directory is not None and user_id is not None:
        values["user"] = f"{directory}\\{user_id}"


_SHIFTED = "a ';' in a field other than the message?"
_AMBIGUOUS_EXCEPTION = (
    "the message holds ';' and so may the exception text, which does not start with a .NET "
    "type: where the message ends cannot be told (qlik2mqtt's XML appenders send both intact)"
)


def _misfit(tag: str, name: str, value: str, why: str = _SHIFTED) -> Rejected:
    return Rejected(
        reason=RejectReason.MISFIT_FIELDS,
        detail=f"/{tag}/ {name} {clip(value.strip(), 64)!r} does not fit: {why}",
    )
