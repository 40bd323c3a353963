"""Live state: sessions, connections and task outcomes per server, and the failure flag.

No I/O and no clock: every function takes `now` (Unix seconds) and mutates the state it is
given in O(1) per event, returning what changed so publishers know which topics are dirty.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

from bridge.events import Event, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.topics import server_slug

UserKey = tuple[str, str]
"""(user_directory, user_id); a missing part is ''."""

FAILURE_TYPES = frozenset({TaskEventType.TASK_FAILED, TaskEventType.ENGINE_RELOAD_FAILED})


@dataclass(frozen=True, slots=True)
class StateSettings:
    stale_after: float | None
    dedup_window: float
    auto_clear_after: float | None


@dataclass(slots=True)
class TaskRecord:
    """A task event as kept in state: the event and when the bridge received it."""

    event: TaskEvent
    received_at: float


@dataclass(slots=True)
class Connections:
    count: int
    last_seen: float


@dataclass(slots=True)
class ServerState:
    host: str
    sessions: dict[UserKey, float] = field(default_factory=dict)
    """User → when a session event for that user was last seen."""
    connections: dict[UserKey, Connections] = field(default_factory=dict)
    last_event_at: float | None = None
    failed_tasks: int = 0
    aborted_tasks: int = 0
    succeeded_tasks: int = 0
    last_failed_task: TaskRecord | None = None
    membership: int = 0
    """Counts changes to the set of users with a session (not their refreshes): what the
    user list was rendered from is still current while this has not moved. Not persisted."""

    @property
    def active_connections(self) -> int:
        return sum(entry.count for entry in self.connections.values())

    def users(self) -> set[UserKey]:
        return set(self.sessions)


@dataclass(slots=True)
class BridgeState:
    servers: dict[str, ServerState] = field(default_factory=dict)
    """Keyed by the server's topic-safe slug."""
    failing: dict[str, float] = field(default_factory=dict)
    """Unacknowledged failures: task key → when it failed. The flag is ON while non-empty."""
    aborted: dict[str, float] = field(default_factory=dict)
    """Unacknowledged aborts, kept like `failing` (for alert outputs on any_task_aborted)."""
    last_failure_at: float | None = None
    last_failed_task: TaskRecord | None = None
    recent_task_events: OrderedDict[tuple[str, ...], float] = field(default_factory=OrderedDict)
    """Dedup memory: (server, type, task, execution) → first seen; not persisted."""

    @property
    def reload_failure(self) -> bool:
        return bool(self.failing)


@dataclass(frozen=True, slots=True)
class Change:
    """What one transition changed: whether to publish the event, which state topics."""

    publish_event: bool = False
    servers: frozenset[str] = frozenset()
    site: bool = False
    flag_changed: bool = False

    @property
    def any(self) -> bool:
        return self.publish_event or self.site or bool(self.servers)


NO_CHANGE = Change()


def apply_event(state: BridgeState, event: Event, now: float, settings: StateSettings) -> Change:
    """Fold one event into the state."""
    slug = server_slug(event.server)
    server = state.servers.get(slug)
    if server is None:
        server = state.servers[slug] = ServerState(host=event.server)
    server.last_event_at = now
    if isinstance(event, UserEvent):
        _apply_user(server, event, now)
        return _user_change(slug)
    return _apply_task(state, server, slug, event, now, settings)


@lru_cache(maxsize=1024)
def _user_change(slug: str) -> Change:
    """What a user event on `slug` changes; made once per server, as it is the same each time."""
    return Change(publish_event=True, servers=frozenset({slug}), site=True)


def _user_key(event: UserEvent) -> UserKey:
    """The directory is shared by thousands of users: interned, each key does not hold a copy."""
    return (sys.intern(event.user_directory or ""), event.user_id or "")


def _apply_user(server: ServerState, event: UserEvent, now: float) -> None:
    key = _user_key(event)
    kind = event.event_type
    if kind is UserEventType.SESSION_START:
        if key not in server.sessions:
            server.membership += 1
        server.sessions[key] = now
    elif kind is UserEventType.SESSION_STOP:
        if server.sessions.pop(key, None) is not None:
            server.membership += 1
        server.connections.pop(key, None)
    elif kind is UserEventType.CONNECTION_OPEN:
        entry = server.connections.get(key)
        if entry is None:
            server.connections[key] = Connections(count=1, last_seen=now)
        else:
            entry.count += 1
            entry.last_seen = now
        if key in server.sessions:
            server.sessions[key] = now
    else:  # CONNECTION_CLOSE: never below zero
        entry = server.connections.get(key)
        if entry is not None:
            entry.count -= 1
            entry.last_seen = now
            if entry.count <= 0:
                del server.connections[key]
        if key in server.sessions:
            server.sessions[key] = now


