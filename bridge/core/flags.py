"""Named on/off flags derived from state, which alert outputs follow (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from bridge.core.events import Event, LogEvent, LogLevel, TaskEvent, TaskEventType
from bridge.core.state import FAILURE_TYPES, BridgeState, ServerState, find_server, slug_of
from bridge.core.topics import host_key

RELOAD_FAILURE = "reload_failure"
ANY_TASK_ABORTED = "any_task_aborted"
SERVER_PREFIX = "server:"
"""`server:<name>`: a reload failure on that one server; the name is its host name (any case)
or its slug, found when the flag is read (`state.find_server`)."""
LOG_ERROR = "log_error"
"""`log_error`: an ERROR or FATAL log event arrived since the last acknowledge, on any server;
`log_error:<server>`: on that one."""
LOG_CATEGORY = "log_category"
"""`log_category:<name>`: a log event of that category arrived since the last acknowledge, on
any server; `log_category:<name>:<server>`: on that one."""
_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_EXPECTED = (
    "expected reload_failure, any_task_aborted, server:<host name>, log_error, "
    "log_error:<host name>, log_category:<category> or log_category:<category>:<host name>"
)


def validate_flag(name: str) -> str:
    """The flag, its host name normalised; ValueError naming the forms when it is none.
    Whether a category exists is the config's check (`log_events.categories`)."""
    if name in (RELOAD_FAILURE, ANY_TASK_ABORTED, LOG_ERROR):
        return name
    kind, _, rest = name.partition(":")
    if kind == SERVER_PREFIX[:-1] and rest.strip():
        return SERVER_PREFIX + host_key(rest)
    if kind == LOG_ERROR and rest.strip():
        return f"{LOG_ERROR}:{host_key(rest)}"
    if kind == LOG_CATEGORY:
        category, colon, host = rest.partition(":")
        if _CATEGORY.fullmatch(category) and (not colon or host.strip()):
            return f"{LOG_CATEGORY}:{category}" + (f":{host_key(host)}" if colon else "")
    raise ValueError(f"{name!r}: {_EXPECTED}")


def flag_category(flag: str) -> str | None:
    """The category a `log_category:…` flag names, else None."""
    kind, _, rest = flag.partition(":")
    return rest.partition(":")[0] if kind == LOG_CATEGORY else None


@lru_cache(maxsize=256)
def _log_flag(flag: str) -> tuple[str | None, str | None] | None:
    """(category or None for log_error, host name or None for any server) of a log flag;
    read once per flag (the alert outputs ask for every event)."""
    kind, _, rest = flag.partition(":")
    if kind == LOG_ERROR:
        return None, rest or None
    if kind == LOG_CATEGORY:
        category, _, host = rest.partition(":")
        return category, host or None
    return None


def _servers(state: BridgeState, host: str | None) -> Iterable[ServerState]:
    if host is None:
        return state.servers.values()
    slug = find_server(state, host)
    return () if slug is None else (state.servers[slug],)


def is_task_flag(flag: str) -> bool:
    """Whether task events raise the flag (reload_failure, any_task_aborted, server:<host>)."""
    return flag in (RELOAD_FAILURE, ANY_TASK_ABORTED) or flag.startswith(SERVER_PREFIX)


def flagged_tasks(state: BridgeState, flag: str) -> list[str]:
    """The reload keys (`bridge.core.reloads.key`: `<slug>|<identity>`) a task flag is on
    for: unacknowledged failures (on one server for `server:<host>`), or aborts."""
    if flag == ANY_TASK_ABORTED:
        return list(state.aborted)
    if flag == RELOAD_FAILURE:
        return list(state.failing)
    slug = find_server(state, flag[len(SERVER_PREFIX) :])
    return [] if slug is None else [t for t in state.failing if t.startswith(f"{slug}|")]


def flag_is_on(state: BridgeState, flag: str) -> bool:
    if flag == RELOAD_FAILURE:
        return state.reload_failure
    if flag == ANY_TASK_ABORTED:
        return bool(state.aborted)
    log_flag = _log_flag(flag)
    if log_flag is not None:
        category, host = log_flag
        servers = _servers(state, host)
        if category is None:
            return any(server.log_error_at is not None for server in servers)
        return any(category in server.log_categories_at for server in servers)
    slug = find_server(state, flag[len(SERVER_PREFIX) :])
    return slug is not None and any(task.startswith(f"{slug}|") for task in state.failing)


def raises(state: BridgeState, flag: str, event: Event) -> bool:
    """Whether this (new, not duplicate) event is one that turns the flag on."""
    if isinstance(event, LogEvent):
        log_flag = _log_flag(flag)
        if log_flag is None:
            return False
        category, host = log_flag
        if category is None and event.level not in (LogLevel.ERROR, LogLevel.FATAL):
            return False
        if category is not None and event.category != category:
            return False
        return host is None or find_server(state, host) == slug_of(state, event.server)
    if not isinstance(event, TaskEvent):
        return False
    if flag == ANY_TASK_ABORTED:
        return event.event_type is TaskEventType.TASK_ABORTED
    if event.event_type not in FAILURE_TYPES or _log_flag(flag) is not None:
        return False
    if flag == RELOAD_FAILURE:
        return True
    return find_server(state, flag[len(SERVER_PREFIX) :]) == slug_of(state, event.server)
