"""Categories of log events: `log_events.categories`, ordered rules (a name, an optional level
and source, a regular expression searched in the message), first match wins. Pure.

The rules are grouped once per (source, level), so an event tries only the patterns that can
apply to it. A pattern (written in lower case) is searched in the first `SEARCHED_CHARS`
characters of the message, lowered once: case is ignored at a quarter of the cost of
`re.IGNORECASE`, and a long message costs no more than a short one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.core.events import LogEvent, LogLevel, LogSource

SEARCHED_CHARS = 4096
"""The part of a message a pattern is searched in (Qlik's messages are a line or two)."""


@dataclass(frozen=True, slots=True)
class CategoryRule:
    name: str
    pattern: re.Pattern[str]
    levels: frozenset[LogLevel] | None = None
    """None: any level."""
    sources: frozenset[LogSource] | None = None
    """None: any source."""


class Categories:
    """The rules, grouped by the (source, level) they apply to, in their order."""

    def __init__(self, rules: Iterable[CategoryRule]) -> None:
        rules = tuple(rules)
        self.names = frozenset(rule.name for rule in rules)
        self._by_kind: dict[tuple[LogSource, LogLevel], tuple[tuple[str, re.Pattern[str]], ...]]
        self._by_kind = {
            (source, level): tuple(
                (rule.name, rule.pattern)
                for rule in rules
                if (rule.sources is None or source in rule.sources)
                and (rule.levels is None or level in rule.levels)
            )
            for source in LogSource
            for level in LogLevel
        }

    def __bool__(self) -> bool:
        return bool(self.names)

    def of(self, event: LogEvent) -> str | None:
        """The name of the first rule the event matches, or None."""
        candidates = self._by_kind[event.source, event.level]
        if not candidates:
            return None
        message = (event.message or "")[:SEARCHED_CHARS].lower()
        for name, pattern in candidates:
            if pattern.search(message) is not None:
                return name
        return None


NO_CATEGORIES = Categories(())
