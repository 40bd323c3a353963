"""Datagram bytes → a typed event or a rejection with a reason. Pure: no I/O, no clock.

Accepts every format of DESIGN §2 on any port: Butler's legacy semicolon lines, Butler v5+ and
Butler SOS tagged lines (`/proxy-session/;…`, `/scheduler-task-failed/;…`, …), Butler SOS's
log events (`/qseow-engine/;…`, `bridge.inputs.log_events`), log4net's XML event layout,
which is the only one that carries `;` inside names unambiguously, and qlik2mqtt's own
log-event appenders (`<qseow-engine:event …>`, `bridge.inputs.log_event_xml`).

Untagged lines are read only in the layouts Butler shipped, never guessed from another count
(`unknown_layout`): `host;Command;UserDirectory;UserId` (4 fields, sessions and connections);
`host;TaskName;AppName;UserId` (4); `host;TaskName;AppName;message;level` (5, the last a log
level); `host;TaskName;AppName;User;TaskId;AppId;date;level;ExecutionId;message` (10, extra `;`
in the message). A name holding `;` is told apart only as Qlik's default task name
(`default_task_split`); in the 10-field and tagged task layouts, whose ids, date and level are
anchored right of the names, names that cannot be told apart are left empty. Every step is linear
in the datagram's length (`bench/hotpath.py --worst`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.core.events import (
    Event,
    QixPerfEvent,
    Rejected,
    RejectReason,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.times import iso_millis
from bridge.inputs.fields import (
    CONTROL_CHARS,
    NULL,
    ControlCharacterError,
    clip,
    message_text,
    name_field,
)
from bridge.inputs.log4j_xml import Log4jEvent, XmlRefusedError, parse_log4j_event
from bridge.inputs.log_event_xml import is_log_event_xml, parse_log_event_xml
from bridge.inputs.log_events import LOG_TAGS, parse_log_fields
from bridge.inputs.qix_perf import QIX_TAG, parse_qix_fields

COMMANDS: dict[str, UserEventType] = {
    "start session": UserEventType.SESSION_START,
    "stop session": UserEventType.SESSION_STOP,
    "open connection": UserEventType.CONNECTION_OPEN,
    "close connection": UserEventType.CONNECTION_CLOSE,
}
USER_TAGS = frozenset(
    {"proxy-session", "proxy-connection", "qseow-proxy-session", "qseow-proxy-connection"}
)
SCHEDULER_TAGS: dict[str, TaskEventType] = {
    "scheduler-reload-failed": TaskEventType.TASK_FAILED,
    "scheduler-task-failed": TaskEventType.TASK_FAILED,
    "scheduler-reloadtask-failed": TaskEventType.TASK_FAILED,
    "scheduler-reload-aborted": TaskEventType.TASK_ABORTED,
    "scheduler-task-aborted": TaskEventType.TASK_ABORTED,
    "scheduler-reloadtask-success": TaskEventType.TASK_SUCCEEDED,
    "scheduler-task-success": TaskEventType.TASK_SUCCEEDED,
    "scheduler-distribute": TaskEventType.DISTRIBUTE_FINISHED,
}
ENGINE_RELOAD_TAG = "engine-reload-failed"
DEFAULT_TASK_PREFIX = "Reload task of "
"""Qlik's name for an app's reload task made in the hub or the QMC: `Reload task of <app>`."""

_LOG_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:[,.](\d{1,7}))?")
_LOG_LEVEL = re.compile(r"(?i:DEBUG|INFO|WARN|WARNING|ERROR|FATAL|TRACE|NOTICE|CRITICAL)")
# Messages the scheduler logs for a reload that failed for good (see appenders/scheduler).
_FAILURE_MARKERS = (
    "max retries reached",
    "failed to start session",
    "could not reserve an executor",
    "finishedfail",
    "reload failed",
)


def parse_datagram(data: bytes, max_bytes: int = 65535) -> Event | QixPerfEvent | Rejected:
    """Parse one UDP datagram into an event, or say why it is not one."""
    if len(data) > max_bytes:
        return Rejected(reason=RejectReason.TOO_LARGE, detail=f"{len(data)} bytes > {max_bytes}")
    text = decode(data)
    if text is None:
        return Rejected(reason=RejectReason.NOT_TEXT, detail="neither UTF-8 nor windows-1252")
    text = text.lstrip("\ufeff").rstrip("\r\n")  # a byte-order mark some encoders write
    start = text.lstrip()[:1]
    if not start:
        return Rejected(reason=RejectReason.EMPTY, detail="no text")
    try:
        if start == "<":
            return _parse_xml(text)
        if CONTROL_CHARS.search(text) and not _is_log_line(text):  # a log line's message may
            return Rejected(
                reason=RejectReason.NOT_TEXT, detail="control characters in a text line"
            )
        return _parse_semicolon(text.split(";"))
    except ControlCharacterError as exc:  # in a name: tab, a line break, C1 (fields.NAME_CONTROLS)
        return Rejected(reason=RejectReason.NOT_TEXT, detail=str(exc))


def decode(data: bytes) -> str | None:
    """Strict UTF-8 first (Butler's newer appenders), then windows-1252 (log4net's default)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return None


