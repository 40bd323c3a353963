"""`limits:`: past a cap only new names are refused; known servers, users and tasks keep
working, and nothing a datagram can create grows without end."""

from __future__ import annotations

from bridge.events import RejectReason, TaskEventType, UserEventType
from bridge.persistence import restore, snapshot
from bridge.state import BridgeState, StateSettings, acknowledge, apply_event, expire
from tests.test_state import task, user

CAPPED = StateSettings(
    stale_after=None,
    dedup_window=60.0,
    auto_clear_after=None,
    max_servers=2,
    max_sessions_per_server=2,
    max_tasks_per_server=2,
)


def test_a_new_server_past_the_cap_is_refused_and_known_ones_keep_working() -> None:
    state = BridgeState()
    for host in ("QS1", "QS2"):
        assert apply_event(state, user(UserEventType.SESSION_START, "a", host), 1.0, CAPPED).any
    refused = apply_event(state, user(UserEventType.SESSION_START, "a", "QS3"), 2.0, CAPPED)
    assert refused.refused is RejectReason.TOO_MANY_SERVERS
    assert not refused.any  # nothing to publish
    assert sorted(state.servers) == ["qs1", "qs2"]
    assert "qs3" not in state.slugs.values()
    known = apply_event(state, user(UserEventType.SESSION_START, "b", "qs1"), 3.0, CAPPED)
    assert known.refused is None
    assert known.publish_event
    assert len(state.servers["qs1"].sessions) == 2


def test_a_new_user_past_the_cap_is_refused_until_one_leaves() -> None:
    state = BridgeState()
    for who in ("a", "b"):
        apply_event(state, user(UserEventType.SESSION_START, who), 1.0, CAPPED)
    refused = apply_event(state, user(UserEventType.SESSION_START, "c"), 2.0, CAPPED)
    assert refused.refused is RejectReason.TOO_MANY_SESSIONS
    assert state.servers["qs1"].last_event_at == 1.0  # a refused event changes nothing
    assert apply_event(state, user(UserEventType.SESSION_START, "a"), 3.0, CAPPED).publish_event
    apply_event(state, user(UserEventType.SESSION_STOP, "a"), 4.0, CAPPED)
    assert apply_event(state, user(UserEventType.SESSION_START, "c"), 5.0, CAPPED).publish_event
    assert set(state.servers["qs1"].sessions) == {("CORP", "b"), ("CORP", "c")}


def test_connections_without_a_session_are_capped_too() -> None:
    state = BridgeState()
    for who in ("x", "y"):
        apply_event(state, user(UserEventType.CONNECTION_OPEN, who), 1.0, CAPPED)
    refused = apply_event(state, user(UserEventType.CONNECTION_OPEN, "z"), 1.0, CAPPED)
    assert refused.refused is RejectReason.TOO_MANY_SESSIONS
    assert apply_event(state, user(UserEventType.CONNECTION_OPEN, "x"), 2.0, CAPPED).any
    assert len(state.servers["qs1"].connections) == 2
    assert state.servers["qs1"].active_connections == 3


def test_tracked_tasks_are_capped_and_freed_by_success_acknowledge_and_auto_clear() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED, "t1"), 1.0, CAPPED)
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t2"), 1.0, CAPPED)
    refused = apply_event(state, task(TaskEventType.TASK_FAILED, "t3"), 2.0, CAPPED)
    assert refused.refused is RejectReason.TOO_MANY_TASKS
    assert "qs1|t3" not in state.failing
    again = apply_event(state, task(TaskEventType.TASK_FAILED, "t1", "e2"), 3.0, CAPPED)
    assert again.publish_event  # a known task fails again: not a new name
    # The cap counts tasks, not events: a success of anything is never refused.
    assert apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t9"), 3.0, CAPPED).any
    apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t1", "e3"), 4.0, CAPPED)
    assert apply_event(state, task(TaskEventType.TASK_FAILED, "t3"), 5.0, CAPPED).publish_event
    acknowledge(state)
    assert state.servers["qs1"].tracked_tasks == 0
    for number in range(2):
        apply_event(state, task(TaskEventType.TASK_FAILED, f"u{number}"), 100.0, CAPPED)
    clearing = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=10.0, max_tasks_per_server=2
    )
    expire(state, 200.0, clearing)
    assert apply_event(state, task(TaskEventType.TASK_FAILED, "u2"), 201.0, CAPPED).publish_event


def test_the_task_count_is_rebuilt_from_a_restored_state() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED, "t1"), 1.0, CAPPED)
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t2"), 1.0, CAPPED)
    restored = restore(snapshot(state))
    assert restored.servers["qs1"].tracked_tasks == 2
    refused = apply_event(restored, task(TaskEventType.TASK_FAILED, "t3"), 2.0, CAPPED)
    assert refused.refused is RejectReason.TOO_MANY_TASKS


def test_the_dedup_memory_is_bounded_within_its_window() -> None:
    settings = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=None, dedup_memory=100
    )
    state = BridgeState()
    for number in range(1_000):  # a flood of distinct task events within one second
        event = task(TaskEventType.TASK_SUCCEEDED, f"t{number}")
        apply_event(state, event, 1.0 + number / 1000, settings)
    assert len(state.recent_task_events) == 100
    # The newest are still remembered: their repeats are duplicates.
    repeat = apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t999"), 2.0, settings)
    assert not repeat.publish_event
