"""Every change to the state marks it to be saved (`Bridge.dirty`, from `BridgeState.revision`):
through the core path, and through an extension (a watched task dropped at connect). What does
not change it leaves it clean."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.config import Config
from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEventType,
)
from bridge.core.path import Bridge
from bridge.core.state import BridgeState, remember_watched
from bridge.core.stats import Stats
from bridge.extensions.task_topics import TaskTopics
from tests.core.test_state import task, user
from tests.fakes import FakeLink, fake_context

NOW = 1000.0


def core(config: Config | None = None, state: BridgeState | None = None) -> Bridge:
    bridge = Bridge(config or Config(), state or BridgeState(), Stats(), lambda: NOW, lambda: 0.0)
    bridge.dirty = False  # as the saver leaves it after a save
    return bridge


def failed(task_id: str = "t1", execution: str = "e1") -> TaskEvent:
    return task(TaskEventType.TASK_FAILED, task_id, execution)


def with_failure() -> Bridge:
    bridge = core(Config.model_validate({"limits": {"max_tasks_per_server": 1}}))
    bridge.handle_event(failed())
    bridge.dirty = False
    return bridge


CHANGES: dict[str, Callable[[Bridge], object]] = {
    "a session starts": lambda b: b.handle_event(user(UserEventType.SESSION_START, "mia")),
    "a task fails": lambda b: b.handle_event(failed("t2", "e2")),
    "a duplicate (the server's last event time)": lambda b: b.handle_event(failed()),
    "an untracked failure past the task cap": lambda b: b.handle_event(failed("t3", "e3")),
    "a log error": lambda b: b.handle_event(
        LogEvent(
            source=LogSource.ENGINE,
            level=LogLevel.ERROR,
            server="QS1",
            source_format=SourceFormat.TAGGED,
        )
    ),
    "acknowledge": lambda b: b.acknowledge("test"),
    "forget": lambda b: b.forget("QS1", "test"),
    "the retry button marks its task": lambda b: b.retry_started("t1"),
    "QRS knows no such task": lambda b: b.retry_gone("t1"),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_each_change_through_the_core_marks_the_state_dirty(
    change: Callable[[Bridge], object],
) -> None:
    bridge = with_failure()
    revision = bridge.state.revision
    change(bridge)
    assert bridge.dirty
    assert bridge.state.revision > revision


def test_a_refused_start_unmarking_the_task_marks_it_dirty() -> None:
    bridge = with_failure()
    started = bridge.retry_started("t1")
    assert started is not None
    bridge.dirty = False
    bridge.retry_unstarted("t1", started)
    assert bridge.dirty


def test_expiry_marks_the_state_dirty_even_when_only_a_pending_retry_lapses() -> None:
    clock = [NOW]
    bridge = Bridge(Config(), BridgeState(), Stats(), lambda: clock[0], lambda: 0.0)
    bridge.handle_event(failed())
    bridge.retry_started("t1")
    bridge.dirty = False
    clock[0] += 3600.0  # past RETRY_PENDING; no session, no log count to expire
    bridge.expire()
    assert bridge.dirty


def test_what_changes_nothing_leaves_the_state_clean() -> None:
    bridge = core()
    bridge.acknowledge("test")  # nothing to acknowledge
    assert bridge.forget("nope", "test") is None
    bridge.retry_gone("t9")
    bridge.expire()
    assert not bridge.dirty


def test_a_failed_save_leaves_it_dirty_and_a_change_during_a_save_is_not_lost() -> None:
    bridge = with_failure()
    bridge.dirty = True  # the save failed
    assert bridge.dirty
    bridge.dirty = False  # a save starts with the state as it is now ...
    bridge.handle_event(failed("t2", "e2"))  # ... and a change lands before the next
    assert bridge.dirty


def test_a_new_watched_task_at_start_marks_it_dirty() -> None:
    config = Config.model_validate({"tasks": {"watch": ["Reload Sales"]}})
    bridge = Bridge(config, BridgeState(), Stats(), lambda: NOW, lambda: 0.0)
    assert bridge.dirty
    bridge.dirty = False
    again = Bridge(config, bridge.state, Stats(), lambda: NOW, lambda: 0.0)
    assert not again.dirty  # nothing new


def test_dropping_a_task_no_longer_watched_marks_it_dirty() -> None:
    state = BridgeState()
    remember_watched(
        state, Config.model_validate({"tasks": {"watch": ["Reload HR"]}}).tasks.watched()
    )
    config = Config.model_validate({"tasks": {"watch": ["Reload Sales"]}})
    bridge = core(config, state)  # announces Reload Sales: dirty
    bridge.dirty = False
    TaskTopics(fake_context(config, FakeLink(), state)).on_connect()  # clears Reload HR
    assert state.watched_slugs == {"reload_sales"}
    assert bridge.dirty
    bridge.dirty = False
    TaskTopics(fake_context(config, FakeLink(), state)).on_connect()  # nothing left to drop
    assert not bridge.dirty
