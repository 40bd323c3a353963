"""The state file is taken at one moment and encoded in steps (issue 25): its bytes are the
whole snapshot's, each step encodes a bounded number of rows, and sessions that start or stop
while the steps run are not in it (the file is the moment's)."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import orjson
import pytest

from bridge.core.events import SourceFormat, UserEvent, UserEventType
from bridge.core.persistence import (
    encode,
    encode_steps,
    load_state,
    restore,
    snapshot,
    take,
    write_pieces,
)
from bridge.core.state import BridgeState, StateSettings, apply_event
from tests.core.test_persistence import busy_state, logged_state

FIXTURES = Path(__file__).parent.parent / "fixtures" / "state"
SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)


def user(state: BridgeState, kind: UserEventType, who: str, server: str = "QS1") -> None:
    event = UserEvent(
        event_type=kind,
        server=server,
        source_format=SourceFormat.XML,
        user_directory="CORP",
        user_id=who,
    )
    apply_event(state, event, 2000.0, SETTINGS)


def crowded_state(users: int = 50) -> BridgeState:
    state = logged_state()
    for number in range(users):
        user(state, UserEventType.SESSION_START, f"u{number}")
        user(state, UserEventType.CONNECTION_OPEN, f"u{number}", server="QS2")
    user(state, UserEventType.SESSION_STOP, "u7")  # a hole in the dict
    state.servers.update(busy_state().servers)
    return state


def fixture_state(version: int, tmp_path: Path) -> BridgeState:
    shutil.copy(FIXTURES / f"format-{version}.json", tmp_path / "state.json")
    state = load_state(tmp_path / "state.json")
    assert state is not None
    return state


@pytest.mark.parametrize("rows", [1, 3, 2048])
def test_the_pieces_are_the_snapshot_encoded_at_once(rows: int, tmp_path: Path) -> None:
    for state in (BridgeState(), crowded_state(), fixture_state(1, tmp_path)):
        pieces = list(encode_steps(take(state), rows))
        assert b"".join(pieces) == orjson.dumps(snapshot(state))


def test_no_step_encodes_more_than_its_rows() -> None:
    state = crowded_state(users=50)
    pieces = list(encode_steps(take(state), 8))
    # A piece of rows is `[d, u, …]` rows: count them by their opening brackets.
    assert max(piece.count(b'["CORP"') for piece in pieces) == 8
    assert len(pieces) > 2 * 50 / 8


def test_a_file_written_in_pieces_reads_back_as_format_2(tmp_path: Path) -> None:
    state = fixture_state(2, tmp_path)
    write_pieces(tmp_path / "again.json", encode(state))
    again = load_state(tmp_path / "again.json")
    assert again is not None
    assert snapshot(again) == snapshot(state)
    assert orjson.loads((tmp_path / "again.json").read_bytes())["version"] == 2


def test_sessions_that_change_while_the_steps_run_are_not_in_the_file() -> None:
    state = crowded_state(users=50)
    before = snapshot(state)
    steps = encode_steps(take(state), 4)
    pieces = [next(steps), next(steps), next(steps)]
    user(state, UserEventType.SESSION_START, "late")  # after the moment: not in this save
    user(state, UserEventType.SESSION_STOP, "u40")  # stopped after it: still in it
    user(state, UserEventType.SESSION_START, "elsewhere", server="QS9")  # a new server
    user(state, UserEventType.CONNECTION_OPEN, "u3", server="QS2")  # a count read in its step
    pieces.extend(steps)
    saved = orjson.loads(b"".join(pieces))
    assert saved["servers"]["qs1"]["sessions"] == before["servers"]["qs1"]["sessions"]
    assert "qs9" not in saved["servers"]
    connections = {user: count for _, user, count, _ in saved["servers"]["qs2"]["connections"]}
    assert connections["u3"] == 2
    assert len(connections) == 50
    assert snapshot(restore(saved))["servers"]["qs1"] == before["servers"]["qs1"]


def test_a_connection_closed_while_the_steps_run_is_left_out() -> None:
    state = crowded_state(users=5)
    steps = encode_steps(take(state), 1)
    pieces = [next(steps)]
    user(state, UserEventType.CONNECTION_CLOSE, "u2", server="QS2")
    pieces.extend(steps)
    saved = orjson.loads(b"".join(pieces))
    kept = [user for _, user, _, _ in saved["servers"]["qs2"]["connections"]]
    assert kept == ["u0", "u1", "u3", "u4"]
    restore(saved)


def test_the_collector_is_on_between_the_steps() -> None:
    """A step holds garbage collection off while its rows exist, never across a yield."""
    assert gc.isenabled()
    steps = encode_steps(take(crowded_state(users=50)), 4)
    for _ in steps:
        assert gc.isenabled()
    gc.disable()  # one who turned it off keeps it off
    try:
        list(encode_steps(take(crowded_state(users=50)), 4))
        assert not gc.isenabled()
    finally:
        gc.enable()
