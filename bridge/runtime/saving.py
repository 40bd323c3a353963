"""State file writes off the event loop, in the order they were asked for.

A write runs in a thread, and cancelling the task that awaits it does not stop the thread: the
periodic save that shutdown cancels may still be writing when the final save starts. Writes
take one lock, and a write asked for before the last one that landed is dropped, so an older
snapshot never lands after a newer one and the final save at shutdown is the last write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.core.persistence import write_snapshot

Write = Callable[[Path, dict[str, Any]], None]


class StateWriter:
    def __init__(self, path: Path, write: Write = write_snapshot) -> None:
        self.path = path
        self._write = write
        self._lock = threading.Lock()
        self._asked = 0
        """Writes asked for so far: each gets the next number."""
        self._landed = 0
        """The number of the newest write that landed."""

    async def write(self, snapshot: dict[str, Any]) -> bool:
        """Write `snapshot` once the write in progress (if any) has finished. False when a
        newer snapshot landed first (this one is dropped). Raises what the write raised."""
        self._asked += 1
        return await asyncio.to_thread(self._write_in_order, self._asked, snapshot)

    def _write_in_order(self, number: int, snapshot: dict[str, Any]) -> bool:
        with self._lock:
            if number < self._landed:
                return False
            self._write(self.path, snapshot)
            self._landed = number
            return True
