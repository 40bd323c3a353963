"""Categories of log events: `log_events.categories`, ordered rules (a name, an optional level
and source, a regular expression searched in the message), first match wins. Pure.

The rules are grouped once per (source, level), so an event tries only the patterns that can
apply to it. Every pattern is searched in the first `SEARCHED_CHARS` characters of the message,
lowered once: a pattern in lower case then ignores case at a quarter of the cost of
`re.IGNORECASE`; a pattern that names a capital (a letter, or a character code such as `\\x4c`)
is compiled with `re.IGNORECASE` (`compile_pattern`), so it matches too and only it pays. A long
message costs no more than a short one. A message seen recently is answered from memory (a
flood repeats one message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.core.events import LogEvent, LogLevel, LogSource

SEARCHED_CHARS = 4096
"""The part of a message a pattern is searched in (Qlik's messages are a line or two)."""


_CHARACTER_CODE = re.compile(r"\\(x|u|U|N\{|0|[1-7][0-7]{2})")
"""An escape naming a character by its code or name (`\\x4c`, `\\u004c`, `\\N{…}`, octal),
which may be a capital."""


def needs_ignorecase(pattern: str) -> bool:
    """Whether `pattern` may name a capital, which the lowered message never holds: an upper-case
    letter anywhere in its text (an escape such as `\\S` or a group name too: harmless), or a
    character code."""
    return any(char.isupper() for char in pattern) or _CHARACTER_CODE.search(pattern) is not None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A category pattern as searched in the lowered message (`re.error` if it is not one)."""
    return re.compile(pattern, re.IGNORECASE if needs_ignorecase(pattern) else 0)


@dataclass(frozen=True, slots=True)
class CategoryRule:
    name: str
    pattern: re.Pattern[str]
    levels: frozenset[LogLevel] | None = None
    """None: WARN, ERROR and FATAL (DEBUG and INFO only when a rule names them)."""
    sources: frozenset[LogSource] | None = None
    """None: any source."""


CACHED_MESSAGES = 4096
"""Categories remembered per (source, level, message): a flood is mostly one message again and
again, which then costs a dict lookup instead of the searches. Emptied when full."""
CACHED_CHARS = 512
"""Longer messages are not remembered (the memory stays a few MB)."""


class Categories:
    """The rules, grouped by the (source, level) they apply to, in their order. `of` is a
    function of the event; it remembers recent answers (`CACHED_MESSAGES`)."""

    def __init__(self, rules: Iterable[CategoryRule]) -> None:
        rules = tuple(rules)
        self._cache: dict[tuple[LogSource, LogLevel, str], str | None] = {}
        self.names = frozenset(rule.name for rule in rules)
        self._by_kind: dict[tuple[LogSource, LogLevel], tuple[tuple[str, re.Pattern[str]], ...]]
        self._by_kind = {
            (source, level): tuple(
                (rule.name, rule.pattern)
                for rule in rules
                if (rule.sources is None or source in rule.sources)
                and (level in rule.levels if rule.levels is not None else level.counted)
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
        message = event.message or ""
        key = (event.source, event.level, message)
        cached = len(message) <= CACHED_CHARS
        if cached and key in self._cache:
            return self._cache[key]
        found = self._search(candidates, message[:SEARCHED_CHARS].lower())
        if cached:
            if len(self._cache) >= CACHED_MESSAGES:
                self._cache.clear()
            self._cache[key] = found
        return found

    @staticmethod
    def _search(candidates: tuple[tuple[str, re.Pattern[str]], ...], message: str) -> str | None:
        for name, pattern in candidates:
            if pattern.search(message) is not None:
                return name
        return None
