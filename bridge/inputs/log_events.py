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
A `;` anywhere else shifts the tail: the fields with a shape of their own (ids, result codes,
timestamps, the scheduler's `DIR\\user`) catch that, and the line is refused
(`misfit_fields`) rather than mis-assigned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.core.events import LogEvent, LogLevel, LogSource, Rejected, RejectReason, SourceFormat

MAX_FIELD_CHARS = 1024
MAX_MESSAGE_CHARS = 8192
NULL = "(null)"

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
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
"""A GUID, or `0` (the engine's proxy session id for its own sessions)."""
_SHAPES: dict[str, re.Pattern[str]] = {
    "proxy_session_id": _ID,
    "process_id": _ID,
    "session_id": _ID,
    "app_id": _ID,
    "task_id": _ID,
    "execution_id": _ID,
    "engine_timestamp": _TIMESTAMP,
    "server_started": _TIMESTAMP,
    "result_code": re.compile(r"-?\d{1,12}"),
    "user": re.compile(r"[^\\/]+[\\/][^\\/]+"),
}
"""Fields a `;` elsewhere in the tail would move text into, and what each must look like."""
_EXCEPTION_START = re.compile(r"[A-Za-z_][\w.`+]*(?:Exception|Error|Fault)\b")
"""How an exception text starts (`System.Net.WebException: …`)."""


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
    row, logged_at, _local_time, level_text, host, logger, windows_user = (
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
    if not (row.isdigit() or _null(row)):
        return _misfit(tag, "row", row)
    if not (_TIMESTAMP.fullmatch(logged_at) or _null(logged_at)):
        return _misfit(tag, "time", logged_at)
    if _null(host):
        return _misfit(tag, "host", host)
    tail = dict(zip(names, fields[len(fields) - len(names) :], strict=True))
    for name, value in tail.items():
        shape = _SHAPES.get(name)
        if shape is not None and not (_null(value) or shape.fullmatch(value.strip())):
            return _misfit(tag, name, value)
    middle = fields[HEAD_FIELDS : len(fields) - len(names)]
    exception = tail.get("exception_message", "")
    if len(middle) > 1 and not _null(exception) and not _EXCEPTION_START.match(exception.strip()):
        # Extra `;` and an exception text: they could be in the message or in the exception.
        return _misfit(tag, "exception_message", exception)
    values = {name: _field(value) for name, value in tail.items()}
    _complete_user(values)
    return LogEvent(
        source=source,
        level=level,
        server=_field(host) or "unknown",
        source_format=SourceFormat.TAGGED,
        log_row=int(row) if row.isdigit() else None,
        log_timestamp=iso_timestamp(logged_at),
        subsystem=_field(logger),
        windows_user=_field(windows_user),
        message=_message(middle),
        **values,
    )


def iso_timestamp(raw: str) -> str | None:
    """Qlik's `20211109T153726.028+0200` or `2021-11-09T15:37:26.028+0200` as RFC 3339
    (`2021-11-09T15:37:26.028+02:00`); text of another shape as it came (clipped)."""
    value = raw.strip()
    if _null(value):
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return _clip(value, 64)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if fraction:
        text += f".{fraction}"
    if offset and offset != "Z" and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return text + (offset or "")


def _complete_user(values: dict[str, str | None]) -> None:
    """The scheduler logs a user as `DIR\\user`, or as directory and id: give both forms."""
    if "user" not in values:
        return
    user, directory, user_id = values["user"], values["user_directory"], values["user_id"]
    if user is not None and directory is None and user_id is None:
        directory, _, user_id = user.replace("/", "\\").partition("\\")
        values["user_directory"], values["user_id"] = directory or None, user_id or None
    elif user is None and directory is not None and user_id is not None:
        values["user"] = f"{directory}\\{user_id}"


def _null(value: str) -> bool:
    value = value.strip()
    return not value or value == NULL


def _field(value: str) -> str | None:
    """A field's value, or None for log4net's `(null)` and empty fields."""
    value = value.strip()
    if not value or value == NULL:
        return None
    return _clip(value, MAX_FIELD_CHARS)


def _message(parts: Sequence[str]) -> str | None:
    message = ";".join(parts).strip()
    if not message or message == NULL:
        return None
    return _clip(message, MAX_MESSAGE_CHARS)


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _misfit(tag: str, name: str, value: str) -> Rejected:
    return Rejected(
        reason=RejectReason.MISFIT_FIELDS,
        detail=f"/{tag}/ {name} {_clip(value.strip(), 64)!r} does not fit: a ';' in a field "
        "other than the message?",
    )
