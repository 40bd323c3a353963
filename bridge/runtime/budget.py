"""A byte budget per retained topic: a big payload is published less often.

After a publish of N bytes a topic waits N / rate seconds before its next one, so each retained
state topic averages at most `rate` bytes a second whatever its payload's size. A payload small
enough (under rate times `mqtt.state_interval`: 4 KiB at the defaults) never waits longer than the
coalescing interval; a bigger one goes at the first flush after its wait (the coalescer flushes
on the interval's ticks while changes come): at 50,000 users the server state (9 KB) every
0.75 s instead of 0.25, and `<server>/users` (900 KB) about once a minute.
"""

from __future__ import annotations

SLACK = 0.002
"""Seconds early a wait counts as over."""


class ByteBudget:
    def __init__(self, bytes_per_second: float) -> None:
        self._rate = bytes_per_second
        self._next_at: dict[str, float] = {}
        """Per topic: the loop time its next publish may go (from the size of its last)."""

    def wait(self, topic: str, now: float) -> float:
        """Seconds `topic` must still wait before its next publish (0: it may go now, also
        when a timer woke it under `SLACK` early: uvloop keeps time in whole milliseconds, and a
        wait of a fraction of one would put the topic off by a whole interval)."""
        next_at = self._next_at.get(topic)
        if next_at is None or next_at - now <= SLACK:
            return 0.0
        return next_at - now

    def spend(self, topic: str, size: int, now: float) -> None:
        """`topic` was published with `size` bytes at `now`."""
        self._next_at[topic] = now + size / self._rate

    def forget(self, topic: str) -> None:
        self._next_at.pop(topic, None)

    def clear(self) -> None:
        """Every topic may go at once (a new connection: the broker may have nothing)."""
        self._next_at.clear()
