"""Live state: sessions, connections, task outcomes and log-event counts per server, and the
failure flag.

No I/O and no clock: every function takes `now` (Unix seconds) and mutates the state it is
given in O(1) per event, returning what changed so publishers know which topics are dirty.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bridge.core.events import (
    Event,
    LogEvent,
    LogLevel,
    LogSource,
    RejectReason,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.logcounts import LevelCounts
from bridge.core.task_ids import id_key, is_task_id
from bridge.core.topics import distinct_slug, host_key, server_slug, task_slug

UserKey = tuple[str, str]
"""(user_directory, user_id); a missing part is ''."""

FAILURE_TYPES = frozenset({TaskEventType.TASK_FAILED, TaskEventType.ENGINE_RELOAD_FAILED})
OUTCOME_TYPES = frozenset(
    {TaskEventType.TASK_SUCCEEDED, TaskEventType.TASK_FAILED, TaskEventType.TASK_ABORTED}
)
"""A watched task's outcomes (`tasks.watch`)."""
RETRY_MEMORY = 100
"""The most failed tasks with an id kept as retry candidates (`BridgeState.retryable`): the
oldest is forgotten first."""
RETRY_PENDING = 15 * 60.0
"""How long a candidate the retry button started is not offered again while no outcome of it
arrived (a reload that long, or an outcome lost on UDP)."""
DEDUP_MEMORY = 10_000
"""The most task events the duplicate check remembers: past it (a flood of distinct task
events within `dedup_window`), the oldest is forgotten first and a late repeat of it counts as
new. A real site logs a few task events a minute."""


def task_id_key(task_id: str) -> str:
    """A task id as kept and compared: a GUID in its one canonical form (any case, braces,
    dashes or `urn:uuid:` as written), anything else stripped and lower case."""
    return id_key(task_id) if is_task_id(task_id) else task_id.strip().lower()


@dataclass(frozen=True, slots=True)
class Watch:
    """A `tasks.watch` entry: a task named by its name, its id, or both (an id survives a
    rename; a name gives the entities a readable id). `task_id` is kept in its canonical form
    (`task_id_key`): `{6E4C…}`, `6e4c…` without dashes and `urn:uuid:6e4c…` are one task."""

    name: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.task_id is not None:
            object.__setattr__(self, "task_id", task_id_key(self.task_id))

    @property
    def key(self) -> str:
        """The name, else the id: the entry's key in `BridgeState.watched` and its label."""
        return self.name or self.task_id or ""

    @property
    def slug(self) -> str:
        """Its topics' and entity ids' name: from the name, else (no name, or one with no
        letter `task_slug` keeps, as `売上`) from the id."""
        return (self.name and task_slug(self.name)) or task_slug(self.task_id or "")

    def matches(self, task_name: str | None, task_id: str | None) -> bool:
        """Whether a task event (its name, its id as `task_id_key` gives it) is this task: by
        the id alone when both have one (another task may take the old name after a
        rename), else by the exact name."""
        if self.task_id is not None and task_id is not None:
            return self.task_id == task_id
        return self.name is not None and self.name == task_name


@dataclass(frozen=True, slots=True)
class StateSettings:
    stale_after: float | None
    dedup_window: float
    auto_clear_after: float | None
    max_servers: int = 100
    max_sessions_per_server: int = 100_000
    """Caps users with a session, and users with open connections, on one server (each)."""
    max_tasks_per_server: int = 10_000
    """Caps the failing and aborted tasks tracked for one server (together)."""
    dedup_memory: int = DEDUP_MEMORY
    log_window: float = 3600.0
    """The rolling window of the log-event counts (`log_events.window`)."""
    watch: tuple[Watch, ...] = ()
    """`tasks.watch`: the tasks whose last outcome is kept (`BridgeState.watched`)."""


