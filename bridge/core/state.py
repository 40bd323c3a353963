"""Live state: sessions, connections, task outcomes and log-event counts per server, and the
failure flag.

No I/O and no clock: every function takes `now` (Unix seconds) and mutates the state it is
given in O(1) per event (a task's success, or a join learned late, visits each server once:
`bridge.core.reloads`), returning what changed so publishers know which topics are dirty.
Which task events are one reload is `bridge.core.reloads`' concern.
"""

from __future__ import annotations

import sys
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

from bridge.core.events import (
    Event,
    LogEvent,
    LogLevel,
    LogSource,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.logcounts import LevelCounts
from bridge.core.reloads import (
    Identities,
    Reloads,
    canonical_id,
    identities_of,
    identity_of,
    task_id_of,
)
from bridge.core.reloads import key as reload_key
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
    return canonical_id(task_id)


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
    outcome or `RETRY_PENDING`: the button does not start it twice. Persisted (a reload still
    running is not offered again after a restart)."""
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
    active_connections: int = field(init=False, default=0)
    """The sum of `connections`' counts, kept as they change (summing 50,000 entries for
    every state publish took milliseconds). Not persisted: counted when the state is built."""
    seen_floor: float = field(init=False, default=float("-inf"))
    """No session or connection was last seen before this (a lower bound, from the last stale
    scan): `expire` scans the server only when something can be stale. Not persisted."""

    def __post_init__(self) -> None:
        self.active_connections = sum(entry.count for entry in self.connections.values())


@dataclass(slots=True)
class BridgeState:
    servers: dict[str, ServerState] = field(default_factory=dict)
    """Keyed by the server's topic-safe slug."""
    failing: dict[str, float] = field(default_factory=dict)
    """Unacknowledged failures: the reload's key (`bridge.core.reloads.key`: its identity, one
    per task whichever appender logged it, on the server that logged it) → when it last
    failed. The flag is ON while non-empty."""
    failing_reloads: Counter[str] = field(default_factory=Counter)
    """The identities in `failing` → on how many servers: `failing_tasks` counts each reload
    once. Not persisted: rebuilt from `failing`."""
    aborted: dict[str, float] = field(default_factory=dict)
    """Unacknowledged aborts, kept like `failing` (for alert outputs on any_task_aborted)."""
    last_failure_at: float | None = None
    last_failed_task: TaskRecord | None = None
    recent_task_events: OrderedDict[tuple[str, ...], float] = field(default_factory=OrderedDict)
    """Dedup memory: (type, reload key, execution) → first seen; not persisted."""
    reloads: Reloads = field(default_factory=Reloads)
    """Which task events are the same reload (the joins of app ids and names to tasks)."""
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
    """Failed tasks whose id is known (`task_id_key`; from the event, or joined from its name:
    `bridge.core.reloads`) → their last failure, the most recent last; a task leaves when it
    succeeds, its server is forgotten or QRS does not know it (`retry_gone`; acknowledging
    keeps it: it has not run again). At most `RETRY_MEMORY`. The retry button's candidates."""
    slugs: dict[str, str] = field(default_factory=dict)
    """Host key (`topics.host_key`) → the slug its server was given. Not persisted: built from
    the servers' host names, so a restored state gives every host the slug it had."""
    user_servers: Counter[UserKey] = field(init=False, default_factory=Counter)
    """User → how many servers they have a session on: the site's distinct users are its
    length (a set of every server's users took 3.6 ms at 50,000 users over 20 servers, for
    every site publish). Kept by whoever adds or drops a session; counted when built."""
    revision: int = 0
    """Counts changes to what the state file keeps: whoever changes the state adds one (the
    core path for every change it makes, `drop_watched` and `remember_watched` for theirs);
    the saver compares it with the revision it saved (`Bridge.dirty`). Not persisted."""

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
        self.failing_reloads = Counter(map(identity_of, self.failing))
        self.user_servers = Counter(key for s in self.servers.values() for key in s.sessions)

    def session_gone(self, key: UserKey) -> None:
        """A session of `key` left a server (`user_servers` kept)."""
        left = self.user_servers[key] - 1
        if left > 0:
            self.user_servers[key] = left
        else:
            del self.user_servers[key]

    @property
    def reload_failure(self) -> bool:
        return bool(self.failing)

    @property
    def failing_tasks(self) -> int:
        """The reloads failed and not cleared, each once however many servers logged it."""
        return len(self.failing_reloads)


