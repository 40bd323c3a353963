"""Whether a failure passes an alert's filter (issue 26): the task's and its app's tags, custom
properties, the app's stream, the app itself. Pure.

Every criterion given must hold; within one, any listed value will do; names and values are
compared without regard to case. `apps` is read from the event itself (its app name or id)
when the context has not come; the others need the failure's context from QRS. Without it
(QRS off, unavailable, not here within the wait, or missing the part a criterion reads) the
filter's `without_context` decides: `alert` (the default: better an alert too many than a
failure unseen) or `skip`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.core.events import TaskEvent

Fallback = Literal["alert", "skip"]


@dataclass(frozen=True, slots=True)
class Filter:
    tags: frozenset[str] = frozenset()
    custom_properties: tuple[tuple[str, frozenset[str]], ...] = ()
    streams: frozenset[str] = frozenset()
    apps: frozenset[str] = frozenset()
    without_context: Fallback = "alert"

    @classmethod
    def of(
        cls,
        tags: Iterable[str] = (),
        custom_properties: dict[str, list[str]] | None = None,
        streams: Iterable[str] = (),
        apps: Iterable[str] = (),
        without_context: Fallback = "alert",
    ) -> Filter:
        return cls(
            tags=frozenset(tag.casefold() for tag in tags),
            custom_properties=tuple(
                (name.casefold(), frozenset(value.casefold() for value in values))
                for name, values in (custom_properties or {}).items()
            ),
            streams=frozenset(stream.casefold() for stream in streams),
            apps=frozenset(app.casefold() for app in apps),
            without_context=without_context,
        )

    @property
    def needs_context(self) -> bool:
        """Whether a decision waits for the failure's context (`apps` alone does not)."""
        return bool(self.tags or self.custom_properties or self.streams)


def _folded(values: Iterable[object]) -> set[str]:
    return {value.casefold() for value in values if isinstance(value, str)}


def verdict(rule: Filter, event: TaskEvent, context: dict[str, Any] | None) -> bool | None:
    """True or False when the failure can be judged; None when the context it needs is not
    there (then `without_context` decides: `passes`)."""
    usable = context is not None and context.get("status") != "unavailable"
    task = (context or {}).get("task") if usable else None
    app = (context or {}).get("app") if usable else None
    if rule.apps:
        names = _folded([event.app_name, event.app_id])
        if isinstance(app, dict):
            names |= _folded([app.get("name"), app.get("id")])
        if not names:
            return None
        if not names & rule.apps:
            return False
    if not rule.needs_context:
        return True
    if not isinstance(task, dict):
        return None
    app_part: dict[str, Any] = app if isinstance(app, dict) else {}
    if rule.streams:
        if not app_part:
            return None
        if not _folded([app_part.get("stream")]) & rule.streams:
            return False
    if rule.tags and not _folded([*task.get("tags", []), *app_part.get("tags", [])]) & rule.tags:
        return False
    for name, wanted in rule.custom_properties:
        values: set[str] = set()
        for source in (task, app_part):
            for key, listed in (source.get("custom_properties") or {}).items():
                if key.casefold() == name:
                    values |= _folded(listed)
        if not values & wanted:
            return False
    return True


def passes(rule: Filter, event: TaskEvent, context: dict[str, Any] | None) -> bool:
    """Whether the failure is alerted: the verdict, or without context the fallback."""
    judged = verdict(rule, event, context)
    if judged is None:
        return rule.without_context == "alert"
    return judged
