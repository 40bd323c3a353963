"""JSON payloads of the state and event topics (DESIGN §4). Pure functions of state/events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from bridge.core.bounded import STATE_PAYLOAD_BYTES, TEXT_BYTES, bounded, clip_text
from bridge.core.events import Event, LogEvent, TaskEvent, UserEvent
from bridge.core.log_payloads import log_event_payload, server_log_events, site_log_events
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState, ServerState, TaskRecord, UserKey
from bridge.core.times import iso_time


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (orjson: about three times faster than json on this path).

    orjson hands back its whole working buffer: 4 KiB for a 300-byte event, 500 KiB for a
    36 KB user list. Payloads wait in the outbox and the publish cache, so they are copied to
    their exact size (a copy of a few hundred bytes, against 4 KiB held per queued event)."""
    return memoryview(orjson.dumps(payload)).tobytes()


def user_name(directory: str, user_id: str, privacy: Privacy = PLAIN) -> str | None:
    treated = privacy.user_id(user_id)
    if treated is None:
        return None
    return f"{directory}\\{treated}" if directory else treated


def event_payload(event: Event, received_at: float, privacy: Privacy = PLAIN) -> dict[str, Any]:
    """The payload of `<server>/event/user`, `…/event/task` or `…/event/log`."""
    if isinstance(event, LogEvent):
        return log_event_payload(event, received_at, privacy)
    if isinstance(event, UserEvent):
        return {
            "event_type": event.event_type.value,
            "server": event.server,
            "user_directory": event.user_directory,
            "user_id": privacy.user_id(event.user_id),
            "origin": event.origin,
            "context": event.context,
            "message": privacy.redact(event.message, event.user_id),
            "log_timestamp": event.log_timestamp,
            "timestamp": iso_time(received_at),
        }
    return task_payload(event, received_at, privacy)


def task_payload(event: TaskEvent, received_at: float, privacy: Privacy = PLAIN) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_type": event.event_type.value,
        "server": event.server,
        "task_name": event.task_name,
        "app_name": event.app_name,
        "user": privacy.account(event.user),
        "task_id": event.task_id,
        "app_id": event.app_id,
        "execution_id": event.execution_id,
        "log_timestamp": event.log_timestamp,
        "log_level": event.log_level,
        "message": privacy.redact(event.message, privacy.user_part(event.user)),
        "timestamp": iso_time(received_at),
    }
    if event.session_id is not None:
        payload["session_id"] = event.session_id
    return payload


def _last_failed(record: TaskRecord | None, privacy: Privacy) -> dict[str, Any] | None:
    if record is None:
        return None
    payload = task_payload(record.event, record.received_at, privacy)
    if record.context is not None:
        payload["context"] = record.context  # from QRS, once it arrived (issue 26)
    return bounded(payload)  # whole on `<server>/event/task`


def user_names(server: ServerState, privacy: Privacy = PLAIN) -> list[str]:
    """The users with a session on `server`, as published, sorted."""
    if privacy.plain:
        keys = server.sessions
        names = [f"{directory}\\{user}" if directory else user for directory, user in keys]
    else:
        treated = (user_name(directory, user, privacy) for directory, user in server.sessions)
        names = [name for name in treated if name is not None]
    names.sort()
    return names


ATTRIBUTE_USERS_BYTES = 8192
"""The most JSON bytes of user names a server's state carries (`users_preview`), which its Home
Assistant entity shows as attributes: Home Assistant's recorder stores at most 16,384 bytes of
attributes per state, and warns."""

USERS_LIST_BYTES = 2 * 1024 * 1024
"""The default most JSON bytes of names on `<server>/users` (`state.users_max_bytes`)."""


def users_preview(names: list[str], budget: int = ATTRIBUTE_USERS_BYTES) -> list[str]:
    """The first of `names` whose JSON array takes at most `budget` bytes (UTF-8, as Home
    Assistant stores it): what a site has, however many users and however long their names."""
    shown: list[str] = []
    used = 2  # []
    for name in names:
        used += len(orjson.dumps(name)) + (1 if shown else 0)  # the name, and its comma
        if used > budget:
            break
        shown.append(name)
    return shown


