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
        self._handle: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    def mark(self) -> None:
        """Something changed: make sure a flush is scheduled."""
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self._interval - loop.time())
        self._handle = loop.call_later(delay, self._run)

    def flush_now(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._run()

    def _run(self) -> None:
        self._handle = None
        self._last_flush = asyncio.get_running_loop().time()
        self._flush()
