"""Typed events parsed from Qlik Sense log datagrams, and the reasons a datagram is refused.

Plain slotted dataclasses: the parser builds every field from text it has already checked, so
validating again would only cost time (pydantic's validation was a tenth of the bridge's time
per event). Events are never changed after parsing. Where an event comes back from outside,
the state file, `TASK_EVENT_ADAPTER` validates it with pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import ConfigDict, TypeAdapter


class UserEventType(StrEnum):
    SESSION_START = "session_start"
    SESSION_STOP = "session_stop"
    CONNECTION_OPEN = "connection_open"
    CONNECTION_CLOSE = "connection_close"


class TaskEventType(StrEnum):
    TASK_FAILED = "task_failed"
    TASK_ABORTED = "task_aborted"
    TASK_SUCCEEDED = "task_succeeded"
    DISTRIBUTE_FINISHED = "distribute_finished"
    ENGINE_RELOAD_FAILED = "engine_reload_failed"


class SourceFormat(StrEnum):
    """Which appender layout produced the datagram."""

    LEGACY = "legacy"  # Butler <= v4 plain semicolon formats
    TAGGED = "tagged"  # Butler v5+/Butler SOS `/tag/;...` formats
    XML = "xml"  # log4net XmlLayoutSchemaLog4j (qlik2mqtt's own appenders)


class RejectReason(StrEnum):
    EMPTY = "empty"
    NOT_TEXT = "not_text"
    UNKNOWN_FORMAT = "unknown_format"
    TOO_FEW_FIELDS = "too_few_fields"
    BAD_XML = "bad_xml"
    UNKNOWN_EVENT = "unknown_event"
    TOO_LARGE = "too_large"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    UNKNOWN_LAYOUT = "unknown_layout"
    """An untagged `;` line whose field count is none of the layouts Butler shipped (4, 5
    ending in a level, 10 or more with a date and a level), nor the 4-field one with a name
    holding `;` that Qlik's default task name tells apart: which field is which cannot be told.
    Refused rather than guessed."""
    UNKNOWN_LEVEL = "unknown_level"
    """A log-event line (`/qseow-…/;`) whose level field holds no log4net level: the head is
    not sound (a `;` in the row or a time shifted it, or it is no log line), so nothing in it
    can be told apart."""
    NO_HOST = "no_host"
    """A log-event line whose host field is empty or `(null)`: no server to publish it for."""


@dataclass(slots=True, kw_only=True)
class UserEvent:
    """A proxy audit event: a session or a connection started or ended."""

    event_type: UserEventType
    server: str
    """The Qlik Sense host name as logged (not topic-safe; see bridge.core.topics)."""
    source_format: SourceFormat
    log_timestamp: str | None = None
    """The log's own time: ISO 8601 when it parsed, else the raw text."""
    log_level: str | None = None
    message: str | None = None
    user_directory: str | None = None
    user_id: str | None = None
    origin: str | None = None
    context: str | None = None


@dataclass(slots=True, kw_only=True)
class TaskEvent:
    """A scheduler or engine event about a reload/distribution task."""

    event_type: TaskEventType
    server: str
    source_format: SourceFormat
    log_timestamp: str | None = None
    log_level: str | None = None
    message: str | None = None
    task_name: str | None = None
    app_name: str | None = None
    user: str | None = None
    task_id: str | None = None
    app_id: str | None = None
    execution_id: str | None = None
    session_id: str | None = None

    __pydantic_config__ = ConfigDict(extra="forbid")  # for TASK_EVENT_ADAPTER


class LogSource(StrEnum):
    """The Qlik Sense service that logged a warning or an error."""

    ENGINE = "engine"
    PROXY = "proxy"
    REPOSITORY = "repository"
    SCHEDULER = "scheduler"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"

    @property
    def event_type(self) -> str:
        """`log_debug`, `log_info`, `log_warning`, `log_error` or `log_fatal`."""
        return _LOG_EVENT_TYPES[self]

    @property
    def counted(self) -> bool:
        """WARN and above: counted, flagged and alerted on. DEBUG and INFO are published only."""
        return self in ALERT_LEVELS


