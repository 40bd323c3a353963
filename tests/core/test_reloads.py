"""One identity per reload (bridge.core.reloads): every pair of lines the appenders send for one
failed reload is one failing task, and the task's success clears it, in either order."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.payloads import site_payload
from bridge.core.persistence import StateFileError, restore, snapshot
from bridge.core.reloads import JOIN_MEMORY, Reloads, identities_of
from bridge.core.retry import retry_target
from bridge.core.state import (
    BridgeState,
    StateSettings,
    Watch,
    acknowledge,
    apply_event,
    forget_server,
)
from bridge.inputs.parse import parse_datagram
from tests.reload_lines import SUCCESSES, Format, Reload, engine, legacy, pairs, tagged, xml

SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)
RELOAD = Reload(host="QSPROD02")
TASK_KEY = f"qsprod02|task:{RELOAD.task_id}"


def event_of(data: bytes) -> TaskEvent:
    event = parse_datagram(data)
    assert isinstance(event, TaskEvent), event
    return event


def feed(
    state: BridgeState, lines: Sequence[bytes], at: float = 1.0, settings: StateSettings = SETTINGS
) -> int:
    """Apply each line; the number of events published."""
    published = 0
    for offset, data in enumerate(lines):
        published += apply_event(state, event_of(data), at + offset, settings).publish_event
    return published


@pytest.mark.parametrize("success", SUCCESSES.values(), ids=list(SUCCESSES))
@pytest.mark.parametrize(
    ("failures", "published"),
    [(lines, count) for _, lines, count in pairs()],
    ids=[name for name, _, _ in pairs()],
)
def test_one_failed_reload_in_any_two_formats_is_one_failing_task_until_it_succeeds(
    failures: list[Format], published: int, success: Format
) -> None:
    state = BridgeState()
    assert feed(state, [line(RELOAD, "failed") for line in failures]) == published
    site = site_payload(state)
    assert (site["reload_failure"], site["failing_tasks"]) == ("ON", 1)
    assert list(state.failing) == [TASK_KEY]
    assert state.servers["qsprod02"].tracked_tasks == 1
    assert feed(state, [success(RELOAD, "succeeded")], at=10.0) == 1
    site = site_payload(state)
    assert (site["reload_failure"], site["failing_tasks"]) == ("OFF", 0)
    assert state.servers["qsprod02"].tracked_tasks == 0
    assert not state.retryable


def test_lines_naming_the_app_or_the_name_alone_join_a_task_taught_by_an_earlier_run() -> None:
    """Butler's legacy and engine appenders alone name no task: a run logged with the id
    before (a success) joined both to it."""
    state = BridgeState()
    feed(state, [tagged(RELOAD, "succeeded")])
    later = dataclasses.replace(RELOAD, execution="e2")
    assert feed(state, [legacy(later, "failed"), engine(later, "failed")], at=5.0) == 2
    assert list(state.failing) == [TASK_KEY]
    # The task is known by its id: the retry button offers it, from the name-only line.
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert (record.event.task_id, record.event.source_format) == (
        RELOAD.task_id,
        SourceFormat.LEGACY,
    )


def test_without_a_line_naming_the_task_the_success_still_clears_what_it_names() -> None:
    """An engine line and a legacy line, no join known yet: two entries, both cleared by the
    task's success, which names its app and its name."""
    state = BridgeState()
    feed(state, [engine(RELOAD, "failed"), legacy(RELOAD, "failed")])
    assert site_payload(state)["failing_tasks"] == 2
    feed(state, [xml(RELOAD, "succeeded")], at=10.0)
    assert not state.failing
    assert state.servers["qsprod02"].tracked_tasks == 0


def test_the_engine_repeating_its_line_after_the_join_is_still_a_duplicate() -> None:
    state = BridgeState()
    assert feed(state, [engine(RELOAD), tagged(RELOAD), engine(RELOAD)]) == 2
    assert state.servers["qsprod02"].failed_tasks == 2


def test_a_distribution_naming_an_app_does_not_take_its_reload_task() -> None:
    state = BridgeState()
    feed(state, [tagged(RELOAD, "succeeded")])
    distribution = TaskEvent(
        event_type=TaskEventType.DISTRIBUTE_FINISHED,
        server="QSPROD02",
        source_format=SourceFormat.TAGGED,
        task_name="Distribute Sales",
        task_id="d1d2d3d4-0000-4000-8000-000000000001",
        app_id=RELOAD.app_id,
    )
    apply_event(state, distribution, 2.0, SETTINGS)
    feed(state, [engine(dataclasses.replace(RELOAD, execution="e2"))], at=3.0)
    assert list(state.failing) == [TASK_KEY]


