"""State file saves: taken at one moment, encoded in steps on the event loop, written in a
thread, in the order they were asked for.

`save` takes the snapshot in one step (`persistence.take`), then encodes it a step at a time
(`persistence.encode_steps`), letting the loop run between steps: no step of a save holds
the loop for more than about 1 ms at 50,000 sessions. The write runs in a thread, and
cancelling the task that awaits it does not stop the thread: the periodic save that shutdown
cancels may still be writing when the final save starts. Writes take one lock, and a write
asked for before the last one that landed is dropped, so an older snapshot never lands after a
newer one and the final save at shutdown is the last write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from bridge.core.persistence import encode_steps, take, write_pieces
from bridge.core.state import BridgeState
from bridge.runtime.steps import STEP_PAUSE

Write = Callable[[Path, list[bytes]], None]


async def encode_stepwise(state: BridgeState, pause: float = STEP_PAUSE) -> list[bytes]:
    """The state as it is now, as the file's pieces; the loop runs between the steps."""
    pieces: list[bytes] = []
    for piece in encode_steps(take(state)):
        pieces.append(piece)
        await asyncio.sleep(pause)
    return pieces


class StateWriter:
    def __init__(self, path: Path, write: Write = write_pieces) -> None:
        self.path = path
        self._write = write
        self._lock = threading.Lock()
        self._asked = 0
        """Writes asked for so far: each gets the next number."""
        self._landed = 0
        """The number of the newest write that landed."""

    async def save(self, state: BridgeState, pause: float = STEP_PAUSE) -> bool:
        """Snapshot `state` now and write it, as `write` does (`pause`: between the steps)."""
        self._asked += 1
        number = self._asked
        pieces = await encode_stepwise(state, pause)
        return await asyncio.to_thread(self._write_in_order, number, pieces)

    async def write(self, pieces: list[bytes]) -> bool:
        """Write the file's `pieces` once the write in progress (if any) has finished. False
        when a newer snapshot landed first (this one is dropped). Raises what the write
        raised."""
        self._asked += 1
        return await asyncio.to_thread(self._write_in_order, self._asked, pieces)

    def _write_in_order(self, number: int, pieces: list[bytes]) -> bool:
        with self._lock:
            if number < self._landed:
                return False
            self._write(self.path, pieces)
            self._landed = number
            return True
