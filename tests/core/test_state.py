"""State transitions: sessions, connections, failures, dedup, expiry (pure, clock passed in)."""

from __future__ import annotations

import random

from pytest_mock import MockerFixture

from bridge.core import state as state_module
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.payloads import (
    distinct_users,
    server_payload,
    site_payload,
    user_name,
    user_names,
    users_payload,
)
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import (
    BridgeState,
    StateSettings,
    acknowledge,
    apply_event,
    expire,
    forget_server,
)

SETTINGS = StateSettings(stale_after=3600.0, dedup_window=60.0, auto_clear_after=None)


def user(
    kind: UserEventType, user_id: str, server: str = "QS1", directory: str = "CORP"
) -> UserEvent:
    return UserEvent(
        event_type=kind,
        server=server,
        source_format=SourceFormat.LEGACY,
        user_directory=directory,
        user_id=user_id,
    )


def task(
    kind: TaskEventType, task_id: str = "t1", execution_id: str | None = "e1", server: str = "QS1"
) -> TaskEvent:
    return TaskEvent(
        event_type=kind,
        server=server,
        source_format=SourceFormat.TAGGED,
        task_name=f"Reload {task_id}",
        task_id=task_id,
        execution_id=execution_id,
    )


def test_sessions_and_connections_are_counted_per_server() -> None:
    state = BridgeState()
    for event in (
        user(UserEventType.SESSION_START, "mia"),
        user(UserEventType.CONNECTION_OPEN, "mia"),
        user(UserEventType.CONNECTION_OPEN, "mia"),
        user(UserEventType.SESSION_START, "bob"),
        user(UserEventType.SESSION_START, "mia"),  # again: still one session
    ):
        change = apply_event(state, event, 100.0, SETTINGS)
        assert change.publish_event
        assert change.servers == {"qs1"}
    payload = server_payload(state.servers["qs1"])
    assert payload["active_sessions"] == 2
    assert payload["active_users"] == 2
    assert payload["active_connections"] == 2
    assert payload["users_preview"] == ["CORP\\bob", "CORP\\mia"]
    assert "users" not in payload  # every name is on <server>/users
    listed = users_payload(state.servers["qs1"], user_names(state.servers["qs1"]))
    assert listed["users"] == ["CORP\\bob", "CORP\\mia"]

    apply_event(state, user(UserEventType.SESSION_STOP, "mia"), 101.0, SETTINGS)
    payload = server_payload(state.servers["qs1"])
    assert (payload["active_sessions"], payload["active_connections"]) == (1, 0)


def test_connection_count_never_goes_below_zero() -> None:
    state = BridgeState()
    for _ in range(3):
        apply_event(state, user(UserEventType.CONNECTION_CLOSE, "mia"), 1.0, SETTINGS)
    apply_event(state, user(UserEventType.CONNECTION_OPEN, "mia"), 2.0, SETTINGS)
    assert state.servers["qs1"].active_connections == 1


def test_site_counts_distinct_users_across_servers() -> None:
    state = BridgeState()
    apply_event(state, user(UserEventType.SESSION_START, "mia", server="QS1"), 1.0, SETTINGS)
    apply_event(state, user(UserEventType.SESSION_START, "mia", server="QS2"), 1.0, SETTINGS)
    apply_event(state, user(UserEventType.SESSION_START, "bob", server="QS2"), 1.0, SETTINGS)
    site = site_payload(state)
    assert (site["servers"], site["active_sessions"], site["active_users"]) == (2, 3, 2)


def test_failure_sets_flag_and_acknowledge_clears_it() -> None:
    state = BridgeState()
    change = apply_event(state, task(TaskEventType.TASK_FAILED), 10.0, SETTINGS)
    assert change.flag_changed
    assert site_payload(state)["reload_failure"] == "ON"
    assert site_payload(state)["last_failed_task"]["task_name"] == "Reload t1"
    assert state.servers["qs1"].failed_tasks == 1

    assert acknowledge(state).flag_changed
    assert site_payload(state)["reload_failure"] == "OFF"
    assert not acknowledge(state).any  # nothing left to acknowledge
    assert site_payload(state)["last_failed_task"] is not None  # history stays