def test_task_ids_in_any_form_are_one_task() -> None:
    upper = dataclasses.replace(RELOAD, task_id="{" + RELOAD.task_id.upper() + "}", execution="x")
    state = BridgeState()
    feed(state, [xml(upper, "failed"), tagged(RELOAD, "failed")])
    assert list(state.failing) == [TASK_KEY]
    feed(state, [tagged(RELOAD, "succeeded")], at=5.0)
    assert not state.failing


def test_an_abort_logged_before_the_join_is_merged_and_cleared_too() -> None:
    state = BridgeState()
    name_only = TaskEvent(
        event_type=TaskEventType.TASK_ABORTED,
        server="QSPROD02",
        source_format=SourceFormat.XML,
        task_name=RELOAD.name,
    )
    apply_event(state, name_only, 1.0, SETTINGS)
    assert list(state.aborted) == [f"qsprod02|name:{RELOAD.name}"]
    feed(state, [tagged(RELOAD, "aborted")], at=2.0)
    assert list(state.aborted) == [TASK_KEY]
    assert state.servers["qsprod02"].tracked_tasks == 1
    feed(state, [tagged(RELOAD, "succeeded")], at=3.0)
    assert not state.aborted


def test_a_name_only_line_matches_a_watch_entry_by_the_id_it_was_joined_to() -> None:
    settings = dataclasses.replace(SETTINGS, watch=(Watch(task_id=RELOAD.task_id),))
    state = BridgeState()
    feed(state, [tagged(RELOAD, "succeeded")], settings=settings)
    feed(state, [legacy(RELOAD, "failed")], at=5.0, settings=settings)
    record = state.watched[RELOAD.task_id]
    assert record.event.event_type is TaskEventType.TASK_FAILED
    assert record.event.task_id == RELOAD.task_id  # the id it was joined to


@pytest.mark.parametrize("engine_first", [True, False], ids=["engine first", "scheduler first"])
def test_on_a_site_of_several_nodes_the_lines_of_one_reload_are_one_task(
    engine_first: bool,
) -> None:
    """The scheduler logs on one node, the engine that ran the reload on another: one failing
    task, each node's flag on, and the task's success clears both."""
    rim = dataclasses.replace(RELOAD, host="QSRIM01")
    lines = [engine(rim), tagged(RELOAD)]
    state = BridgeState()
    feed(state, lines if engine_first else lines[::-1])
    assert set(state.failing) == {TASK_KEY, f"qsrim01|task:{RELOAD.task_id}"}
    assert site_payload(state)["failing_tasks"] == 1
    assert state.servers["qsrim01"].tracked_tasks == 1
    feed(state, [xml(RELOAD, "succeeded")], at=10.0)
    assert not state.failing
    assert site_payload(state)["failing_tasks"] == 0
    assert state.servers["qsrim01"].tracked_tasks == 0


def test_forgetting_a_server_forgets_its_records_and_keeps_the_joins() -> None:
    state = BridgeState()
    feed(state, [engine(dataclasses.replace(RELOAD, host="QS2")), tagged(RELOAD)])
    assert site_payload(state)["failing_tasks"] == 1
    forget_server(state, "qs2")
    assert list(state.failing) == [TASK_KEY]
    assert site_payload(state)["failing_tasks"] == 1
    forget_server(state, "qsprod02")
    assert site_payload(state)["failing_tasks"] == 0
    assert len(state.reloads.joins) == 2  # what the site's tasks are: no server's own


def test_acknowledging_keeps_the_joins() -> None:
    state = BridgeState()
    feed(state, [tagged(RELOAD)])
    acknowledge(state)
    feed(state, [engine(dataclasses.replace(RELOAD, execution="e2"))], at=100.0)
    assert list(state.failing) == [TASK_KEY]


def test_the_join_memory_is_bounded_the_least_recently_taught_forgotten_first() -> None:
    reloads = Reloads()
    first = TaskEvent(
        event_type=TaskEventType.TASK_SUCCEEDED,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        task_id="t-first",
        app_id="a-first",
    )
    reloads.learn(identities_of(first))
    for number in range(JOIN_MEMORY):
        event = dataclasses.replace(first, task_id=f"t{number}", app_id=f"a{number}")
        reloads.learn(identities_of(event))
        if number == JOIN_MEMORY // 2:
            reloads.learn(identities_of(first))  # taught again: kept
    assert len(reloads.joins) == JOIN_MEMORY
    assert reloads.joins["app:a-first"] == "task:t-first"
    assert "app:a0" not in reloads.joins