@dataclass(slots=True)
class TaskRecord:
    """A task event as kept in state: the event and when the bridge received it."""

    event: TaskEvent
    received_at: float
    started_at: float | None = None
    """A retry candidate the retry button started (`retry_started`), until the task's next
    outcome or `RETRY_PENDING`: the button does not start it twice. Not persisted."""
    context: dict[str, Any] | None = None
    """The failure's context from QRS, summarised (`bridge.core.task_context.summary`), once
    it arrived (issue 26). Not persisted."""


@dataclass(slots=True)
class LogRecord:
    """A log event as kept in state (the last error): the event and when it was received."""

    event: LogEvent
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
    tracked_tasks: int = 0
    """This server's entries in `BridgeState.failing` plus `.aborted` (for the task cap).
    Not persisted: `BridgeState` counts them again when it is built."""
    log_counts: dict[LogSource, LevelCounts] = field(default_factory=dict)
    """Warnings, errors and fatals per service that logged any (at most four). The window's
    buckets are persisted (a restart keeps the counts the lamp agrees with); the totals are
    not: "since start" is since the bridge started."""
    last_log_error: LogRecord | None = None
    """The last ERROR or FATAL log event. Persisted."""
    log_error_at: float | None = None
    """When the last ERROR or FATAL arrived since the last acknowledge (the `log_error` flag
    of alert outputs); None: none since. Persisted, like the failure flag."""
    log_categories_at: dict[str, float] = field(default_factory=dict)
    """Category → when its last event arrived since the last acknowledge (the
    `log_category:<name>` flags). Persisted."""

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
    last_log_error: LogRecord | None = None
    """The last ERROR or FATAL log event of any server: one of the servers' own (persisted as
    its slug)."""
    watched: dict[str, TaskRecord] = field(default_factory=dict)
    """A `tasks.watch` entry → the last outcome (succeeded, failed, aborted) of the task it
    names, on any server. Dropped with its slug from `watched_slugs`."""
    watched_slugs: set[str] = field(default_factory=set)
    """The slugs of the watched tasks whose topics and Home Assistant device were announced,
    outcome or not: one no longer in `tasks.watch` is removed at the next connect, then
    dropped from here (`drop_watched`)."""
    retryable: OrderedDict[str, TaskRecord] = field(default_factory=OrderedDict)
    """Failed tasks that carry a task id (`task_id_key`) → their last failure, the most recent
    last; a task leaves when it succeeds, its server is forgotten or QRS does not know it
    (`retry_gone`; acknowledging keeps it: it has not run again). At most `RETRY_MEMORY`. The
    retry button's candidates."""
    slugs: dict[str, str] = field(default_factory=dict)
    """Host key (`topics.host_key`) → the slug its server was given. Not persisted: built from
    the servers' host names, so a restored state gives every host the slug it had."""

    def __post_init__(self) -> None:
        if not self.slugs:
            self.slugs = {host_key(server.host): slug for slug, server in self.servers.items()}
        for server in self.servers.values():
            server.tracked_tasks = 0
        for flagged in (self.failing, self.aborted):
            for task in flagged:
                owner = self.servers.get(task.partition("|")[0])
                if owner is not None:
                    owner.tracked_tasks += 1

    @property
    def reload_failure(self) -> bool:
        return bool(self.failing)


def slug_of(state: BridgeState, host: str) -> str:
    """The slug of the server a host name belongs to (`server_slug` for a host not seen)."""
    return state.slugs.get(host_key(host)) or server_slug(host)


def find_server(state: BridgeState, name: str) -> str | None:
    """The slug of the server `name` names: a host name in any case, else a slug."""
    slug = state.slugs.get(host_key(name))
    if slug is not None:
        return slug
    candidate = name.strip().lower()
    if candidate in state.servers:
        return candidate
    candidate = server_slug(name)
    return candidate if candidate in state.servers else None