def _is_log_line(text: str) -> bool:
    """Whether a text line is a Butler SOS log event (`/qseow-engine/;…`), whose message may
    hold a control character (bridge.inputs.log_events shows it as U+FFFD)."""
    tag = text.partition(";")[0].strip().strip("/").lower()
    return tag in LOG_TAGS or tag == QIX_TAG


def _parse_semicolon(fields: list[str]) -> Event | QixPerfEvent | Rejected:
    head = fields[0].strip()
    if head.startswith("/") and len(head) > 2:
        return _parse_tagged(head.strip("/").lower(), fields[1:])
    return _parse_legacy(fields)


def _parse_tagged(tag: str, fields: list[str]) -> Event | QixPerfEvent | Rejected:
    if tag in LOG_TAGS:  # Butler SOS's warnings and errors (bridge.inputs.log_events)
        return parse_log_fields(tag, fields)
    if tag == QIX_TAG:  # Butler SOS's QIX performance lines (bridge.inputs.qix_perf)
        return parse_qix_fields(fields)
    if tag in USER_TAGS:
        # host;Command;UserDirectory;UserId;Origin;Context;message
        if len(fields) < 4:
            return _too_few(f"/{tag}/", 5, len(fields) + 1)
        return _user_event(fields, SourceFormat.TAGGED)
    if tag in SCHEDULER_TAGS:
        # host;TaskName;AppName;User;TaskId;AppId;date;level;ExecutionId;message
        if len(fields) < 10:
            return _too_few(f"/{tag}/", 11, len(fields) + 1)
        return _long_task_event(fields, SCHEDULER_TAGS[tag], SourceFormat.TAGGED)
    if tag == ENGINE_RELOAD_TAG:
        # host;AppId;SessionId;UserDirectory;UserId;date;level;message
        if len(fields) < 8:
            return _too_few(f"/{tag}/", 9, len(fields) + 1)
        return _engine_event(fields)
    return Rejected(reason=RejectReason.UNKNOWN_FORMAT, detail=f"unknown tag /{clip(tag, 64)}/")


def _parse_legacy(fields: list[str]) -> Event | Rejected:
    """The untagged layouts Butler shipped (see the module's docstring), and no other."""
    count = len(fields)
    if count == 1:
        return Rejected(reason=RejectReason.UNKNOWN_FORMAT, detail="no ';' separated fields")
    if count < 4:
        return _too_few("legacy", 4, count)
    if fields[1].strip().lower() in COMMANDS:
        if count != 4:  # host;Command;UserDirectory;UserId
            return _unknown_layout(count, "a session or connection line has 4")
        return _user_event(fields, SourceFormat.LEGACY)
    if count == 4:  # host;TaskName;AppName;UserId: Butler <= v4 sent only failures this way
        return _legacy_task(fields[0], fields[1], fields[2], user=fields[3])
    if count == 5 and _LOG_LEVEL.fullmatch(fields[4].strip()):
        # host;TaskName;AppName;message;level: Butler's first scheduler appender
        return _legacy_task(fields[0], fields[1], fields[2], message=fields[3:4], level=fields[4])
    if count >= 10 and (at := _find_date_anchor(fields)) is not None:
        # host;TaskName;AppName;User;TaskId;AppId;date;level;ExecutionId;message
        return _long_task_event(fields, TaskEventType.TASK_FAILED, SourceFormat.LEGACY, at)
    if _LOG_LEVEL.fullmatch(fields[-1].strip()):
        # host;TaskName;AppName;message;level with a `;` in a name or in the message: which
        # `;` ends which field cannot be told. The failure is published all the same, its
        # text whole in the message and the names left empty (never a piece of one in another).
        return _legacy_task(fields[0], None, None, message=fields[1:-1], level=fields[-1])
    names = default_task_split(fields[1:-1])  # the 4-field layout, `;` in the names
    if names is not None:
        return _legacy_task(fields[0], *names, user=fields[-1])
    return _unknown_layout(count, "a task line has 4, 5 (ending in a level) or 10")


