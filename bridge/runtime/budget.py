"""A byte budget per retained topic: a big payload is published less often.

After a publish of N bytes a topic waits N / rate seconds before its next one, so each retained
state topic averages at most `rate` bytes a second whatever its payload's size. A payload small
enough (under rate times `mqtt.state_interval`: 4 KiB at the defaults) never waits longer than the
coalescing interval; at a big site the server state (9 KB at 50,000 users) updates about twice a
second instead of four times, and `<server>/users` (900 KB) about once a minute.
"""

from __future__ import annotations


class ByteBudget:
    def __init__(self, bytes_per_second: float) -> None:
        self._rate = bytes_per_second
        self._next_at: dict[str, float] = {}
        """Per topic: the loop time its next publish may go (from the size of its last)."""

    def wait(self, topic: str, now: float) -> float:
        """Seconds `topic` must still wait before its next publish (0: it may go now)."""
        next_at = self._next_at.get(topic)
        return 0.0 if next_at is None else max(0.0, next_at - now)

    def spend(self, topic: str, size: int, now: float) -> None:
        """`topic` was published with `size` bytes at `now`."""
        self._next_at[topic] = now + size / self._rate

    def forget(self, topic: str) -> None:
        self._next_at.pop(topic, None)

    def clear(self) -> None:
        """Every topic may go at once (a new connection: the broker may have nothing)."""
        self._next_at.clear()
