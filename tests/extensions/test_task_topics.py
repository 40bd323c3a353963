"""`TaskTopics` alone, against the in-memory link: what it publishes for the retry button and the
watched tasks, only on change, and what it clears for a task no longer watched."""

from __future__ import annotations

import json

from bridge.config import Config
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.state import (
    BridgeState,
    StateSettings,
    Watch,
    apply_event,
    remember_watched,
    retry_gone,
)
from bridge.extensions.task_topics import TaskTopics
from tests.fakes import FakeLink, fake_context
from tests.helpers import QRS_NEEDS

SALES_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
QRS = {"enabled": True, "host": "qs", "client_cert": __file__, "client_key": __file__}


def failed(name: str, task_id: str) -> TaskEvent:
    return TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        task_name=name,
        task_id=task_id,
        execution_id="e1",
    )


def test_each_topic_is_published_at_connect_and_again_only_when_it_changed() -> None:
    config = Config.model_validate(
        {
            **QRS_NEEDS,
            "qrs": {**QRS, "allowed_tasks": [SALES_ID]},
            "tasks": {"watch": ["Reload Sales"]},
        }
    )
    state, link = BridgeState(), FakeLink()
    topics = TaskTopics(fake_context(config, link, state))
    topics.on_connect()
    assert [m.topic for m in link.published] == [
        "qlik2mqtt/site/retry",
        "qlik2mqtt/tasks/reload_sales",
    ]
    assert all(m.retain for m in link.published)
    settings = StateSettings(None, 60.0, None, watch=(Watch(name="Reload Sales"),))
    event = failed("Reload Sales", SALES_ID)
    apply_event(state, event, 1.0, settings)
    topics.on_event(event, 1.0)
    topics.on_event(event, 1.0)  # nothing changed since: nothing published
    assert [m.topic for m in link.published[2:]] == [
        "qlik2mqtt/site/retry",
        "qlik2mqtt/tasks/reload_sales",
        "qlik2mqtt/tasks/reload_sales/last_outcome_at",
    ]
    assert json.loads(link.published[2].payload)["task_id"] == SALES_ID
    assert json.loads(link.published[3].payload)["outcome"] == "failed"
    assert link.published[4].payload == b"1970-01-01T00:00:01.000Z"


def test_a_task_no_longer_watched_has_its_topics_cleared_and_no_retry_without_qrs() -> None:
    state, link = BridgeState(), FakeLink()
    hr = (Watch(name="Reload HR"), Watch(name="Reload Finance"))  # Finance: no outcome ever
    remember_watched(state, hr)
    apply_event(
        state,
        failed("Reload HR", "0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f"),
        1.0,
        StateSettings(None, 60.0, None, watch=hr),
    )
    config = Config.model_validate({"tasks": {"watch": ["Reload Sales"]}})
    remember_watched(state, config.tasks.watched())  # as the core does at start
    topics = TaskTopics(fake_context(config, link, state))
    topics.on_connect()
    assert [(m.topic, m.payload, m.retain) for m in link.published] == [
        ("qlik2mqtt/tasks/reload_finance", b"", True),
        ("qlik2mqtt/tasks/reload_finance/last_outcome_at", b"", True),
        ("qlik2mqtt/tasks/reload_hr", b"", True),
        ("qlik2mqtt/tasks/reload_hr/last_outcome_at", b"", True),
        ("qlik2mqtt/tasks/reload_sales", link.published[4].payload, True),
    ]
    assert json.loads(link.published[4].payload)["outcome"] is None
    assert (state.watched_slugs, state.watched) == ({"reload_sales"}, {})  # then dropped
    topics.on_connect()  # a reconnect: nothing left to clear
    assert [m.topic for m in link.published[5:]] == ["qlik2mqtt/tasks/reload_sales"]


def test_a_change_of_the_retry_candidates_republishes_the_retry_topic() -> None:
    config = Config.model_validate({**QRS_NEEDS, "qrs": {**QRS, "allowed_tasks": ["*"]}})
    state, link = BridgeState(), FakeLink()
    topics = TaskTopics(fake_context(config, link, state))
    apply_event(state, failed("Reload Sales", SALES_ID), 1.0, StateSettings(None, 60.0, None))
    topics.on_connect()
    assert json.loads(link.published[-1].payload)["task_id"] == SALES_ID
    topics.on_change(retry_gone(state, SALES_ID))
    assert [m.topic for m in link.published[1:]] == ["qlik2mqtt/site/retry"]
    assert json.loads(link.published[-1].payload)["task_id"] is None
