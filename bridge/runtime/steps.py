"""The pause between two steps of work done in steps on the event loop (the state file's
encoding, `<server>/users`, Butler's active users)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

STEP_PAUSE = 0.002
"""Seconds between two steps. Yielding alone (`sleep(0)`) gave the loop one step of the work per
turn, and a turn reads only some of the waiting datagrams: at 10,000 events/s the events fell
behind by the work's whole length (tens of ms). With the pause, steps of about 1 ms take at
most about a third of the loop (a save at 50,000 sessions: 50 steps, ~0.1 s, every 5 s)."""


async def run_steps(steps: Generator[None, None, T]) -> T:
    """Run `steps` to its end, `STEP_PAUSE` between two steps (the loop runs there); its value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            value: T = done.value
            return value
        await asyncio.sleep(STEP_PAUSE)