def slug_of(state: BridgeState, host: str) -> str:
    """The slug of the server a host name belongs to; for a host not tracked (not seen, or
    past `limits.max_servers`) the slug it would be given now (`distinct_slug`): never a
    tracked server's."""
    return state.slugs.get(host_key(host)) or distinct_slug(host, state.servers)


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


class Cap(StrEnum):
    """A cap of `limits:` past which an event is published but not tracked."""

    SERVERS = "servers"
    """`limits.max_servers`: a new host name; nothing of that server is kept."""
    SESSIONS = "sessions"
    """`limits.max_sessions_per_server`: a new user's session or connection is not kept."""
    TASKS = "tasks"
    """`limits.max_tasks_per_server`: a new task's failure or abort is not flagged."""

    @property
    def setting(self) -> str:
        return f"limits.max_{self.value}" + ("" if self is Cap.SERVERS else "_per_server")


@dataclass(frozen=True, slots=True)
class Change:
    """What one transition changed: whether to publish the event, which state topics."""

    publish_event: bool = False
    servers: frozenset[str] = frozenset()
    site: bool = False
    flag_changed: bool = False
    untracked: Cap | None = None
    """Set when a cap was reached: the event is published all the same, but what it would
    have added to the state (a server, a user, a flagged task) was not kept."""
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
PUBLISH_ONLY = Change(publish_event=True)
"""A DEBUG or INFO log event of a known server without a category (a rule naming DEBUG or
INFO gives one, which raises its `log_category:<name>` flag): published, no state."""
RETRY_CHANGED = Change(retry=True)
UNTRACKED_SERVER = Change(publish_event=True, untracked=Cap.SERVERS)


def apply_event(state: BridgeState, event: Event, now: float, settings: StateSettings) -> Change:
    """Fold one event into the state. Past a cap of `settings`, what the event would add (a
    server, a user, a flagged task) is not kept (`Change.untracked`); the event is published
    all the same."""
    key = host_key(event.server)
    slug = state.slugs.get(key)
    created = slug is None
    if slug is None:
        if len(state.servers) >= settings.max_servers:
            return _untracked_server(state, event, now, settings)
        slug = distinct_slug(event.server, state.servers)
        state.slugs[key] = slug
        server = state.servers[slug] = ServerState(host=event.server)
    else:
        server = state.servers[slug]
    if isinstance(event, UserEvent):
        server.last_event_at = now
        if not _apply_user(state, server, event, now, settings.max_sessions_per_server):
            return _untracked_change(slug)
        return _event_change(slug)
    if isinstance(event, LogEvent):
        if not event.level.counted and not created and event.category is None:
            return PUBLISH_ONLY  # DEBUG and INFO: published; a category names them to flag
        _apply_log(state, server, event, now, settings.log_window)
        return _event_change(slug)
    return _apply_task(state, server, slug, event, now, settings)


def _untracked_server(
    state: BridgeState, event: Event, now: float, settings: StateSettings
) -> Change:
    """An event of a host past `limits.max_servers`: published (a task event once, as any),
    nothing of it kept but the bounded duplicate check's memory and, for a watched task (on
    any server, `tasks.watch`: as many as are listed), its outcome."""
    if isinstance(event, TaskEvent):
        own = reload_key(slug_of(state, event.server), identities_of(event).own)
        if _is_duplicate(state, own, own, event, now, settings):
            return NO_CHANGE
        if settings.watch and event.event_type in OUTCOME_TYPES:
            task_id = task_id_of(reload_identity(state, event))
            record = TaskRecord(event=_named(event, task_id), received_at=now)
            _remember_outcome(state, record, task_id, settings.watch)
    return UNTRACKED_SERVER


@lru_cache(maxsize=1024)
def _event_change(slug: str) -> Change:
    """What a user or log event on `slug` changes; made once per server (the same each time)."""
    return Change(publish_event=True, servers=frozenset({slug}), site=True)


@lru_cache(maxsize=1024)
def _untracked_change(slug: str) -> Change:
    """A user event on `slug` past `limits.max_sessions_per_server`: published, its user not
    kept (the server's last event time is)."""
    return Change(publish_event=True, servers=frozenset({slug}), site=True, untracked=Cap.SESSIONS)


def _user_key(event: UserEvent) -> UserKey:
    """The directory is shared by thousands of users: interned, each key does not hold a copy."""
    return (sys.intern(event.user_directory or ""), event.user_id or "")


