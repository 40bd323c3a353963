"""The state file's writes land in the order they were asked for: the final save at shutdown is
the last write, even when the periodic save it cancelled is still writing (issue 22, 6)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import orjson
import pytest

from bridge.core.events import SourceFormat, UserEvent, UserEventType
from bridge.core.persistence import ROWS_PER_STEP, load_state, write_pieces
from bridge.core.state import BridgeState, StateSettings, apply_event
from bridge.runtime.saving import StateWriter


def named(name: str) -> list[bytes]:
    return [orjson.dumps({"name": name})]


class SlowFirstWrite:
    """The real write, the first one held until the test lets it go (a slow disk)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.landed: list[str] = []
        self._calls = 0

    def __call__(self, path: Path, pieces: list[bytes]) -> None:
        self._calls += 1
        if self._calls == 1:
            self.started.set()
            assert self.release.wait(10)
        write_pieces(path, pieces)
        self.landed.append(orjson.loads(b"".join(pieces))["name"])


async def test_the_final_save_waits_for_the_cancelled_periodic_one_and_lands_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    write = SlowFirstWrite()
    writer = StateWriter(path, write)
    periodic = asyncio.create_task(writer.write(named("older")))
    await asyncio.to_thread(write.started.wait, 10)
    periodic.cancel()  # as shutdown cancels the save job: its thread writes on
    final = asyncio.create_task(writer.write(named("final")))
    await asyncio.sleep(0.2)  # give a final save that does not wait the time to land first
    assert write.landed == []
    write.release.set()
    assert await final is True
    assert write.landed == ["older", "final"]
    assert json.loads(path.read_text())["name"] == "final"


async def test_a_write_asked_for_earlier_that_has_not_started_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    landed: list[str] = []

    def write(to: Path, pieces: list[bytes]) -> None:
        write_pieces(to, pieces)
        landed.append(orjson.loads(b"".join(pieces))["name"])

    writer = StateWriter(path, write)
    # The second write's thread may run before the first's: the older one then never lands.
    results = await asyncio.gather(*(writer.write(named(str(n))) for n in range(20)))
    assert landed == sorted(landed, key=int)
    assert landed[-1] == "19"
    assert results[-1] is True
    assert json.loads(path.read_text())["name"] == "19"


def session(state: BridgeState, who: str) -> None:
    event = UserEvent(
        event_type=UserEventType.SESSION_START,
        server="QS1",
        source_format=SourceFormat.XML,
        user_directory="CORP",
        user_id=who,
    )
    settings = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)
    apply_event(state, event, 1.0, settings)


async def test_a_save_lets_the_loop_run_between_its_steps_and_keeps_its_moment(
    tmp_path: Path,
) -> None:
    """Issue 25: the loop runs while a save is encoded; what changes meanwhile is the next
    save's."""
    state = BridgeState()
    for number in range(3 * ROWS_PER_STEP):
        session(state, f"u{number}")
    writer = StateWriter(tmp_path / "state.json")
    saving = asyncio.create_task(writer.save(state))
    await asyncio.sleep(0)  # the save takes its moment and encodes its first step
    session(state, "late")
    assert not saving.done()
    assert await saving is True
    saved = load_state(tmp_path / "state.json")
    assert saved is not None
    assert len(saved.servers["qs1"].sessions) == 3 * ROWS_PER_STEP
    assert ("CORP", "late") not in saved.servers["qs1"].sessions
    assert await writer.save(state) is True
    again = load_state(tmp_path / "state.json")
    assert again is not None
    assert ("CORP", "late") in again.servers["qs1"].sessions


async def test_the_final_save_has_what_came_while_a_cancelled_save_was_encoding(
    tmp_path: Path,
) -> None:
    """Shutdown cancels the periodic save mid-steps; the final save takes the state then."""
    state = BridgeState()
    for number in range(3 * ROWS_PER_STEP):
        session(state, f"u{number}")
    writer = StateWriter(tmp_path / "state.json")
    periodic = asyncio.create_task(writer.save(state))
    await asyncio.sleep(0)  # its first step: the state is taken, the encoding goes on
    assert not periodic.done()
    session(state, "last")
    periodic.cancel()
    assert await writer.save(state, pause=0) is True
    with pytest.raises(asyncio.CancelledError):
        await periodic
    saved = load_state(tmp_path / "state.json")  # and the cancelled save wrote nothing after
    assert saved is not None
    assert ("CORP", "last") in saved.servers["qs1"].sessions
    assert len(saved.servers["qs1"].sessions) == 3 * ROWS_PER_STEP + 1