def test_same_task_succeeding_clears_only_its_failure() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED, "t1"), 10.0, SETTINGS)
    apply_event(state, task(TaskEventType.TASK_FAILED, "t2"), 11.0, SETTINGS)
    apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t1", "e9"), 12.0, SETTINGS)
    assert state.reload_failure  # t2 still failing
    change = apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t2", "e9"), 13.0, SETTINGS)
    assert change.flag_changed
    assert not state.reload_failure


def test_aborts_are_counted_but_do_not_raise_the_flag() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_ABORTED), 10.0, SETTINGS)
    assert not state.reload_failure
    assert state.servers["qs1"].aborted_tasks == 1


def test_repeated_datagrams_of_one_failure_are_one_event() -> None:
    state = BridgeState()
    first = apply_event(state, task(TaskEventType.TASK_FAILED), 10.0, SETTINGS)
    again = apply_event(state, task(TaskEventType.TASK_FAILED), 20.0, SETTINGS)
    assert first.publish_event
    assert not again.publish_event
    assert state.servers["qs1"].failed_tasks == 1
    other_run = apply_event(
        state, task(TaskEventType.TASK_FAILED, execution_id="e2"), 21.0, SETTINGS
    )
    assert other_run.publish_event
    after_window = apply_event(state, task(TaskEventType.TASK_FAILED), 10.0 + 61.0, SETTINGS)
    assert after_window.publish_event
    assert state.servers["qs1"].failed_tasks == 3


def test_stale_sessions_expire_and_connections_keep_them_alive() -> None:
    state = BridgeState()
    apply_event(state, user(UserEventType.SESSION_START, "idle"), 0.0, SETTINGS)
    apply_event(state, user(UserEventType.SESSION_START, "busy"), 0.0, SETTINGS)
    apply_event(state, user(UserEventType.CONNECTION_OPEN, "busy"), 3000.0, SETTINGS)
    assert not expire(state, 3500.0, SETTINGS).any
    change = expire(state, 3700.0, SETTINGS)
    assert change.servers == change.expired == {"qs1"}
    assert set(state.servers["qs1"].sessions) == {("CORP", "busy")}


def test_expiry_over_a_day_of_sessions_drops_each_stale_one_once_and_scans_only_when_due(
    mocker: MockerFixture,
) -> None:
    """A day of logins, refreshes, logouts and lost stops, expired every minute, the clock
    stepping back 6 h halfway: what is dropped is exactly what was idle past `stale_after`,
    and the sessions are scanned only when the oldest last-seen time could be stale (a scan
    is O(sessions): ms at 50,000)."""
    state = BridgeState()
    rng = random.Random(25)
    stale_after = 3600.0
    sessions: dict[str, float] = {}  # the model: user → last seen
    connections: dict[str, float] = {}
    scans = mocker.spy(state_module, "_scan_stale")
    expiries = 0
    for minute in range(24 * 60):
        now = minute * 60.0 - (6 * 3600.0 if minute >= 700 else 0.0)  # the clock steps back 6 h
        for _ in range(3):
            who = f"u{rng.randrange(60)}"
            if rng.random() < 0.5:
                apply_event(state, user(UserEventType.SESSION_START, who), now, SETTINGS)
                sessions[who] = now
            elif who in sessions:  # a connection refreshes its session
                apply_event(state, user(UserEventType.CONNECTION_OPEN, who), now, SETTINGS)
                sessions[who] = connections[who] = now
        if minute % 7 == 0 and sessions:
            gone = rng.choice(sorted(sessions))
            apply_event(state, user(UserEventType.SESSION_STOP, gone), now, SETTINGS)
            del sessions[gone]
            connections.pop(gone, None)
        change = expire(state, now, SETTINGS)
        stale = False
        for model in (sessions, connections):
            for who in [who for who, seen in model.items() if seen < now - stale_after]:
                del model[who]
                stale = True
        expiries += stale
        assert bool(change.expired) == stale, minute
        server = state.servers.get("qs1")
        assert {u for _, u in server.sessions} == set(sessions) if server else not sessions
        assert {u for _, u in server.connections} == set(connections) if server else not connections
    assert expiries > 0
    # Scanned when the oldest could be stale (a refresh since can make it a scan for nothing),
    # not every minute.
    assert expiries <= scans.call_count < 24 * 60 / 2, (expiries, scans.call_count)


