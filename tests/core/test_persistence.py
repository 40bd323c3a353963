"""State survives a restart: atomic save, faithful restore, a broken file moved aside."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.config import Config
from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.log_payloads import server_log_events, site_log_events
from bridge.core.path import Bridge
from bridge.core.persistence import StateFileError, load_state, save_state, snapshot
from bridge.core.state import BridgeState, StateSettings, apply_event, expire
from bridge.core.stats import Stats
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


def logged_state() -> BridgeState:
    state = BridgeState()
    for server, level, source, message, now in [
        ("QS1", LogLevel.WARN, LogSource.PROXY, "slow", 1000.0),
        ("QS1", LogLevel.ERROR, LogSource.ENGINE, "Out of memory; 2 GB €", 1100.0),
        ("QS2", LogLevel.FATAL, LogSource.SCHEDULER, "Reload failed", 1200.0),
        ("QS1", LogLevel.ERROR, LogSource.REPOSITORY, "Node qs4 is not responding", 1300.0),
    ]:
        event = LogEvent(
            source=source,
            level=level,
            server=server,
            source_format=SourceFormat.TAGGED,
            subsystem="System.Engine",
            message=message,
            task_name="Reload; €" if source is LogSource.SCHEDULER else None,
            category="connectivity" if "responding" in message else None,
        )
        apply_event(state, event, now, SETTINGS)
    return state


def test_the_last_log_error_and_the_windowed_counts_survive_a_restart(tmp_path: Path) -> None:
    """The lamp (the log flags, persisted) and the sensors agree after a restart: the last
    error and the counts in the window come back; the totals are since this start."""
    path = tmp_path / "state.json"
    state = logged_state()
    save_state(path, state)
    restored = load_state(path)
    assert restored is not None
    assert snapshot(restored) == snapshot(state)
    for slug in ("qs1", "qs2"):
        before = server_log_events(state.servers[slug])
        after = server_log_events(restored.servers[slug])
        assert after["last_error"] == before["last_error"] is not None
        for key in ("warnings", "errors", "fatals"):
            assert after[key] == before[key], (slug, key)
        assert after["errors_total"] == after["fatals_total"] == 0
    site = site_log_events(restored)
    assert site["last_error"]["message"] == "Node qs4 is not responding"
    assert site["last_error"]["server"] == "QS1"
    assert (site["errors"], site["fatals"], site["warnings"]) == (2, 1, 1)
    assert restored.last_log_error is restored.servers["qs1"].last_log_error
    # Counting goes on from the restored buckets, and they leave the window in time.
    later = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)
    expire(restored, 1100.0 + 3600.0 + 60.0, later)
    assert server_log_events(restored.servers["qs1"])["errors"] == 1  # 1,100 s has left


def test_windowed_counts_saved_for_another_window_start_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, logged_state())
    restored = load_state(path)
    assert restored is not None
    shorter = StateSettings(None, 60.0, None, log_window=600.0)
    expire(restored, 1300.0, shorter)
    assert server_log_events(restored.servers["qs1"])["errors"] == 0
    assert server_log_events(restored.servers["qs1"])["last_error"] is not None


def test_a_bridge_started_hours_later_publishes_no_old_window_counts(tmp_path: Path) -> None:
    """The restored buckets leave the window before the first connect publishes them (the
    minute-by-minute expiry would publish hours-old counts first)."""
    path = tmp_path / "state.json"
    save_state(path, logged_state())
    restored = load_state(path)
    assert restored is not None
    assert server_log_events(restored.servers["qs1"])["errors"] > 0
    bridge = Bridge(Config(), restored, Stats(), lambda: 1300.0 + 2 * 3600.0, time.monotonic)
    bridge.catch_up()
    assert server_log_events(restored.servers["qs1"])["errors"] == 0
    assert server_log_events(restored.servers["qs1"])["last_error"] is not None  # kept
    assert bridge.dirty  # saved so
