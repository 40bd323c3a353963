"""The state file's writes land in the order they were asked for: the final save at shutdown is
the last write, even when the periodic save it cancelled is still writing (issue 22, 6)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from bridge.core.persistence import write_snapshot
from bridge.runtime.saving import StateWriter


class SlowFirstWrite:
    """The real write, the first one held until the test lets it go (a slow disk)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.landed: list[str] = []
        self._calls = 0

    def __call__(self, path: Path, snapshot: dict[str, Any]) -> None:
        self._calls += 1
        if self._calls == 1:
            self.started.set()
            assert self.release.wait(10)
        write_snapshot(path, snapshot)
        self.landed.append(snapshot["name"])


async def test_the_final_save_waits_for_the_cancelled_periodic_one_and_lands_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    write = SlowFirstWrite()
    writer = StateWriter(path, write)
    periodic = asyncio.create_task(writer.write({"name": "older"}))
    await asyncio.to_thread(write.started.wait, 10)
    periodic.cancel()  # as shutdown cancels the save job: its thread writes on
    final = asyncio.create_task(writer.write({"name": "final"}))
    await asyncio.sleep(0.2)  # give a final save that does not wait the time to land first
    assert write.landed == []
    write.release.set()
    assert await final is True
    assert write.landed == ["older", "final"]
    assert json.loads(path.read_text())["name"] == "final"


async def test_a_write_asked_for_earlier_that_has_not_started_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    landed: list[str] = []

    def write(to: Path, snapshot: dict[str, Any]) -> None:
        write_snapshot(to, snapshot)
        landed.append(snapshot["name"])

    writer = StateWriter(path, write)
    # The second write's thread may run before the first's: the older one then never lands.
    results = await asyncio.gather(*(writer.write({"name": str(n)}) for n in range(20)))
    assert landed == sorted(landed, key=int)
    assert landed[-1] == "19"
    assert results[-1] is True
    assert json.loads(path.read_text())["name"] == "19"
