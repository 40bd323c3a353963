"""Warnings, errors and fatals counted since start and in a rolling window (DEBUG and INFO log
events are published, never counted). Pure: `now` is
passed in; memory is bounded (`BUCKETS` buckets per counter, whatever the rate).

The window is cut into `BUCKETS` equal buckets: a count "in the last hour" is exact to a
sixtieth of the hour (a minute). A flood of 10,000 warnings a second costs one addition each.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bridge.core.events import LogLevel

BUCKETS = 60
LEVEL_ORDER = (LogLevel.WARN, LogLevel.ERROR, LogLevel.FATAL)
_INDEX = {level: index for index, level in enumerate(LEVEL_ORDER)}


@dataclass(slots=True)
class LevelCounts:
    """Counts per level of one service on one server (or summed over many)."""

    total: list[int] = field(default_factory=lambda: [0, 0, 0])
    """Since the bridge started, per level of `LEVEL_ORDER`."""
    window: list[int] = field(default_factory=lambda: [0, 0, 0])
    """In the rolling window: the sum of `buckets`."""
    buckets: deque[tuple[int, list[int]]] = field(default_factory=deque)
    """(bucket number, counts per level), oldest first, at most `BUCKETS`."""
    span: float = 0.0
    """The window the buckets were cut for (restored from the state file, the window may have
    been set to another length since: its buckets then start empty)."""

    def add(self, level: LogLevel, now: float, window: float) -> None:
        """Count a warning, an error or a fatal; DEBUG and INFO are not counted."""
        index = _INDEX.get(level)
        if index is None:
            return
        number = _bucket(now, window)
        buckets = self.buckets
        if window != self.span or (buckets and buckets[0][0] <= number - BUCKETS):
            self.prune(now, window)  # (otherwise it would find nothing to drop)
        if not self.buckets or self.buckets[-1][0] < number:
            self.buckets.append((number, [0, 0, 0]))
        self.buckets[-1][1][index] += 1  # a clock stepped back counts in the newest bucket
        self.window[index] += 1
        self.total[index] += 1

    def prune(self, now: float, window: float) -> bool:
        """Drop the buckets that left the window; whether the window's counts changed."""
        if window != self.span:
            changed = any(self.window)
            self.buckets.clear()
            self.window = [0, 0, 0]
            self.span = window
            return changed
        oldest = _bucket(now, window) - BUCKETS + 1
        changed = False
        while self.buckets and self.buckets[0][0] < oldest:
            _, counts = self.buckets.popleft()
            for index, count in enumerate(counts):
                self.window[index] -= count
            changed = changed or any(counts)
        return changed


def _bucket(now: float, window: float) -> int:
    return int(now // (window / BUCKETS))


def summed(counts: list[LevelCounts]) -> tuple[list[int], list[int]]:
    """(in the window, since start) per level, over several counters."""
    window, total = [0, 0, 0], [0, 0, 0]
    for each in counts:
        for index in range(3):
            window[index] += each.window[index]
            total[index] += each.total[index]
    return window, total
