"""Upgrades keep the live state: a state file written by each earlier format (a fixture the
release that used it wrote, tests/fixtures/state/) loads, with its sessions, failure flag,
log-window counts and retry candidates; a file from a newer release (a downgrade) or a corrupt
one is kept aside with one clear line, never overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.persistence import FORMAT_VERSION, READABLE_VERSIONS, load_state, snapshot
from bridge.core.state import StateSettings, apply_event
from bridge.service import restore_state

FIXTURES = Path(__file__).parent.parent / "fixtures" / "state"
SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)
SALES = "7c3e5a10-0000-4000-8000-000000000001"
"""The task `send-test-events` fails (its abort is ...0002), twice in each fixture."""


def test_there_is_a_fixture_for_every_format_this_release_reads() -> None:
    assert sorted(int(p.stem.split("-")[1]) for p in FIXTURES.glob("format-*.json")) == list(
        READABLE_VERSIONS
    )
    assert READABLE_VERSIONS[-1] == FORMAT_VERSION


@pytest.mark.parametrize("version", READABLE_VERSIONS)
def test_every_earlier_format_loads_with_its_live_state(tmp_path: Path, version: int) -> None:
    path = tmp_path / "state.json"
    shutil.copy(FIXTURES / f"format-{version}.json", path)
    state = load_state(path)
    assert state is not None
    server = state.servers["qswin01"]
    assert {user for _, user in server.sessions} == {"anna", "jöran"}
    assert server.active_connections == 4
    assert state.reload_failure
    assert state.failing_tasks == 1
    assert state.aborted
    assert server.log_error_at is not None
    assert server.last_log_error is not None
    assert set(server.log_categories_at) == {"out_of_memory", "licence", "connectivity", "reload"}
    counts = {source.value: counts for source, counts in server.log_counts.items()}
    assert set(counts) == {"engine", "proxy", "repository", "scheduler"}
    assert [record.event.task_id for record in state.retryable.values()] == [SALES]
    # The failure kept from that format clears when its task succeeds, as a new one would.
    success = TaskEvent(
        event_type=TaskEventType.TASK_SUCCEEDED,
        server="QSWIN01",
        source_format=SourceFormat.TAGGED,
        task_id=SALES.upper(),
        execution_id="after-the-upgrade",
    )
    change = apply_event(state, success, server.last_event_at or 0.0, SETTINGS)
    assert change.flag_changed
    assert not state.reload_failure
    assert state.retryable == {}


@pytest.mark.parametrize("version", READABLE_VERSIONS)
def test_an_upgraded_state_is_saved_in_the_current_format(tmp_path: Path, version: int) -> None:
    path = tmp_path / "state.json"
    shutil.copy(FIXTURES / f"format-{version}.json", path)
    state = load_state(path)
    assert state is not None
    saved = snapshot(state)
    assert saved["version"] == FORMAT_VERSION
    again = tmp_path / "again.json"
    again.write_text(json.dumps(saved))
    reloaded = load_state(again)
    assert reloaded is not None
    assert snapshot(reloaded) == saved


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (json.dumps({"version": FORMAT_VERSION + 1, "servers": {}}), "written by a newer"),
        ('{"version": 2, "servers": {"qs1": ', "not JSON"),
        ('{"version": "two"}', "unknown state format version"),
    ],
)
def test_a_downgrade_or_a_corrupt_file_is_kept_aside_with_one_line(
    tmp_path: Path, content: str, said: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with capture_logs() as logs:
        state = restore_state(path)
    assert state.servers == {}
    (kept,) = tmp_path.glob("state.json.broken-*")
    assert kept.read_text() == content  # kept as it was
    assert not path.exists()  # so the new state never overwrites it
    (line,) = [entry for entry in logs if entry["log_level"] == "error"]
    assert said in line["error"]
    assert line["moved_to"] == str(kept)
