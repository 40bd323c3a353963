"""One bridge per state file: the lock waits for a holder that lets go, and refuses with the
holder's pid when it does not."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.runtime.instance import InstanceLock, InstanceRunningError


async def test_a_second_holder_waits_until_the_first_lets_go(tmp_path: Path) -> None:
    state = tmp_path / "data" / "state.json"
    first, second = InstanceLock(state), InstanceLock(state)
    assert await first.acquire(wait=0)
    with capture_logs() as logs:
        waiting = asyncio.create_task(second.acquire(wait=10))
        for _ in range(10_000):  # until it says it waits (it tried once and found the holder)
            if any(entry["event"].startswith("waiting for the bridge") for entry in logs):
                break
            await asyncio.sleep(0)
    assert logs[0]["pid"] == os.getpid()
    assert not waiting.done()
    first.release()
    assert await asyncio.wait_for(waiting, 10) is True
    second.release()


async def test_a_holder_that_stays_is_named_in_the_refusal(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = InstanceLock(state)
    assert await first.acquire(wait=0)
    try:
        with pytest.raises(InstanceRunningError, match=rf"\(pid {os.getpid()}\) runs with"):
            await InstanceLock(state).acquire(wait=0.1)
    finally:
        first.release()


async def test_stopped_while_waiting_gives_up_without_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = InstanceLock(state)
    assert await first.acquire(wait=0)
    stop = asyncio.Event()
    stop.set()
    try:
        assert await InstanceLock(state).acquire(wait=10, stop=stop) is False
    finally:
        first.release()


async def test_a_state_folder_that_cannot_be_made_is_an_os_error(
    tmp_path: Path,
) -> None:
    """Not even root may create a folder under a file: the lock cannot be taken."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(FileExistsError):
        await InstanceLock(blocker / "state.json").acquire(wait=0)
