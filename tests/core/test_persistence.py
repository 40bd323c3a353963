"""State survives a restart: atomic save, faithful restore, a broken file moved aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.persistence import StateFileError, load_state, save_state, snapshot
from bridge.core.state import BridgeState, StateSettings, apply_event
from bridge.service import restore_state

SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)


def busy_state() -> BridgeState:
    state = BridgeState()
    for kind, who in [
        (UserEventType.SESSION_START, "Jöran"),
        (UserEventType.CONNECTION_OPEN, "Jöran"),
        (UserEventType.SESSION_START, "mia"),
    ]:
        event = UserEvent(
            event_type=kind,
            server="QS1",
            source_format=SourceFormat.XML,
            user_directory="CORP",
            user_id=who,
        )
        apply_event(state, event, 1000.0, SETTINGS)
    failure = TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QS1",
        source_format=SourceFormat.XML,
        task_name="Reload; €",
        task_id="t1",
        execution_id="e1",
    )
    apply_event(state, failure, 1001.0, SETTINGS)
    return state


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state = busy_state()
    save_state(path, state)
    restored = load_state(path)
    assert restored is not None
    assert snapshot(restored) == snapshot(state)
    assert restored.reload_failure
    assert restored.servers["qs1"].active_connections == 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left


def test_missing_file_is_no_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json") is None


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"version": 99}', b'{"version": 1}'])
def test_broken_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError):
        load_state(path)


def test_broken_file_is_moved_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"{garbage")
    state = restore_state(path)
    assert state.servers == {}
    kept = list(tmp_path.glob("state.json.broken-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == b"{garbage"
