"""The retry button's candidates: failed tasks with an id, in state, saved, and chosen."""

from __future__ import annotations

import orjson

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.persistence import restore, snapshot
from bridge.core.retry import retry_payload, retry_target
from bridge.core.state import (
    NO_CHANGE,
    RETRY_MEMORY,
    RETRY_PENDING,
    BridgeState,
    StateSettings,
    acknowledge,
    apply_event,
    expire,
    forget_server,
    retry_gone,
    retry_started,
    retry_unstarted,
)

SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)


def event(
    kind: TaskEventType, task_id: str | None, execution: str = "e1", server: str = "QS1"
) -> TaskEvent:
    return TaskEvent(
        event_type=kind,
        server=server,
        source_format=SourceFormat.TAGGED,
        task_name=f"Reload {task_id}",
        task_id=task_id,
        execution_id=execution,
    )


def fail(state: BridgeState, task_id: str | None, at: float, server: str = "QS1") -> None:
    apply_event(state, event(TaskEventType.TASK_FAILED, task_id, f"e{at}", server), at, SETTINGS)


def test_the_newest_failed_task_with_an_id_that_is_allowed_is_the_target() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    fail(state, None, 3.0)  # no id: nothing to start by id
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "B"
    record = retry_target(state, lambda task_id: task_id == "A")
    assert record is not None
    assert record.event.task_id == "A"
    assert retry_target(state, lambda task_id: False) is None


def test_a_task_leaves_when_it_succeeds_not_when_acknowledged() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    acknowledge(state)
    assert list(state.retryable) == ["a", "b"]
    apply_event(state, event(TaskEventType.TASK_SUCCEEDED, "b", "e9"), 3.0, SETTINGS)
    apply_event(state, event(TaskEventType.TASK_ABORTED, "A", "e9"), 3.0, SETTINGS)
    assert list(state.retryable) == ["a"]
    fail(state, "C", 4.0)
    fail(state, "A", 5.0)  # failing again makes it the newest
    assert list(state.retryable) == ["c", "a"]


def test_the_memory_is_bounded_and_forgetting_a_server_forgets_its_tasks() -> None:
    state = BridgeState()
    for number in range(RETRY_MEMORY + 5):
        fail(state, f"T{number}", float(number), server="QS2" if number == RETRY_MEMORY else "QS1")
    assert len(state.retryable) == RETRY_MEMORY
    assert "t0" not in state.retryable
    assert "t4" not in state.retryable
    forget_server(state, "qs2")
    assert f"t{RETRY_MEMORY}" not in state.retryable
    assert len(state.retryable) == RETRY_MEMORY - 1


def test_the_candidates_survive_a_restart_in_order() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    restored = restore(snapshot(state))
    assert list(restored.retryable) == ["a", "b"]
    assert restored.retryable["b"].received_at == 2.0
    assert restore({**snapshot(BridgeState())} | {"retryable": []}).retryable == {}
    old = snapshot(BridgeState())
    del old["retryable"]  # a state file from before the retry button
    assert restore(old).retryable == {}


def test_a_pending_start_survives_a_restart() -> None:
    """A reload the button started and still running is not offered again after a restart;
    it is once its time is up, as without the restart."""
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    retry_started(state, "B", 3.0)
    restored = restore(orjson.loads(orjson.dumps(snapshot(state))))
    assert restored.retryable["b"].started_at == 3.0
    record = retry_target(restored, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "A"
    assert expire(restored, 3.0 + RETRY_PENDING, SETTINGS).retry
    record = retry_target(restored, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "B"


def test_a_file_from_before_the_pending_marks_offers_every_candidate() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    saved = snapshot(state)
    saved["version"] = 1
    assert "started_at" not in saved["retryable"][0]  # none marked: none written
    restored = restore(saved)
    assert restored.retryable["a"].started_at is None


def test_the_payload_names_the_task_or_nothing() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    assert retry_payload(retry_target(state, lambda task_id: True)) == {
        "task_id": "A",
        "task_name": "Reload A",
        "server": "QS1",
        "failed_at": "1970-01-01T00:00:01.000Z",
    }
    assert set(retry_payload(None).values()) == {None}


def test_a_started_candidate_is_not_offered_until_its_outcome_or_a_while() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    assert retry_started(state, "B", 3.0).retry
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "A"
    apply_event(state, event(TaskEventType.TASK_ABORTED, "B", "e7"), 4.0, SETTINGS)
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "B"
    retry_started(state, "B", 10.0)
    assert not expire(state, 10.0 + RETRY_PENDING - 1, SETTINGS).retry
    assert expire(state, 10.0 + RETRY_PENDING, SETTINGS).retry  # no outcome came: offered
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "B"


def test_a_task_qrs_does_not_know_is_no_longer_a_candidate() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    fail(state, "B", 2.0)
    assert retry_gone(state, "b").retry
    record = retry_target(state, lambda task_id: True)
    assert record is not None
    assert record.event.task_id == "A"
    assert retry_gone(state, "B") is NO_CHANGE


def test_a_task_id_in_any_guid_form_is_one_candidate() -> None:
    guid = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
    state = BridgeState()
    fail(state, "{" + guid.upper() + "}", 1.0)
    fail(state, f"urn:uuid:{guid}", 2.0)
    assert list(state.retryable) == [guid]
    succeeded = event(TaskEventType.TASK_SUCCEEDED, guid.replace("-", ""), "e9")
    apply_event(state, succeeded, 3.0, SETTINGS)
    assert state.retryable == {}


def test_a_late_refusal_leaves_the_mark_of_a_later_press() -> None:
    state = BridgeState()
    fail(state, "A", 1.0)
    retry_started(state, "A", 10.0)  # press 1: QRS is slow to answer
    retry_started(state, "A", 20.0)  # press 2 (after press 1's mark was cleared)
    assert not retry_unstarted(state, "A", 10.0).any  # press 1's refusal arrives late
    assert retry_target(state, lambda _: True) is None  # press 2 is still pending
    assert retry_unstarted(state, "A", 20.0).any
    assert retry_target(state, lambda _: True) is not None