@dataclass(frozen=True, slots=True)
class Change:
    """What one transition changed: whether to publish the event, which state topics."""

    publish_event: bool = False
    servers: frozenset[str] = frozenset()
    site: bool = False
    flag_changed: bool = False
    refused: RejectReason | None = None
    """Set when the event was refused (a cap was reached); then nothing changed."""
    expired: frozenset[str] = frozenset()
    """Servers whose stale sessions or connections `expire` dropped."""
    auto_cleared: bool = False
    """Whether `expire` cleared failures or aborts older than `auto_clear_after`."""
    retry: bool = False
    """Whether the retry button's candidates changed without a task event (a start, a task
    QRS does not know, a start pending too long)."""

    @property
    def any(self) -> bool:
        return self.publish_event or self.site or bool(self.servers) or self.retry


NO_CHANGE = Change()
RETRY_CHANGED = Change(retry=True)
TOO_MANY_SERVERS = Change(refused=RejectReason.TOO_MANY_SERVERS)
TOO_MANY_SESSIONS = Change(refused=RejectReason.TOO_MANY_SESSIONS)
TOO_MANY_TASKS = Change(refused=RejectReason.TOO_MANY_TASKS)


def apply_event(state: BridgeState, event: Event, now: float, settings: StateSettings) -> Change:
    """Fold one event into the state. Past a cap of `settings`, an event that would add a
    server, a user or a tracked task is refused (`Change.refused`) and changes nothing."""
    key = host_key(event.server)
    slug = state.slugs.get(key)
    if slug is None:
        if len(state.servers) >= settings.max_servers:
            return TOO_MANY_SERVERS
        slug = distinct_slug(event.server, state.servers)
        state.slugs[key] = slug
        server = state.servers[slug] = ServerState(host=event.server)
    else:
        server = state.servers[slug]
    if isinstance(event, UserEvent):
        if not _apply_user(server, event, now, settings.max_sessions_per_server):
            return TOO_MANY_SESSIONS
        server.last_event_at = now
        return _event_change(slug)
    if isinstance(event, LogEvent):
        _apply_log(state, server, event, now, settings.log_window)
        return _event_change(slug)
    return _apply_task(state, server, slug, event, now, settings)


@lru_cache(maxsize=1024)
def _event_change(slug: str) -> Change:
    """What a user or log event on `slug` changes; made once per server (the same each time)."""
    return Change(publish_event=True, servers=frozenset({slug}), site=True)


def _user_key(event: UserEvent) -> UserKey:
    """The directory is shared by thousands of users: interned, each key does not hold a copy."""
    return (sys.intern(event.user_directory or ""), event.user_id or "")


def _apply_user(server: ServerState, event: UserEvent, now: float, cap: int) -> bool:
    """False, changing nothing, when the event would add a user past `cap`."""
    key = _user_key(event)
    kind = event.event_type
    if kind is UserEventType.SESSION_START:
        if key not in server.sessions:
            if len(server.sessions) >= cap:
                return False
            server.membership += 1
        server.sessions[key] = now
    elif kind is UserEventType.SESSION_STOP:
        if server.sessions.pop(key, None) is not None:
            server.membership += 1
        server.connections.pop(key, None)
    elif kind is UserEventType.CONNECTION_OPEN:
        entry = server.connections.get(key)
        if entry is None:
            if len(server.connections) >= cap:
                return False
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
    return True


