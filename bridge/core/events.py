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
    MISFIT_FIELDS = "misfit_fields"
    """A log event whose fields do not fit its source's layout even with the message taken as
    what lies between the head and the tail: a field other than the message holds `;`, or a
    field has the wrong shape. Refused rather than mis-assigned."""


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
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"

    @property
    def event_type(self) -> str:
        """`log_warning`, `log_error` or `log_fatal`."""
        return _LOG_EVENT_TYPES[self]


_LOG_EVENT_TYPES = {
    LogLevel.WARN: "log_warning",
    LogLevel.ERROR: "log_error",
    LogLevel.FATAL: "log_fatal",
}


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
    category: str | None = None
    """The first `log_events.categories` rule it matches: set once by the core path
    (`Bridge.handle_event`, bridge.core.categories) before anything else sees the event."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # for LOG_EVENT_ADAPTER

    @property
    def event_type(self) -> str:
        return self.level.event_type


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
