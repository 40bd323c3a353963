"""The coalescer on a loop that is never idle: an event every turn (a login storm from quiet)
must not keep putting the flush off."""

from __future__ import annotations

import asyncio

from bridge.runtime.coalesce import Coalescer

INTERVAL = 0.05


async def test_a_mark_every_loop_turn_still_flushes_every_interval() -> None:
    loop = asyncio.get_running_loop()
    flushes: list[float] = []
    coalescer = Coalescer(INTERVAL, lambda: flushes.append(loop.time()))
    done = asyncio.Event()
    began = loop.time()
    turns = 0

    def event() -> None:  # a datagram's handling: marks, and the next one is already waiting
        nonlocal turns
        turns += 1
        coalescer.mark()
        if len(flushes) >= 4 or turns >= 2_000_000:  # bounded
            done.set()
        else:
            loop.call_soon(event)

    loop.call_soon(event)
    await done.wait()
    assert len(flushes) >= 4, (turns, flushes)
    assert flushes[0] - began < INTERVAL  # the first change after quiet: at once


async def test_a_wait_asked_for_is_kept_and_a_sooner_flush_for_another_topic_wins() -> None:
    loop = asyncio.get_running_loop()
    flushed = asyncio.Event()
    coalescer = Coalescer(INTERVAL, flushed.set)
    coalescer.flush_now()  # a flush just now
    flushed.clear()
    began = loop.time()
    coalescer.mark(at_least=10.0)  # a big topic's budget: not for 10 s
    coalescer.mark()  # then a small topic changes: within the interval
    await asyncio.wait_for(flushed.wait(), 5)
    assert loop.time() - began < 5