def task_key(slug: str, event: TaskEvent) -> str:
    """Identifies a task across runs: its id, else its name (or the app, for engine reloads)."""
    ident = event.task_id or event.task_name or event.app_id or ""
    return f"{slug}|{ident}"


def _apply_task(
    state: BridgeState,
    server: ServerState,
    slug: str,
    event: TaskEvent,
    now: float,
    settings: StateSettings,
) -> Change:
    if _is_duplicate(state, slug, event, now, settings.dedup_window):
        return Change(servers=frozenset({slug}))
    was_on = state.reload_failure
    kind = event.event_type
    key = task_key(slug, event)
    if kind in FAILURE_TYPES:
        record = TaskRecord(event=event, received_at=now)
        server.failed_tasks += 1
        server.last_failed_task = record
        state.last_failed_task = record
        state.last_failure_at = now
        state.failing[key] = now
    elif kind is TaskEventType.TASK_ABORTED:
        server.aborted_tasks += 1
        state.aborted[key] = now
    elif kind is TaskEventType.TASK_SUCCEEDED:
        server.succeeded_tasks += 1
        state.failing.pop(key, None)
        state.aborted.pop(key, None)
    return Change(
        publish_event=True,
        servers=frozenset({slug}),
        site=True,
        flag_changed=was_on != state.reload_failure,
    )


def _is_duplicate(
    state: BridgeState, slug: str, event: TaskEvent, now: float, window: float
) -> bool:
    """Qlik logs one failure several times: the same key within `window` is one event."""
    recent = state.recent_task_events
    while recent:
        oldest_key, seen_at = next(iter(recent.items()))
        if now - seen_at <= window:
            break
        del recent[oldest_key]
    key = (slug, event.event_type.value, task_key(slug, event), event.execution_id or "")
    if key in recent:
        return True
    recent[key] = now
    return False


def acknowledge(state: BridgeState) -> Change:
    """Clear the failure flag and the aborts (MQTT command, CLI, Home Assistant button)."""
    if not state.failing and not state.aborted:
        return NO_CHANGE
    was_on = state.reload_failure
    state.failing.clear()
    state.aborted.clear()
    return Change(site=True, flag_changed=was_on)


def expire(state: BridgeState, now: float, settings: StateSettings) -> Change:
    """Drop sessions and connections not seen for `stale_after` (UDP loses stop events), and
    clear the failure flag after `auto_clear_after` when that is set."""
    changed: set[str] = set()
    if settings.stale_after is not None:
        cutoff = now - settings.stale_after
        for slug, server in state.servers.items():
            stale = [key for key, seen in server.sessions.items() if seen < cutoff]
            gone = [key for key, entry in server.connections.items() if entry.last_seen < cutoff]
            for key in stale:
                del server.sessions[key]
            server.membership += bool(stale)
            for key in gone:
                del server.connections[key]
            if stale or gone:
                changed.add(slug)
    flag_changed = False
    if settings.auto_clear_after is not None and state.failing:
        cutoff = now - settings.auto_clear_after
        for task in [task for task, at in state.failing.items() if at < cutoff]:
            del state.failing[task]
        flag_changed = not state.failing
    if not changed and not flag_changed:
        return NO_CHANGE
    return Change(servers=frozenset(changed), site=True, flag_changed=flag_changed)


def forget_server(state: BridgeState, slug: str) -> Change:
    """Remove a server and everything known about it (its failures included)."""
    if state.servers.pop(slug, None) is None:
        return NO_CHANGE
    was_on = state.reload_failure
    for flagged in (state.failing, state.aborted):
        for task in [task for task in flagged if task.startswith(f"{slug}|")]:
            del flagged[task]
    record = state.last_failed_task
    if record is not None and server_slug(record.event.server) == slug:
        state.last_failed_task = None
    return Change(site=True, flag_changed=was_on != state.reload_failure)
