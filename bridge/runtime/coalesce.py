"""Coalescing: at most one flush per interval, always of the newest state.

The first change after a quiet period is flushed at once; changes within `interval` of the last
flush are folded into one flush at the end of it. A login storm costs O(topics), not O(events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Coalescer:
    def __init__(self, interval: float, flush: Callable[[], None]) -> None:
        self._interval = interval
        self._flush = flush
        self._handle: asyncio.Handle | None = None
        self._due = float("-inf")
        """When `_handle` runs."""
        self._last_flush = float("-inf")

    def mark(self, at_least: float = 0.0) -> None:
        """Something changed: make sure a flush is scheduled, within the interval of the last
        and not before `at_least` seconds from now (what a byte budget still asks to wait)."""
        due_by = self._last_flush + self._interval
        if self._handle is not None and self._due <= due_by:
            return  # due within the interval already: every event of a storm ends here, cheaply
        loop = asyncio.get_running_loop()
        when = max(due_by, loop.time() + at_least)
        if self._handle is not None:
            if self._due <= when:
                return  # already due in time
            self._handle.cancel()  # a sooner flush is wanted: for another topic
            self._handle = None
        self._due = when  # (uvloop hands back a plain Handle for a time already past: no when())
        self._handle = loop.call_at(when, self._run)

    def flush_now(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._run()

    def _run(self) -> None:
        self._handle = None
        self._last_flush = asyncio.get_running_loop().time()
        self._flush()