_LOG_EVENT_TYPES = {
    LogLevel.DEBUG: "log_debug",
    LogLevel.INFO: "log_info",
    LogLevel.WARN: "log_warning",
    LogLevel.ERROR: "log_error",
    LogLevel.FATAL: "log_fatal",
}
ALERT_LEVELS = frozenset({LogLevel.WARN, LogLevel.ERROR, LogLevel.FATAL})
"""The levels that count (rolling counts, the `log_error` flag, categories without a `level`,
Slack): warnings and errors. DEBUG and INFO log events are published on the same topic only."""


@dataclass(slots=True, kw_only=True)
class LogEvent:
    """A warning, error or fatal error a Qlik Sense service logged (Butler SOS's log events).

    The head is common to the four sources; each source fills its own fields of the tail and
    leaves the others None."""

    source: LogSource
    level: LogLevel
    server: str
    source_format: SourceFormat
    log_row: int | None = None
    log_timestamp: str | None = None
    """ISO 8601 with the node's UTC offset, as logged (`2026-05-06T14:23:45.123+02:00`)."""
    subsystem: str | None = None
    """The log4net logger (`System.Scheduler.Scheduler.Slave.Tasks.ReloadTask`)."""
    windows_user: str | None = None
    """The Windows account the service runs as."""
    message: str | None = None
    exception_message: str | None = None
    user_directory: str | None = None
    user_id: str | None = None
    # engine
    proxy_session_id: str | None = None
    engine_timestamp: str | None = None
    process_id: str | None = None
    engine_version: str | None = None
    server_started: str | None = None
    entry_type: str | None = None
    session_id: str | None = None
    app_id: str | None = None
    # proxy and repository
    command: str | None = None
    result_code: str | None = None
    origin: str | None = None
    context: str | None = None
    # scheduler
    user: str | None = None
    task_name: str | None = None
    app_name: str | None = None
    task_id: str | None = None
    execution_id: str | None = None
    fields_uncertain: bool = False
    """True when the line's tail could not be split with certainty (a `;` in a field other
    than the message, or fields missing): the head's fields are set, the rest of the line is in
    `message` as it came, and every tail field is None."""
    category: str | None = None
    """The first `log_events.categories` rule it matches: set once by the core path
    (`Bridge.handle_event`, bridge.core.categories) before anything else sees the event."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # for LOG_EVENT_ADAPTER

    @property
    def event_type(self) -> str:
        return self.level.event_type


@dataclass(slots=True, kw_only=True)
class QixPerfEvent:
    """One QIX engine request as Butler SOS's engine appender reports it (`/qseow-qix-perf/`,
    logger `QixPerformance.Engine.Engine`): the method, the object and app it worked on, how
    long it took and what memory it used, and the user whose session asked for it. Not an
    `Event`: it changes no state and is published only when `log_events.qix_performance` is
    enabled."""

    server: str
    level: LogLevel
    log_row: int | None = None
    log_timestamp: str | None = None
    subsystem: str | None = None
    windows_user: str | None = None
    proxy_session_id: str | None = None
    """`0` for the engine's own work (a scheduled reload), else the user's proxy session."""
    user_directory: str | None = None
    user_id: str | None = None
    user: str | None = None
    """`DIR\\user` when both are there (Butler SOS's `user_full`)."""
    engine_timestamp: str | None = None
    session_id: str | None = None
    app_id: str | None = None
    """The document (app) id: Qlik's `DocId`."""
    request_id: int | None = None
    method: str | None = None
    """`Global::OpenApp`, `Doc::GetAppLayout`, `GenericObject::GetLayout`, …"""
    process_time: float | None = None
    """Milliseconds, as the engine logs them; the same for the four below."""
    work_time: float | None = None
    lock_time: float | None = None
    validate_time: float | None = None
    traverse_time: float | None = None
    handle: int | None = None
    object_id: str | None = None
    net_ram: int | None = None
    """Bytes."""
    peak_ram: int | None = None
    """Bytes."""
    object_type: str | None = None
    activity: str = "user"
    """`user` (a user's session asked) or `non-user` (proxy session `0`: the engine's own work,
    a scheduled reload), as Butler SOS's `event_activity_source`."""


Event = UserEvent | TaskEvent | LogEvent

TASK_EVENT_ADAPTER = TypeAdapter(TaskEvent)
"""Validates a task event read back from the state file, and dumps one to JSON-ready data."""
LOG_EVENT_ADAPTER = TypeAdapter(LogEvent)
"""The same for a log event (the last log error)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A datagram that is not an event, with the reason it was refused."""

    reason: RejectReason
    detail: str