def _apply_log(
    state: BridgeState, server: ServerState, event: LogEvent, now: float, window: float
) -> None:
    counts = server.log_counts.get(event.source)
    if counts is None:
        counts = server.log_counts[event.source] = LevelCounts()
    counts.add(event.level, now, window)
    server.last_event_at = now
    if event.level is not LogLevel.WARN:
        record = LogRecord(event=event, received_at=now)
        server.last_log_error = record
        state.last_log_error = record
        server.log_error_at = now
    if event.category is not None:
        server.log_categories_at[event.category] = now


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
    kind = event.event_type
    key = task_key(slug, event)
    flagged = (
        state.failing
        if kind in FAILURE_TYPES
        else state.aborted
        if kind is TaskEventType.TASK_ABORTED
        else None
    )
    if (
        flagged is not None
        and key not in flagged
        and server.tracked_tasks >= settings.max_tasks_per_server
    ):
        return TOO_MANY_TASKS
    server.last_event_at = now
    if _is_duplicate(state, slug, event, now, settings):
        return Change(servers=frozenset({slug}))
    was_on = state.reload_failure
    if flagged is not None:
        server.tracked_tasks += key not in flagged
        flagged[key] = now
    if settings.watch and kind in OUTCOME_TYPES:
        _remember_outcome(state, TaskRecord(event=event, received_at=now), settings.watch)
    if kind is TaskEventType.TASK_ABORTED and event.task_id:
        kept = state.retryable.get(task_id_key(event.task_id))
        if kept is not None:
            kept.started_at = None  # the retried run ended
    if kind in FAILURE_TYPES:
        record = TaskRecord(event=event, received_at=now)
        _remember_retryable(state, record)
        server.failed_tasks += 1
        server.last_failed_task = record
        state.last_failed_task = record
        state.last_failure_at = now
    elif kind is TaskEventType.TASK_ABORTED:
        server.aborted_tasks += 1
    elif kind is TaskEventType.TASK_SUCCEEDED:
        if event.task_id:
            state.retryable.pop(task_id_key(event.task_id), None)
        server.succeeded_tasks += 1
        for cleared in (state.failing, state.aborted):
            if cleared.pop(key, None) is not None:
                server.tracked_tasks -= 1
    return Change(
        publish_event=True,
        servers=frozenset({slug}),
        site=True,
        flag_changed=was_on != state.reload_failure,
    )


def _remember_outcome(state: BridgeState, record: TaskRecord, watch: tuple[Watch, ...]) -> None:
    event = record.event
    task_id = task_id_key(event.task_id) if event.task_id else None
    for entry in watch:
        if entry.matches(event.task_name, task_id):
            state.watched[entry.key] = record


def remember_watched(state: BridgeState, watch: tuple[Watch, ...]) -> bool:
    """Note the slugs of `watch` as announced (before they are: a crash in between costs an
    empty retained message later, never a device left behind). True when one is new."""
    slugs = {entry.slug for entry in watch}
    new = not slugs <= state.watched_slugs
    state.watched_slugs |= slugs
    return new


def drop_watched(state: BridgeState, watch: tuple[Watch, ...]) -> None:
    """Once what was announced for tasks no longer in `watch` was removed: keep only the
    slugs and the outcomes of `watch`."""
    state.watched_slugs = {entry.slug for entry in watch}
    keys = {entry.key for entry in watch}
    for entry in [entry for entry in state.watched if entry not in keys]:
        del state.watched[entry]


def retry_started(state: BridgeState, task_id: str, now: float) -> Change:
    """The retry button started this candidate: not a candidate again until its next
    outcome, or for `RETRY_PENDING`."""
    record = state.retryable.get(task_id_key(task_id))
    if record is None:
        return NO_CHANGE
    record.started_at = now
    return RETRY_CHANGED


def retry_unstarted(state: BridgeState, task_id: str, started_at: float) -> Change:
    """QRS refused the start the retry button marked at `started_at`: a candidate again. A
    mark of a later press (or none: an outcome came) is left as it is."""
    record = state.retryable.get(task_id_key(task_id))
    if record is None or record.started_at != started_at:
        return NO_CHANGE
    record.started_at = None
    return RETRY_CHANGED


def retry_gone(state: BridgeState, task_id: str) -> Change:
    """QRS knows no such task (deleted in the QMC): no longer a retry candidate."""
    if state.retryable.pop(task_id_key(task_id), None) is None:
        return NO_CHANGE
    return RETRY_CHANGED


def _remember_retryable(state: BridgeState, record: TaskRecord) -> None:
    """A failed task with a task id becomes the newest retry candidate (an engine reload
    failure names the task only when the scheduler started it)."""
    task_id = record.event.task_id
    if not task_id or record.event.event_type is not TaskEventType.TASK_FAILED:
        return
    key = task_id_key(task_id)
    state.retryable.pop(key, None)
    state.retryable[key] = record
    while len(state.retryable) > RETRY_MEMORY:
        state.retryable.popitem(last=False)