def _apply_user(
    state: BridgeState, server: ServerState, event: UserEvent, now: float, cap: int
) -> bool:
    """False, changing nothing, when the event would add a user past `cap`."""
    key = _user_key(event)
    kind = event.event_type
    if now < server.seen_floor:  # the clock stepped back: the floor follows what is written
        server.seen_floor = now
    if kind is UserEventType.SESSION_START:
        if key not in server.sessions:
            if len(server.sessions) >= cap:
                return False
            server.membership += 1
            state.user_servers[key] += 1
        server.sessions[key] = now
    elif kind is UserEventType.SESSION_STOP:
        if server.sessions.pop(key, None) is not None:
            server.membership += 1
            state.session_gone(key)
        closed = server.connections.pop(key, None)
        if closed is not None:
            server.active_connections -= closed.count
    elif kind is UserEventType.CONNECTION_OPEN:
        entry = server.connections.get(key)
        if entry is None:
            if len(server.connections) >= cap:
                return False
            server.connections[key] = Connections(count=1, last_seen=now)
        else:
            entry.count += 1
            entry.last_seen = now
        server.active_connections += 1
        if key in server.sessions:
            server.sessions[key] = now
    else:  # CONNECTION_CLOSE: never below zero
        entry = server.connections.get(key)
        if entry is not None:
            entry.count -= 1
            server.active_connections -= 1
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
    if event.level in (LogLevel.ERROR, LogLevel.FATAL):
        record = LogRecord(event=event, received_at=now)
        server.last_log_error = record
        state.last_log_error = record
        server.log_error_at = now
    if event.category is not None:
        server.log_categories_at[event.category] = now


def reload_identity(state: BridgeState, event: TaskEvent) -> str:
    """The reload a task event is, on any server, as the joins know it now (`task:<id>`, else
    its `app:` or `name:`)."""
    return state.reloads.identity(state.reloads.of(event))


def with_known_task(state: BridgeState, event: TaskEvent) -> TaskEvent:
    """The event with the task id its reload is joined to when it names none (the engine's
    line names the app, Butler's legacy line the task's name): what QRS is asked about."""
    return _named(event, task_id_of(reload_identity(state, event)))


def task_key(slug: str, event: TaskEvent) -> str:
    """The key an event names by itself (its id, else its name, else its app): what Slack
    folds repeats of one task by. The state keeps a reload under `bridge.core.reloads`' key."""
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
    reloads = state.reloads
    own = reloads.of(event)
    # A reload task's lines teach the joins; a distribution's app fields are not its own.
    joined = reloads.learn(own) if kind is not TaskEventType.DISTRIBUTE_FINISHED else []
    identity = reloads.identity(own)
    kept = reload_key(slug, identity)
    server.last_event_at = now
    if _is_duplicate(state, kept, reload_key(slug, own.own), event, now, settings):
        return Change(servers=frozenset({slug}))
    was_on = state.reload_failure
    _merge_into(state, slug, identity, own, joined)
    flagged = (
        state.failing
        if kind in FAILURE_TYPES
        else state.aborted
        if kind is TaskEventType.TASK_ABORTED
        else None
    )
    untracked = None
    if flagged is not None:
        if kept in flagged or server.tracked_tasks < settings.max_tasks_per_server:
            _flag(state, flagged, kept, now)
        else:
            untracked = Cap.TASKS
    task_id = task_id_of(identity)
    named = _named(event, task_id)
    if settings.watch and kind in OUTCOME_TYPES:
        _remember_outcome(state, TaskRecord(event=named, received_at=now), task_id, settings.watch)
    if kind is TaskEventType.TASK_ABORTED and task_id is not None:
        candidate = state.retryable.get(task_id)
        if candidate is not None:
            candidate.started_at = None  # the retried run ended
    if kind in FAILURE_TYPES:
        record = TaskRecord(event=event, received_at=now)
        if kind is TaskEventType.TASK_FAILED and task_id is not None:
            _remember_retryable(state, task_id, TaskRecord(event=named, received_at=now))
        server.failed_tasks += 1
        server.last_failed_task = record
        state.last_failed_task = record
        state.last_failure_at = now
    elif kind is TaskEventType.TASK_ABORTED:
        server.aborted_tasks += 1
    elif kind is TaskEventType.TASK_SUCCEEDED:
        if task_id is not None:
            state.retryable.pop(task_id, None)
        server.succeeded_tasks += 1
        _clear_everywhere(state, {identity, *own.all()})
    return Change(
        publish_event=True,
        servers=frozenset({slug}),
        site=True,
        flag_changed=was_on != state.reload_failure,
        untracked=untracked,
    )