def test_kept_counts_agree_with_the_entries_through_any_sequence() -> None:
    """`active_connections` and the site's distinct users are kept as events come (not summed
    per publish): they agree with the entries after opens, closes, closes of unknown
    connections, logouts with connections open, a user on several servers, expiry and a
    forgotten server."""
    state = BridgeState()
    rng = random.Random(7)
    kinds = list(UserEventType)
    for step in range(4000):
        server = rng.choice(["QS1", "QS2", "QS3"])
        event = user(rng.choice(kinds), f"u{rng.randrange(20)}", server=server)
        apply_event(state, event, float(step), SETTINGS)
        if step % 500 == 499:
            expire(state, step + 3500.0, SETTINGS)
        if step == 2222:
            forget_server(state, "qs2")
        for kept in state.servers.values():
            assert kept.active_connections == sum(c.count for c in kept.connections.values())
        everyone = set().union(*(kept.sessions for kept in state.servers.values()))
        assert distinct_users(state) == len(everyone), step
    assert distinct_users(state) > 0


def test_auto_clear_after() -> None:
    settings = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=300.0)
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED), 0.0, settings)
    assert not expire(state, 200.0, settings).flag_changed
    change = expire(state, 301.0, settings)
    assert change.flag_changed
    assert change.auto_cleared
    assert not state.reload_failure


def test_auto_clear_after_clears_aborts_too() -> None:
    """An any_task_aborted lamp goes off by itself, like the failure flag."""
    settings = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=300.0)
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t1"), 0.0, settings)
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t2"), 250.0, settings)
    assert not expire(state, 200.0, settings).any
    first = expire(state, 301.0, settings)
    assert first.site  # the site topic (failing and aborted counts) is published again
    assert not first.flag_changed  # reload_failure was never on
    assert list(state.aborted) == ["qs1|task:t2"]
    assert expire(state, 551.0, settings).site
    assert not state.aborted
    assert state.servers["qs1"].tracked_tasks == 0


def test_server_names_are_topic_safe_keys() -> None:
    state = BridgeState()
    apply_event(state, user(UserEventType.SESSION_START, "x", server="QS/+#\0EVIL"), 0.0, SETTINGS)
    assert list(state.servers) == ["qs_evil"]
    assert state.servers["qs_evil"].host == "QS/+#\0EVIL"


def test_membership_moves_only_when_the_set_of_users_changes() -> None:
    """The rendered user list is reused while `membership` stands still."""
    state = BridgeState()
    seen = []
    for kind, who, at in (
        (UserEventType.SESSION_START, "mia", 1.0),  # new user: moves
        (UserEventType.SESSION_START, "mia", 2.0),  # the same user again: refresh only
        (UserEventType.CONNECTION_OPEN, "mia", 3.0),  # refresh only
        (UserEventType.SESSION_START, "ole", 4.0),  # new user: moves
        (UserEventType.SESSION_STOP, "mia", 5.0),  # gone: moves
        (UserEventType.SESSION_STOP, "mia", 6.0),  # already gone: stands
    ):
        apply_event(state, user(kind, who), at, SETTINGS)
        seen.append(state.servers["qs1"].membership)
    assert seen == [1, 1, 1, 2, 3, 3]
    expire(state, 4.0 + 3600.0 + 1, SETTINGS)  # ole expires: moves
    assert state.servers["qs1"].membership == 4
    assert state.servers["qs1"].sessions == {}


def test_user_lists_are_the_same_whichever_way_they_are_rendered() -> None:
    state = BridgeState()
    for who, directory in (("zoe", "CORP"), ("anna", "CORP"), ("svc", ""), ("bob", "LAB")):
        apply_event(
            state, user(UserEventType.SESSION_START, who, directory=directory), 1.0, SETTINGS
        )
    server = state.servers["qs1"]
    hashed = Privacy("hashed", "salt")
    for privacy in (PLAIN, hashed, Privacy("omitted")):
        expected = sorted(
            name for key in server.sessions if (name := user_name(*key, privacy)) is not None
        )
        assert user_names(server, privacy) == expected
        assert users_payload(server, user_names(server, privacy))["users"] == expected
        assert server_payload(server, privacy)["users_preview"] == expected
    assert user_names(server) == ["CORP\\anna", "CORP\\zoe", "LAB\\bob", "svc"]
    apply_event(state, user(UserEventType.SESSION_START, "anna", "QS2"), 1.0, SETTINGS)
    assert distinct_users(state) == 4  # anna on two servers is one user
    assert site_payload(state)["active_users"] == 4
