"""Payloads of the log events: `<server>/event/log`, and the `log_events` object of the
retained server and site state. Pure functions of events and state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.core.bounded import bounded
from bridge.core.events import LogEvent, LogSource, QixPerfEvent
from bridge.core.logcounts import LevelCounts, summed
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState, LogRecord, ServerState
from bridge.core.times import iso_time


def redacted(text: str | None, event: LogEvent, privacy: Privacy) -> str | None:
    """A text of `event` (its message, its exception) with every user it names treated as
    `privacy` publishes them: the user id, the scheduler's user and the Windows account."""
    if text is None or privacy.plain:
        return text
    return privacy.redact(
        text,
        event.user_id,
        privacy.user_part(event.user),
        privacy.user_part(event.windows_user),
    )


def log_event_payload(
    event: LogEvent, received_at: float, privacy: Privacy = PLAIN
) -> dict[str, Any]:
    """`<server>/event/log`: every field of every source, None where this one lacks it."""
    if privacy.plain:  # the users as they came: nothing to treat
        message, exception = event.message, event.exception_message
        windows_user, user_id, user = event.windows_user, event.user_id, event.user
    else:
        message = redacted(event.message, event, privacy)
        exception = redacted(event.exception_message, event, privacy)
        windows_user = privacy.account(event.windows_user)
        user_id, user = privacy.user_id(event.user_id), privacy.account(event.user)
    return {
        "event_type": event.level.event_type,
        "source": event.source.value,
        "level": event.level.value,
        "server": event.server,
        "subsystem": event.subsystem,
        "message": message,
        "exception_message": exception,
        "windows_user": windows_user,
        "user_directory": event.user_directory,
        "user_id": user_id,
        "user": user,
        # the fields of some sources only, as they came (None where a source lacks one)
        "task_name": event.task_name,
        "app_name": event.app_name,
        "task_id": event.task_id,
        "app_id": event.app_id,
        "execution_id": event.execution_id,
        "session_id": event.session_id,
        "proxy_session_id": event.proxy_session_id,
        "process_id": event.process_id,
        "engine_timestamp": event.engine_timestamp,
        "engine_version": event.engine_version,
        "server_started": event.server_started,
        "entry_type": event.entry_type,
        "command": event.command,
        "result_code": event.result_code,
        "origin": event.origin,
        "context": event.context,
        "log_row": event.log_row,
        "fields_uncertain": event.fields_uncertain,
        "category": event.category,
        "log_timestamp": event.log_timestamp,
        "timestamp": iso_time(received_at),
    }


_QIX_FIELDS = (
    "level",
    "log_row",
    "subsystem",
    "proxy_session_id",
    "user_directory",
    "engine_timestamp",
    "session_id",
    "app_id",
    "request_id",
    "method",
    "process_time",
    "work_time",
    "lock_time",
    "validate_time",
    "traverse_time",
    "handle",
    "object_id",
    "net_ram",
    "peak_ram",
    "object_type",
    "activity",
)


def qix_performance_payload(
    event: QixPerfEvent,
    received_at: float,
    privacy: Privacy = PLAIN,
    app_name: str | None = None,
) -> dict[str, Any]:
    """`<server>/event/qix_performance`: one engine request, Butler SOS's fields (`app_name`
    as known from other events: the line has the id only)."""
    payload: dict[str, Any] = {"event_type": "qix_performance", "server": event.server}
    for name in _QIX_FIELDS:
        payload[name] = getattr(event, name)
    payload["app_name"] = app_name
    payload["level"] = event.level.value
    payload["user_id"] = privacy.user_id(event.user_id)
    payload["user"] = privacy.account(event.user)
    payload["windows_user"] = privacy.account(event.windows_user)
    payload["log_timestamp"] = event.log_timestamp
    payload["timestamp"] = iso_time(received_at)
    return payload


def _counts(window: list[int], total: list[int]) -> dict[str, int]:
    return {
        "warnings": window[0],
        "errors": window[1],
        "fatals": window[2],
        "warnings_total": total[0],
        "errors_total": total[1],
        "fatals_total": total[2],
    }


def _by_source(counters: list[dict[LogSource, LevelCounts]]) -> dict[str, Any]:
    """The counts of every server in `counters`, overall and per source (all four, always)."""
    every = [counts for server in counters for counts in server.values()]
    payload: dict[str, Any] = _counts(*summed(every))
    payload["sources"] = {
        source.value: _counts(*summed([s[source] for s in counters if source in s]))
        for source in LogSource
    }
    return payload


def _last_error(
    record: LogRecord | None, privacy: Privacy, with_server: bool
) -> dict[str, Any] | None:
    if record is None:
        return None
    event = record.event
    last: dict[str, Any] = {"server": event.server} if with_server else {}
    last.update(
        time=iso_time(record.received_at),
        log_timestamp=event.log_timestamp,
        level=event.level.value,
        source=event.source.value,
        subsystem=event.subsystem,
        message=redacted(event.message, event, privacy),
        category=event.category,
    )
    return bounded(last)  # whole on `<server>/event/log`


def server_log_events(server: ServerState, privacy: Privacy = PLAIN) -> dict[str, Any]:
    """`log_events` in `<base>/<server>`: warnings, errors and fatals in the rolling window
    and since start, overall and per source, and the last error."""
    payload = _by_source([server.log_counts])
    payload["last_error"] = _last_error(server.last_log_error, privacy, with_server=False)
    payload["unacknowledged"] = _unacknowledged([server])
    return payload


def _unacknowledged(servers: Iterable[ServerState]) -> dict[str, Any]:
    """What arrived since the last acknowledge (the alert outputs' `log_error` and
    `log_category:<name>` flags): an ERROR or FATAL, and which categories."""
    error = False
    categories: set[str] = set()
    for server in servers:
        error = error or server.log_error_at is not None
        categories.update(server.log_categories_at)
    return {"error": error, "categories": sorted(categories)}


def site_log_events(state: BridgeState, privacy: Privacy = PLAIN) -> dict[str, Any]:
    """`log_events` in `<base>/site`: the servers' counts summed, and the last error."""
    payload = _by_source([server.log_counts for server in state.servers.values()])
    payload["last_error"] = _last_error(state.last_log_error, privacy, with_server=True)
    payload["unacknowledged"] = _unacknowledged(state.servers.values())
    return payload