def _is_duplicate(
    state: BridgeState, slug: str, event: TaskEvent, now: float, settings: StateSettings
) -> bool:
    """Qlik logs one failure several times: the same key within the window is one event.
    The memory holds at most `settings.dedup_memory` keys, the oldest forgotten first."""
    recent = state.recent_task_events
    while recent:
        oldest_key, seen_at = next(iter(recent.items()))
        if now - seen_at <= settings.dedup_window and len(recent) < settings.dedup_memory:
            break
        del recent[oldest_key]
    key = (slug, event.event_type.value, task_key(slug, event), event.execution_id or "")
    if key in recent:
        return True
    recent[key] = now
    return False


def acknowledge(state: BridgeState) -> Change:
    """Clear the failure flag, the aborts and the log errors and categories seen since the
    last acknowledge (MQTT command, CLI, Home Assistant button)."""
    logged = frozenset(
        slug
        for slug, server in state.servers.items()
        if server.log_error_at is not None or server.log_categories_at
    )
    if not state.failing and not state.aborted and not logged:
        return NO_CHANGE
    was_on = state.reload_failure
    state.failing.clear()
    state.aborted.clear()
    for server in state.servers.values():
        server.tracked_tasks = 0
        server.log_error_at = None
        server.log_categories_at.clear()
    return Change(servers=logged, site=True, flag_changed=was_on)


def expire(state: BridgeState, now: float, settings: StateSettings) -> Change:
    """Drop sessions and connections not seen for `stale_after` (UDP loses stop events), and
    clear failures and aborts older than `auto_clear_after` when that is set; log events that
    left the rolling window leave its counts."""
    changed: set[str] = set()
    expired: set[str] = set()
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
                expired.add(slug)
    changed |= expired
    for slug, server in state.servers.items():
        for counts in server.log_counts.values():
            if counts.prune(now, settings.log_window):
                changed.add(slug)
    was_on = state.reload_failure
    cleared = False
    if settings.auto_clear_after is not None:
        cutoff = now - settings.auto_clear_after
        for flagged in (state.failing, state.aborted):
            for task in [task for task, at in flagged.items() if at < cutoff]:
                del flagged[task]
                cleared = True
                owner = state.servers.get(task.partition("|")[0])
                if owner is not None:
                    owner.tracked_tasks -= 1
    retry = False
    for record in state.retryable.values():
        if record.started_at is not None and now - record.started_at >= RETRY_PENDING:
            record.started_at = None
            retry = True
    if not changed and not cleared:
        return RETRY_CHANGED if retry else NO_CHANGE
    return Change(
        servers=frozenset(changed),
        site=True,
        flag_changed=was_on != state.reload_failure,
        expired=frozenset(expired),
        auto_cleared=cleared,
        retry=retry,
    )


def forget_server(state: BridgeState, slug: str) -> Change:
    """Remove a server and everything known about it (its failures included)."""
    server = state.servers.get(slug)
    if server is None:
        return NO_CHANGE
    record = state.last_failed_task
    if record is not None and slug_of(state, record.event.server) == slug:
        state.last_failed_task = None
    error = state.last_log_error
    if error is not None and slug_of(state, error.event.server) == slug:
        state.last_log_error = None
    for key in [
        key for key, kept in state.retryable.items() if slug_of(state, kept.event.server) == slug
    ]:
        del state.retryable[key]
    del state.servers[slug]
    state.slugs = {key: kept for key, kept in state.slugs.items() if kept != slug}
    was_on = state.reload_failure
    for flagged in (state.failing, state.aborted):
        for task in [task for task in flagged if task.startswith(f"{slug}|")]:
            del flagged[task]
    return Change(site=True, flag_changed=was_on != state.reload_failure)