def _merge_into(
    state: BridgeState, slug: str, identity: str, own: Identities, joined: list[str]
) -> None:
    """What was kept under a weaker identity of this reload is kept under its task's from now
    on, on the same server: the event's own app and name on its server; an app or a name just
    joined to the task, and a format-1 key naming it, on every server."""
    for alias in (own.app, own.name):
        if alias is not None and alias != identity:
            _merge(state, slug, alias, identity)
    everywhere = [*joined, *own.v1]
    v1 = state.reloads.v1_of(identity)
    if v1 is not None:
        everywhere.append(v1)
    if everywhere:
        for other in list(state.servers):
            for alias in everywhere:
                _merge(state, other, alias, identity)
        state.reloads.merged(everywhere)


def _merge(state: BridgeState, slug: str, alias: str, identity: str) -> None:
    """One entry each, the later time."""
    for flagged in (state.failing, state.aborted):
        at = _unflag(state, flagged, reload_key(slug, alias))
        if at is not None:
            _flag(state, flagged, reload_key(slug, identity), at)


def _clear_everywhere(state: BridgeState, identities: set[str]) -> None:
    """A task succeeded: every record of it goes, on every server (a site's nodes log one
    reload on several): its task's, and those of the app and the name it names."""
    failing = [identity for identity in identities if identity in state.failing_reloads]
    aborted = identities if state.aborted else ()
    for flagged, flagged_identities in ((state.failing, failing), (state.aborted, aborted)):
        for identity in flagged_identities:
            for other in list(state.servers):
                _unflag(state, flagged, reload_key(other, identity))
    state.reloads.merged(identities)


def _flag(state: BridgeState, flagged: dict[str, float], kept: str, at: float) -> None:
    """Flag a reload (failing or aborted) on a server, or again: the later time."""
    before = flagged.get(kept)
    if before is not None:
        flagged[kept] = max(before, at)
        return
    flagged[kept] = at
    owner = state.servers.get(kept.partition("|")[0])
    if owner is not None:
        owner.tracked_tasks += 1
    if flagged is state.failing:
        state.failing_reloads[identity_of(kept)] += 1


def _unflag(state: BridgeState, flagged: dict[str, float], kept: str) -> float | None:
    """Clear a flagged reload; when it was flagged, the time it was."""
    at = flagged.pop(kept, None)
    if at is None:
        return None
    owner = state.servers.get(kept.partition("|")[0])
    if owner is not None:
        owner.tracked_tasks -= 1
    if flagged is state.failing:
        identity = identity_of(kept)
        state.failing_reloads[identity] -= 1
        if state.failing_reloads[identity] <= 0:
            del state.failing_reloads[identity]
    return at


def _named(event: TaskEvent, task_id: str | None) -> TaskEvent:
    """The event as a retry candidate or a watched outcome keeps it: with the task id its
    reload was joined to when it named none (Butler's legacy line names the task only)."""
    if task_id is None or event.task_id:
        return event
    return replace(event, task_id=task_id)


def _remember_outcome(
    state: BridgeState, record: TaskRecord, task_id: str | None, watch: tuple[Watch, ...]
) -> None:
    event = record.event
    for entry in watch:
        if entry.matches(event.task_name, task_id):
            state.watched[entry.key] = record


def remember_watched(state: BridgeState, watch: tuple[Watch, ...]) -> bool:
    """Note the slugs of `watch` as announced (before they are: a crash in between costs an
    empty retained message later, never a device left behind). True when one is new."""
    slugs = {entry.slug for entry in watch}
    new = not slugs <= state.watched_slugs
    if new:
        state.watched_slugs |= slugs
        state.revision += 1
    return new


def drop_watched(state: BridgeState, watch: tuple[Watch, ...]) -> bool:
    """Once what was announced for tasks no longer in `watch` was removed: keep only the
    slugs and the outcomes of `watch`. True (and the state to be saved) when one was
    dropped."""
    slugs = {entry.slug for entry in watch}
    keys = {entry.key for entry in watch}
    gone = [entry for entry in state.watched if entry not in keys]
    if state.watched_slugs == slugs and not gone:
        return False
    state.watched_slugs = slugs
    for entry in gone:
        del state.watched[entry]
    state.revision += 1
    return True


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


def _remember_retryable(state: BridgeState, task_id: str, record: TaskRecord) -> None:
    """A failed task whose id is known becomes the newest retry candidate (an engine reload
    failure is none: the scheduler's own failure follows when the task failed for good)."""
    state.retryable.pop(task_id, None)
    state.retryable[task_id] = record
    while len(state.retryable) > RETRY_MEMORY:
        state.retryable.popitem(last=False)