def _legacy_task(
    host: str,
    task_name: str | None,
    app_name: str | None,
    *,
    user: str | None = None,
    message: Sequence[str] | None = None,
    level: str | None = None,
) -> TaskEvent:
    return TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server=_host(host),
        source_format=SourceFormat.LEGACY,
        task_name=name_field(task_name, "the task name"),
        app_name=name_field(app_name, "the app name"),
        user=name_field(user, "the user"),
        message=None if message is None else message_text(message),
        log_level=name_field(level, "the level"),
    )


def _unknown_layout(count: int, layouts: str) -> Rejected:
    return Rejected(
        reason=RejectReason.UNKNOWN_LAYOUT,
        detail=f"untagged line of {count} fields: {layouts} (Butler's layouts); "
        "a name holding ';' is told apart only as Qlik's default 'Reload task of <app>'",
    )


def _user_event(fields: Sequence[str], source_format: SourceFormat) -> Event | Rejected:
    command = fields[1].strip().lower()
    event_type = COMMANDS.get(command)
    if event_type is None:
        return Rejected(
            reason=RejectReason.UNKNOWN_EVENT, detail=f"command {clip(fields[1], 64)!r}"
        )
    if source_format is SourceFormat.LEGACY:
        user_id, origin, context, message = name_field(fields[3], "the user id"), None, None, None
    else:
        user_id = name_field(fields[3], "the user id")
        origin = name_field(fields[4], "the origin") if len(fields) > 4 else None
        context = name_field(fields[5], "the context") if len(fields) > 5 else None
        message = message_text(fields[6:])
    return UserEvent(
        event_type=event_type,
        server=_host(fields[0]),
        source_format=source_format,
        user_directory=name_field(fields[2], "the user directory"),
        user_id=user_id,
        origin=origin,
        context=context,
        message=message,
    )


def _long_task_event(
    fields: Sequence[str],
    event_type: TaskEventType,
    source_format: SourceFormat,
    at: int | None = None,
) -> TaskEvent:
    """host;TaskName;AppName;User;TaskId;AppId;date;level;ExecutionId;message…

    The message is last: extra fields from the anchor's execution id on are its own. The date
    and level anchor the fields right of the names; extra fields left of them mean a name holds
    `;`, and the two are told apart only as Qlik's default task name (`default_task_split`):
    otherwise both are left empty (the ids, the user, the time and the message still stand).
    """
    if at is None:
        at = _find_date_anchor(fields)
    if at is None:
        at = 6  # a date of another shape: the layout's own positions
    names = fields[1 : at - 3]
    split = (names[0], names[1]) if len(names) == 2 else default_task_split(names)
    task_name, app_name = split or (None, None)
    return TaskEvent(
        event_type=event_type,
        server=_host(fields[0]),
        source_format=source_format,
        task_name=name_field(task_name, "the task name"),
        app_name=name_field(app_name, "the app name"),
        user=name_field(fields[at - 3], "the user"),
        task_id=name_field(fields[at - 2], "the task id"),
        app_id=name_field(fields[at - 1], "the app id"),
        log_timestamp=log_date(fields[at]),
        log_level=name_field(fields[at + 1], "the level"),
        execution_id=name_field(fields[at + 2], "the execution id")
        if len(fields) > at + 2
        else None,
        message=message_text(fields[at + 3 :]),
    )


def _engine_event(fields: Sequence[str]) -> TaskEvent:
    directory = name_field(fields[3], "the user directory")
    user_id = name_field(fields[4], "the user id")
    user = "\\".join(part for part in (directory, user_id) if part) or None
    return TaskEvent(
        event_type=TaskEventType.ENGINE_RELOAD_FAILED,
        server=_host(fields[0]),
        source_format=SourceFormat.TAGGED,
        app_id=name_field(fields[1], "the app id"),
        session_id=name_field(fields[2], "the session id"),
        user=user,
        log_timestamp=log_date(fields[5]),
        log_level=name_field(fields[6], "the level"),
        message=message_text(fields[7:]),
    )


def _find_date_anchor(fields: Sequence[str]) -> int | None:
    """Index of the log date (followed by a level) in a long task line, if any."""
    for index in range(6, len(fields) - 1):
        if _LOG_DATE.fullmatch(fields[index].strip()) and _LOG_LEVEL.fullmatch(
            fields[index + 1].strip()
        ):
            return index
    return None


def default_task_split(names: Sequence[str]) -> tuple[str, str] | None:
    """TaskName;AppName, split on `;` into `names`, where a name holds `;`: told apart only
    when the task bears Qlik's default name for the app's reload task, `Reload task of <app>`
    (one cut at most can make it so); None otherwise: which `;` ends the task name cannot be
    told, and a guess would put a piece of one name in the other. Linear in the text."""
    if len(names) < 2:
        return None
    text = ";".join(names)
    cut, odd = divmod(len(text) + len(DEFAULT_TASK_PREFIX) - 1, 2)
    if (
        odd
        or not text.startswith(DEFAULT_TASK_PREFIX)
        or cut >= len(text)
        or text[cut] != ";"
        or text[len(DEFAULT_TASK_PREFIX) : cut] != text[cut + 1 :]
    ):
        return None
    return text[:cut], text[cut + 1 :]