def test_the_joins_survive_a_restart() -> None:
    state = BridgeState()
    feed(state, [tagged(RELOAD)])
    restored = restore(orjson.loads(orjson.dumps(snapshot(state))))
    assert restored.reloads.joins == state.reloads.joins
    feed(restored, [engine(RELOAD)], at=5.0)  # the engine's line after the restart
    assert list(restored.failing) == [TASK_KEY]


def format_1_file() -> dict[str, Any]:
    """What the bridge before the joins saved after a scheduler line and an engine line of
    one failed reload (Sales), and a legacy line of another (HR): one key each, untyped."""
    state = BridgeState()
    hr = dataclasses.replace(RELOAD, name="Reload HR", task_id="hr-id", app_id="hr-app")
    feed(state, [tagged(RELOAD), engine(RELOAD), legacy(hr)])
    saved = snapshot(state)
    saved["version"] = 1
    del saved["joins"]
    saved["failing"] = {
        f"qsprod02|{RELOAD.task_id}": 1.0,
        f"qsprod02|{RELOAD.app_id}": 2.0,
        "qsprod02|Reload HR": 3.0,
    }
    return saved


def test_a_format_1_file_keeps_its_failures_until_their_tasks_succeed() -> None:
    state = restore(format_1_file())
    assert site_payload(state)["failing_tasks"] == 3  # as the older bridge counted them
    assert state.servers["qsprod02"].tracked_tasks == 3
    # The engine logs Sales' next attempt: its own key and the scheduler's are one reload
    # (the join is learned from the scheduler's line the file kept).
    feed(state, [engine(dataclasses.replace(RELOAD, execution="e2"))], at=10.0)
    assert site_payload(state)["failing_tasks"] == 2
    feed(state, [tagged(RELOAD, "succeeded")], at=11.0)
    assert list(state.failing) == ["qsprod02|v1:Reload HR"]
    hr = dataclasses.replace(RELOAD, name="Reload HR", task_id="hr-id", app_id="hr-app")
    feed(state, [xml(hr, "succeeded")], at=12.0)
    assert site_payload(state)["reload_failure"] == "OFF"
    assert state.servers["qsprod02"].tracked_tasks == 0
    assert not state.reloads.legacy


def test_a_format_1_file_saved_again_is_format_2_and_keeps_its_keys() -> None:
    state = restore(format_1_file())
    saved = orjson.loads(orjson.dumps(snapshot(state)))
    assert saved["version"] == 2
    again = restore(saved)
    assert sorted(again.failing) == sorted(state.failing)
    assert again.reloads.legacy == state.reloads.legacy
    assert again.reloads.joins == state.reloads.joins


def test_a_format_the_bridge_does_not_know_is_refused() -> None:
    saved = snapshot(BridgeState())
    saved["version"] = 3
    with pytest.raises(StateFileError, match="format 3 was written by a newer qlik2mqtt"):
        restore(saved)


def test_an_app_two_tasks_reload_joins_neither_and_its_failure_clears_with_its_task() -> None:
    """Cold review: the newest teaching won, so after T2's run `app:X` meant T2 and T1's
    engine failure was kept under T2: T1's success left `reload_failure` ON and T2 counted
    as failing. An app two tasks taught joins neither: its engine line stays under the app,
    which T1's success (naming the app) clears."""
    t1 = RELOAD
    t2 = dataclasses.replace(
        RELOAD, task_id="0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f", name="Reload Sales (full)"
    )
    state = BridgeState()
    feed(state, [tagged(t1, "succeeded"), tagged(t2, "succeeded")])  # both reload the app
    failed = dataclasses.replace(t1, execution="e2")
    feed(state, [engine(failed, "failed"), tagged(failed, "failed")], at=5.0)
    assert site_payload(state)["reload_failure"] == "ON"
    assert not any(key.endswith(t2.task_id) for key in state.failing)  # never T2's
    feed(state, [tagged(dataclasses.replace(t1, execution="e3"), "succeeded")], at=10.0)
    site = site_payload(state)
    assert (site["reload_failure"], site["failing_tasks"]) == ("OFF", 0)
    # The shared app is kept as such across a restart.
    assert restore(orjson.loads(orjson.dumps(snapshot(state)))).reloads.joins == (
        state.reloads.joins
    )