def _is_duplicate(
    state: BridgeState, key: str, own: str, event: TaskEvent, now: float, settings: StateSettings
) -> bool:
    """Qlik logs one failure several times: the same event type of the same reload (`key`)
    and execution within the window is one event. `own`, the key the event names by itself,
    finds a repeat of a line seen before its reload's join was learned. The memory holds at
    most `settings.dedup_memory` keys, the oldest forgotten first."""
    recent = state.recent_task_events
    while recent:
        oldest_key, seen_at = next(iter(recent.items()))
        if now - seen_at <= settings.dedup_window and len(recent) < settings.dedup_memory:
            break
        del recent[oldest_key]
    kind, execution = event.event_type.value, event.execution_id or ""
    seen = (kind, key, execution)
    if seen in recent or (own != key and (kind, own, execution) in recent):
        return True
    recent[seen] = now
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
    state.failing_reloads.clear()
    state.aborted.clear()
    state.reloads.legacy.clear()
    for server in state.servers.values():
        server.tracked_tasks = 0
        server.log_error_at = None
        server.log_categories_at.clear()
    return Change(servers=logged, site=True, flag_changed=was_on)


def auto_clear(state: BridgeState, now: float, settings: StateSettings) -> Change:
    """Clear failures and aborts older than `auto_clear_after` (when set), and only that: what
    the bridge checks often (within a tenth of `auto_clear_after`, or a second), where
    `expire`'s walk over every session runs once a minute or so. O(flagged reloads)."""
    was_on = state.reload_failure
    cleared = _auto_clear(state, now, settings)
    if not cleared:
        return NO_CHANGE
    return Change(
        servers=frozenset(cleared),
        site=True,
        flag_changed=was_on != state.reload_failure,
        auto_cleared=True,
    )


def _auto_clear(state: BridgeState, now: float, settings: StateSettings) -> set[str]:
    """The slugs of the servers whose failures or aborts `auto_clear_after` cleared."""
    cleared: set[str] = set()
    if settings.auto_clear_after is None:
        return cleared
    cutoff = now - settings.auto_clear_after
    for flagged in (state.failing, state.aborted):
        for task in [task for task, at in flagged.items() if at < cutoff]:
            _unflag(state, flagged, task)
            cleared.add(task.partition("|")[0])
    return cleared


def _scan_stale(state: BridgeState, server: ServerState, cutoff: float, now: float) -> bool:
    """Drop the server's sessions and connections last seen before `cutoff`; whether any were.
    Leaves `seen_floor` at the oldest last-seen time that is left."""
    stale = [key for key, seen in server.sessions.items() if seen < cutoff]
    gone = [key for key, entry in server.connections.items() if entry.last_seen < cutoff]
    for key in stale:
        del server.sessions[key]
        state.session_gone(key)
    server.membership += bool(stale)
    for key in gone:
        server.active_connections -= server.connections.pop(key).count
    server.seen_floor = min(
        min(server.sessions.values(), default=now),
        min((entry.last_seen for entry in server.connections.values()), default=now),
    )
    return bool(stale or gone)


def expire(state: BridgeState, now: float, settings: StateSettings) -> Change:
    """Drop sessions and connections not seen for `stale_after` (UDP loses stop events), and
    clear failures and aborts older than `auto_clear_after` when that is set; log events that
    left the rolling window leave its counts."""
    changed: set[str] = set()
    expired: set[str] = set()
    if settings.stale_after is not None:
        cutoff = now - settings.stale_after
        for slug, server in state.servers.items():
            if server.seen_floor >= cutoff:
                continue  # nothing there can be stale yet: no scan (O(sessions): ms at 50,000)
            if _scan_stale(state, server, cutoff, now):
                expired.add(slug)
    changed |= expired
    for slug, server in state.servers.items():
        for counts in server.log_counts.values():
            if counts.prune(now, settings.log_window):
                changed.add(slug)
    was_on = state.reload_failure
    cleared = bool(_auto_clear(state, now, settings))
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
    for user in server.sessions:
        state.session_gone(user)
    del state.servers[slug]
    state.slugs = {host: kept for host, kept in state.slugs.items() if kept != slug}
    was_on = state.reload_failure
    for flagged in (state.failing, state.aborted):
        for task in [task for task in flagged if task.startswith(f"{slug}|")]:
            _unflag(state, flagged, task)
    return Change(site=True, flag_changed=was_on != state.reload_failure)