def session_preview(
    server: ServerState,
    privacy: Privacy = PLAIN,
    budget: int = ATTRIBUTE_USERS_BYTES,
    known: Mapping[UserKey, str | None] | None = None,
) -> tuple[list[str], bool]:
    """`users_preview` and `users_truncated` of `<server>`: the users holding their session the
    longest whose names fit in `budget` bytes of JSON, sorted; and whether some were left out.

    O(what is shown), not O(users): a site of 50,000 users costs the same as one of 500, and
    the preview stays the same while those users stay (a login storm does not change it).
    `known`: names already treated (hashed) by user, which need not be hashed again."""
    if privacy.mode == "omitted":
        return [], False  # no names at all, so none left out by the budget
    shown: list[str] = []
    used = 2  # []
    for key in server.sessions:  # in the order the sessions started
        name = known[key] if known is not None and key in known else user_name(*key, privacy)
        if name is None:
            continue
        used += len(orjson.dumps(name)) + (1 if shown else 0)  # the name, and its comma
        if used > budget:
            shown.sort()
            return shown, True
        shown.append(name)
    shown.sort()
    return shown, False


def server_payload(
    server: ServerState,
    privacy: Privacy = PLAIN,
    preview: tuple[list[str], bool] | None = None,
) -> dict[str, Any]:
    """Retained `<base>/<server>`: what is happening on one Qlik Sense node, bounded whatever
    the site's size. `preview` is `session_preview(server, privacy)` when the caller has it
    already; every user's name is on `<server>/users` (`users_payload`)."""
    names, truncated = session_preview(server, privacy) if preview is None else preview
    return {
        "server": clip_text(server.host, TEXT_BYTES),  # whole on the event topics
        "active_sessions": len(server.sessions),
        "active_users": len(server.sessions),  # sessions are per user: one each
        "active_connections": server.active_connections,
        "users_preview": names,
        "users_truncated": truncated,
        "last_event_at": iso_time(server.last_event_at),
        "failed_tasks": server.failed_tasks,
        "aborted_tasks": server.aborted_tasks,
        "succeeded_tasks": server.succeeded_tasks,
        "last_failed_task": _last_failed(server.last_failed_task, privacy),
        "log_events": server_log_events(server, privacy),
    }


def server_state(
    server: ServerState,
    privacy: Privacy = PLAIN,
    preview: tuple[list[str], bool] | None = None,
) -> bytes:
    """`<base>/<server>` encoded, within `STATE_PAYLOAD_BYTES`: the users preview gives way by
    what the rest takes beyond it (only texts near their longest in every field come near)."""
    payload = server_payload(server, privacy, preview)
    data = encode(payload)
    excess = len(data) - STATE_PAYLOAD_BYTES
    if excess <= 0:
        return data
    budget = _json_list_bytes(payload["users_preview"]) - excess
    payload["users_preview"], payload["users_truncated"] = session_preview(
        server, privacy, max(budget, 2)
    )
    return encode(payload)


def users_payload(
    server: ServerState, names: list[str], budget: int = USERS_LIST_BYTES
) -> dict[str, Any]:
    """Retained `<base>/<server>/users`: every user with a session (`names`, from
    `user_names`), the first of them within `budget` bytes of JSON, and how many the budget
    left out."""
    shown = names if _json_list_bytes(names) <= budget else users_preview(names, budget)
    return {
        "server": server.host,
        "active_users": len(server.sessions),
        "users": shown,
        "users_left_out": len(names) - len(shown),
    }


def _json_list_bytes(names: list[str]) -> int:
    return len(orjson.dumps(names))


def distinct_users(state: BridgeState) -> int:
    """Users with a session anywhere on the site, each counted once."""
    return len(state.user_servers)


def site_payload(state: BridgeState, privacy: Privacy = PLAIN) -> dict[str, Any]:
    """Retained `<base>/site`: the whole Qlik Sense site, and the failure flag."""
    servers = state.servers.values()
    seen = [server.last_event_at for server in servers if server.last_event_at is not None]
    return {
        "servers": len(state.servers),
        "active_sessions": sum(len(server.sessions) for server in servers),
        "active_users": distinct_users(state),
        "active_connections": sum(server.active_connections for server in servers),
        "reload_failure": "ON" if state.reload_failure else "OFF",
        "failing_tasks": state.failing_tasks,
        "failed_tasks": sum(server.failed_tasks for server in servers),
        "aborted_tasks": sum(server.aborted_tasks for server in servers),
        "last_event_at": iso_time(max(seen, default=None)),
        "last_failure_at": iso_time(state.last_failure_at),
        "last_failed_task": _last_failed(state.last_failed_task, privacy),
        "log_events": site_log_events(state, privacy),
    }
