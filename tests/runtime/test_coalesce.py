"""The coalescer on a loop that is never idle (a login storm from quiet) must not keep putting
the flush off, on asyncio's loop and on uvloop's (the bridge's, where a handle for a time
already past is a plain `Handle`, without `when()`)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.runtime.budget import ByteBudget
from bridge.runtime.coalesce import Coalescer

INTERVAL = 0.05
BOTH_LOOPS = pytest.mark.event_loops("both")  # whatever TEST_EVENT_LOOP says (tests/conftest.py)


@BOTH_LOOPS
async def test_a_mark_every_loop_turn_still_flushes_every_interval() -> None:
    loop = asyncio.get_running_loop()
    flushes: list[float] = []
    coalescer = Coalescer(INTERVAL, lambda: flushes.append(loop.time()))
    done = asyncio.Event()
    began = loop.time()
    turns = 0
    errors: list[Exception] = []

    def event() -> None:  # a read of datagrams: each marks, and the next read is waiting
        nonlocal turns
        turns += 1
        try:
            for _ in range(3):
                coalescer.mark()
        except Exception as exc:  # raised in a loop callback it would only be logged
            errors.append(exc)
            done.set()
            return
        if len(flushes) >= 4 or turns >= 2_000_000:  # bounded
            done.set()
        else:
            loop.call_soon(event)

    loop.call_soon(event)
    await done.wait()
    assert errors == []
    assert len(flushes) >= 4, (turns, flushes)
    assert flushes[0] - began < INTERVAL  # the first change after quiet: at once


@BOTH_LOOPS
async def test_a_sooner_flush_for_another_topic_wins_over_a_wait() -> None:
    flushed = asyncio.Event()
    coalescer = Coalescer(INTERVAL, flushed.set)
    coalescer.flush_now()  # a flush just now
    flushed.clear()
    coalescer.mark(at_least=10.0)  # a big topic's budget: not for 10 s
    coalescer.mark()  # then a small topic changes: within the interval
    await asyncio.wait_for(flushed.wait(), 5)


@BOTH_LOOPS
async def test_a_wait_asked_for_is_kept() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    flushed = asyncio.Event()

    def flush() -> None:
        times.append(loop.time())
        flushed.set()

    coalescer = Coalescer(INTERVAL, flush)
    began = loop.time()
    coalescer.mark(at_least=0.2)  # nothing flushed yet, so due at once; but a budget says 0.2 s
    await asyncio.wait_for(flushed.wait(), 5)
    assert times[0] >= began + 0.2 - 0.002  # (uvloop keeps time in whole milliseconds)


@BOTH_LOOPS
async def test_a_budget_wait_ends_when_its_timer_fires() -> None:
    """A topic whose wait a timer ends (uvloop may wake it a fraction of a millisecond early)
    goes then, not an interval later."""
    loop = asyncio.get_running_loop()
    budget = ByteBudget(16_384)
    published: list[float] = []
    went = asyncio.Event()
    interval = 0.25

    def flush() -> None:
        wait = budget.wait("t", loop.time())
        if wait > 0:
            coalescer.mark(at_least=wait)
            return
        published.append(loop.time())
        budget.spend("t", 9_000, loop.time())  # 0.55 s of budget
        went.set()

    coalescer = Coalescer(interval, flush)
    coalescer.mark()
    await asyncio.wait_for(went.wait(), 5)
    went.clear()
    coalescer.mark()  # one change, in quiet, while the budget waits
    await asyncio.wait_for(went.wait(), 5)
    assert published[1] - published[0] < 9_000 / 16_384 + interval / 2, published