def _parse_xml(text: str) -> Event | Rejected:
    if is_log_event_xml(text):  # qlik2mqtt's log-event appenders (bridge.inputs.log_event_xml)
        return parse_log_event_xml(text)
    try:
        event = parse_log4j_event(text)
    except XmlRefusedError as exc:
        return Rejected(reason=RejectReason.BAD_XML, detail=clip(str(exc), 200))
    props = event.properties
    host = props.get("log4jmachinename") or props.get("log4net:HostName")
    if not host:
        return Rejected(reason=RejectReason.UNKNOWN_EVENT, detail="XML event without a host")
    timestamp = None if event.timestamp_ms is None else iso_millis(event.timestamp_ms)
    if "Command" in props:
        event_type = COMMANDS.get(props["Command"].strip().lower())
        if event_type is None:
            return Rejected(
                reason=RejectReason.UNKNOWN_EVENT, detail=f"command {clip(props['Command'], 64)!r}"
            )
        return UserEvent(
            event_type=event_type,
            server=_host(host),
            source_format=SourceFormat.XML,
            user_directory=name_field(props.get("UserDirectory"), "UserDirectory"),
            user_id=name_field(props.get("UserId"), "UserId"),
            origin=name_field(props.get("Origin"), "Origin"),
            context=name_field(props.get("Context"), "Context"),
            message=message_text([event.message]),  # shown visible by parse_log4j_event
            log_timestamp=timestamp,
            log_level=name_field(event.level, "the level"),
        )
    task_type = _classify_task(event)
    if task_type is None:
        return Rejected(
            reason=RejectReason.UNKNOWN_EVENT,
            detail=f"logger {clip(event.logger, 100)!r}: {clip(event.message, 100)!r}",
        )
    user = props.get("User") or props.get("UserId")
    if task_type is TaskEventType.ENGINE_RELOAD_FAILED and props.get("UserDirectory") and user:
        user = f"{props['UserDirectory']}\\{user}"
    return TaskEvent(
        event_type=task_type,
        server=_host(host),
        source_format=SourceFormat.XML,
        task_name=name_field(props.get("TaskName"), "TaskName"),
        app_name=name_field(props.get("AppName"), "AppName"),
        user=name_field(user, "User"),
        task_id=name_field(props.get("TaskId"), "TaskId"),
        app_id=name_field(props.get("AppId"), "AppId"),
        execution_id=name_field(props.get("ExecutionId"), "ExecutionId"),
        session_id=name_field(props.get("SessionId"), "SessionId"),
        message=message_text([event.message]),  # shown visible by parse_log4j_event
        log_timestamp=timestamp,
        log_level=name_field(event.level, "the level"),
    )


def _classify_task(event: Log4jEvent) -> TaskEventType | None:
    logger = event.logger.lower()
    message = event.message.lower()
    is_error = event.level.upper() in ("ERROR", "FATAL")
    if "engine" in logger:
        return TaskEventType.ENGINE_RELOAD_FAILED if is_error and "reload" in message else None
    if "scheduler" not in logger and "TaskName" not in event.properties:
        return None
    if "finishedsuccess" in message:
        return TaskEventType.TASK_SUCCEEDED
    if "aborting" in message or "aborted" in message:
        return TaskEventType.TASK_ABORTED
    if "distribute task" in message:
        return TaskEventType.DISTRIBUTE_FINISHED
    if is_error or any(marker in message for marker in _FAILURE_MARKERS):
        return TaskEventType.TASK_FAILED
    return None


def log_date(raw: str) -> str | None:
    """log4net's `%date` (`2026-05-06 14:23:45,123`) as ISO 8601; the raw text otherwise."""
    value = raw.strip()
    if not value or value == NULL:
        return None
    match = _LOG_DATE.fullmatch(value)
    if match is None:
        return clip(value, 64)
    day, time, fraction = match.groups()
    return f"{day}T{time}.{fraction}" if fraction else f"{day}T{time}"


def _host(value: str) -> str:
    return name_field(value, "the host") or "unknown"


def _too_few(layout: str, wanted: int, got: int) -> Rejected:
    return Rejected(
        reason=RejectReason.TOO_FEW_FIELDS, detail=f"{layout} needs {wanted} fields, got {got}"
    )
