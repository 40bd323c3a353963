"""Which task events are the same reload task: one identity per task, site-wide. Pure.

Each appender names a reload its own way: the scheduler by the task's id (with its app id and
names), the engine's `engine_reload_failed` by the app id alone, Butler's legacy failure line
(4 fields) by the task's name alone. Identities, the same on every server:

- `task:<id>`: the task id in its one canonical form (`canonical_id`: any GUID spelling);
- `app:<id>`: an app id, for an event that names no task;
- `name:<name>`: a task name, for an event that names neither a task nor an app.

An event that carries the task id and its app id or name teaches the joins (`app:` → `task:`,
`name:` → `task:`); an event that does not resolves through them to its task. An app (or a
name) taught by two tasks (an app two tasks reload, a task recreated under a new id) joins
neither (`SHARED`): its engine lines stay under `app:` (a success naming the app clears them),
since a guess would keep one task's failure under the other's key, the lamp ON after the
failed task succeeded. The state keeps a reload's records per server, the
server whose line logged it (`<slug>|<identity>`, `key`): on a site of several nodes the
engine's line comes from the node that ran the reload, the scheduler's may come from another.
A join may be learned after the weaker event came (the engine's line before the scheduler's):
`Reloads.learn` says which joins are new, whose records are then merged into the task's on
every server. A state file from before the joins (format 1) kept one untyped key per task (its
id, else its name, else its app id): such a key is read back as `v1:<value>` and belongs to any
event that names that value.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from bridge.core.events import TaskEvent
from bridge.core.task_ids import id_key, is_task_id

JOIN_MEMORY = 5_000
"""The most joins kept (an app or a name → its task), the least recently taught forgotten
first: two per task, far above a site's reload schedule. A forgotten join costs a second count
in `failing_tasks` until the task's success, which clears every identity it names."""

SHARED = ""
"""What a join holds for an app or a name two tasks taught: no task."""

TASK = "task:"
APP = "app:"
NAME = "name:"
V1 = "v1:"


@lru_cache(maxsize=4096)  # twice per task event; a site has a few hundred tasks and apps
def canonical_id(value: str) -> str:
    """A task or app id as compared: a GUID in its one form (any case, braces, dashes or
    `urn:uuid:` as written), anything else stripped and lower case."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value.strip().lower()


def v1_value(value: str) -> str:
    """A format-1 key's value as compared: the GUID's one form, anything else as written."""
    return id_key(value) if is_task_id(value) else value


def key(slug: str, identity: str) -> str:
    """Where a reload's record is kept: on the server whose line logged it."""
    return f"{slug}|{identity}"


def identity_of(kept: str) -> str:
    """The identity of a kept key (`key`)."""
    return kept.partition("|")[2]


@dataclass(frozen=True, slots=True)
class Identities:
    """A task event's own identities; None where the event lacks the field."""

    task: str | None
    app: str | None
    name: str | None
    v1: tuple[str, ...] = ()
    """Format-1 identities naming its values (only while such keys may be flagged)."""

    @property
    def own(self) -> str:
        """The strongest identity the event names by itself (`none:` when it names none)."""
        return self.task or self.app or self.name or "none:"

    def all(self) -> list[str]:
        return [x for x in (self.task, self.app, self.name) if x] + list(self.v1)


def identities_of(event: TaskEvent) -> Identities:
    return Identities(
        task=f"{TASK}{canonical_id(event.task_id)}" if event.task_id else None,
        app=f"{APP}{canonical_id(event.app_id)}" if event.app_id else None,
        name=f"{NAME}{event.task_name}" if event.task_name else None,
    )


def task_id_of(identity: str) -> str | None:
    """The canonical task id a `task:` identity holds, else None."""
    return identity[len(TASK) :] if identity.startswith(TASK) else None


def upgrade_key(kept: str) -> str:
    """A format-1 key (`<slug>|<id, name or app id>`) as this format keeps it."""
    slug, _, value = kept.partition("|")
    return key(slug, f"{V1}{v1_value(value)}" if value else "none:")


@dataclass(slots=True)
class Reloads:
    """The joins, and the format-1 identities still flagged; owned by `BridgeState`."""

    joins: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """An `app:` or `name:` identity → the `task:` identity it was last seen with, the most
    recently taught last. At most `JOIN_MEMORY`; persisted."""
    legacy: set[str] = field(default_factory=set)
    """`v1:` identities of a restored format-1 file that may still be flagged (rebuilt at
    restore, emptied as they are merged or acknowledged): while empty, no event looks for
    them."""

    def of(self, event: TaskEvent) -> Identities:
        """The event's own identities, with the format-1 ones naming its values."""
        own = identities_of(event)
        if not self.legacy:
            return own
        values = [event.task_id, event.app_id, event.task_name]
        v1 = tuple(
            found
            for value in values
            if value and (found := f"{V1}{v1_value(value)}") in self.legacy
        )
        return Identities(own.task, own.app, own.name, v1)

    def learn(self, own: Identities) -> list[str]:
        """An event naming its task teaches what its app and name belong to. The identities
        newly joined to it (their records, kept before, are the task's from now on)."""
        if own.task is None:
            return []
        joins = self.joins
        new = []
        for alias in (own.app, own.name):
            if alias is None:
                continue
            known = joins.get(alias)
            if known in (own.task, SHARED):  # taught again, or by two tasks already
                joins.move_to_end(alias)
                continue
            joins.pop(alias, None)
            joins[alias] = own.task if known is None else SHARED
            if known is None:
                new.append(alias)
            if len(joins) > JOIN_MEMORY:
                joins.popitem(last=False)
        return new

    def identity(self, own: Identities) -> str:
        """The identity an event's records are kept under: its task's, joined if need be."""
        if own.task is not None:
            return own.task
        for alias in (own.app, own.name):
            if alias is not None and (joined := self.joins.get(alias)):  # SHARED: none
                return joined
        return own.own

    def v1_of(self, identity: str) -> str | None:
        """The format-1 identity of a task identity, while one may be flagged."""
        task_id = task_id_of(identity)
        if task_id is None or not self.legacy:
            return None
        found = f"{V1}{v1_value(task_id)}"
        return found if found in self.legacy else None

    def merged(self, identities: Iterable[str]) -> None:
        """These format-1 identities were merged into a task's (or cleared): looked for no
        more."""
        self.legacy.difference_update(identities)

    def restore(self, joins: Iterable[tuple[str, str]], flagged: Iterable[str]) -> None:
        """From the state file: the joins (the newest `JOIN_MEMORY`), and the flagged keys
        (the failing and aborted tasks) among which the format-1 ones are looked for."""
        for alias, task in joins:
            self.joins[alias] = task
        while len(self.joins) > JOIN_MEMORY:
            self.joins.popitem(last=False)
        self.legacy = {
            identity for identity in map(identity_of, flagged) if identity.startswith(V1)
        }
