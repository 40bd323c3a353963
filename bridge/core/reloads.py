"""Which task events are the same reload task: one identity per task on a server. Pure.

Each appender names a reload its own way: the scheduler by the task's id (with its app id and
names), the engine's `engine_reload_failed` by the app id alone, Butler's legacy failure line
(4 fields) by the task's name alone. Keys, each within one server (`<slug>|…`):

- `task:<id>`: the task id in its one canonical form (`task_id_key`: any GUID spelling);
- `app:<id>`: an app id, for an event that names no task;
- `name:<name>`: a task name, for an event that names neither a task nor an app.

An event that carries the task id and its app id or name teaches the joins (`app:` → `task:`,
`name:` → `task:`; the newest teaching wins, e.g. for an app two tasks reload); an event that
does not resolves through them to its task. A join may be learned after the weaker event came
(the engine's line before the scheduler's): `belonging` names the keys whose records are then
merged into the task's. A state file from before the joins (format 1) kept one untyped key per
task (its id, else its name, else its app id): such a key is read back as `v1:<value>` and
belongs to any event that names that value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bridge.core.events import TaskEvent
from bridge.core.task_ids import id_key, is_task_id

JOIN_MEMORY = 5_000
"""The most joins kept (an app or a name → its task), the least recently taught forgotten
first: two per task, far above a site's reload schedule. A forgotten join costs a second count
in `failing_tasks` until the task's success, which clears every key it names."""

TASK = "task:"
APP = "app:"
NAME = "name:"
V1 = "v1:"


def canonical_id(value: str) -> str:
    """A task or app id as compared: a GUID in its one form (any case, braces, dashes or
    `urn:uuid:` as written), anything else stripped and lower case."""
    return id_key(value) if is_task_id(value) else value.strip().lower()


def v1_value(value: str) -> str:
    """A format-1 key's value as compared: the GUID's one form, anything else as written."""
    return id_key(value) if is_task_id(value) else value


@dataclass(frozen=True, slots=True)
class Keys:
    """A task event's own keys on its server; None where the event lacks the field."""

    slug: str
    task: str | None
    app: str | None
    name: str | None

    @property
    def own(self) -> str:
        """The strongest key the event names by itself (`<slug>|` when it names nothing)."""
        return self.task or self.app or self.name or f"{self.slug}|"


def keys_of(slug: str, event: TaskEvent) -> Keys:
    return Keys(
        slug=slug,
        task=f"{slug}|{TASK}{canonical_id(event.task_id)}" if event.task_id else None,
        app=f"{slug}|{APP}{canonical_id(event.app_id)}" if event.app_id else None,
        name=f"{slug}|{NAME}{event.task_name}" if event.task_name else None,
    )


def task_id_of(key: str) -> str | None:
    """The canonical task id a `task:` key holds, else None."""
    _, _, rest = key.partition("|")
    return rest[len(TASK) :] if rest.startswith(TASK) else None


def upgrade_key(key: str) -> str:
    """A format-1 key (`<slug>|<id, name or app id>`) as this format keeps it."""
    slug, _, value = key.partition("|")
    return f"{slug}|{V1}{v1_value(value)}" if value else key


@dataclass(slots=True)
class Reloads:
    """The joins, and the format-1 keys still flagged; owned by `BridgeState`."""

    joins: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """An `app:` or `name:` key → the `task:` key it was last seen with, the most recently
    taught last. At most `JOIN_MEMORY`; persisted."""
    legacy: set[str] = field(default_factory=set)
    """`v1:` keys of a restored format-1 file that may still be flagged (rebuilt at restore,
    emptied as they are merged or acknowledged): while empty, no event looks for them."""

    def learn(self, keys: Keys) -> None:
        """An event naming its task teaches what its app and name belong to."""
        if keys.task is None:
            return
        joins = self.joins
        for alias in (keys.app, keys.name):
            if alias is None:
                continue
            if joins.get(alias) == keys.task:
                joins.move_to_end(alias)
                continue
            joins.pop(alias, None)
            joins[alias] = keys.task
            if len(joins) > JOIN_MEMORY:
                joins.popitem(last=False)

    def identity(self, keys: Keys) -> str:
        """The key an event's records are kept under: its task's, joined if need be."""
        if keys.task is not None:
            return keys.task
        for alias in (keys.app, keys.name):
            if alias is not None and (joined := self.joins.get(alias)) is not None:
                return joined
        return keys.own

    def belonging(self, keys: Keys, identity: str, event: TaskEvent) -> list[str]:
        """The other keys whose records are this reload's (to merge into `identity`): the
        event's own, and while format-1 keys are flagged, those naming its values."""
        found = [key for key in (keys.task, keys.app, keys.name) if key and key != identity]
        if self.legacy:
            values = [event.task_id, event.app_id, event.task_name]
            task_id = task_id_of(identity)
            if task_id is not None:
                values.append(task_id)
            for value in values:
                if value:
                    key = f"{keys.slug}|{V1}{v1_value(value)}"
                    if key in self.legacy:
                        self.legacy.discard(key)
                        found.append(key)
        return found

    def forget(self, slug: str) -> None:
        """A forgotten server's joins go with it."""
        prefix = f"{slug}|"
        for alias in [alias for alias in self.joins if alias.startswith(prefix)]:
            del self.joins[alias]
        self.legacy = {key for key in self.legacy if not key.startswith(prefix)}

    def restore(self, joins: Iterable[tuple[str, str]], flagged: Iterable[str]) -> None:
        """From the state file: the joins (the newest `JOIN_MEMORY`), and the flagged keys
        (the failing and aborted tasks) among which the format-1 ones are looked for."""
        for alias, task in joins:
            self.joins[alias] = task
        while len(self.joins) > JOIN_MEMORY:
            self.joins.popitem(last=False)
        self.legacy = {key for key in flagged if key.partition("|")[2].startswith(V1)}
