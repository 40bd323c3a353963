"""Named on/off flags derived from state, which alert outputs follow (pure)."""

from __future__ import annotations

from bridge.core.events import Event, TaskEvent, TaskEventType
from bridge.core.state import FAILURE_TYPES, BridgeState, find_server, slug_of
from bridge.core.topics import host_key

RELOAD_FAILURE = "reload_failure"
ANY_TASK_ABORTED = "any_task_aborted"
SERVER_PREFIX = "server:"
"""`server:<name>`: a reload failure on that one server; the name is its host name (any case)
or its slug, found when the flag is read (`state.find_server`)."""


def validate_flag(name: str) -> str:
    if name in (RELOAD_FAILURE, ANY_TASK_ABORTED):
        return name
    if name.startswith(SERVER_PREFIX) and name[len(SERVER_PREFIX) :].strip():
        return SERVER_PREFIX + host_key(name[len(SERVER_PREFIX) :])
    raise ValueError(f"{name!r}: expected reload_failure, any_task_aborted or server:<host name>")


def flag_is_on(state: BridgeState, flag: str) -> bool:
    if flag == RELOAD_FAILURE:
        return state.reload_failure
    if flag == ANY_TASK_ABORTED:
        return bool(state.aborted)
    slug = find_server(state, flag[len(SERVER_PREFIX) :])
    return slug is not None and any(task.startswith(f"{slug}|") for task in state.failing)


def raises(state: BridgeState, flag: str, event: Event) -> bool:
    """Whether this (new, not duplicate) event is one that turns the flag on."""
    if not isinstance(event, TaskEvent):
        return False
    if flag == ANY_TASK_ABORTED:
        return event.event_type is TaskEventType.TASK_ABORTED
    if event.event_type not in FAILURE_TYPES:
        return False
    if flag == RELOAD_FAILURE:
        return True
    return find_server(state, flag[len(SERVER_PREFIX) :]) == slug_of(state, event.server)
