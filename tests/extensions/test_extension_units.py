"""Extensions tested alone, against the in-memory `FakeLink` (tests/fakes.py): no broker.

What they publish end to end through mosquitto is tested elsewhere (test_end_to_end and
others); here, each extension's own logic, through the `Link` interface it depends on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from pytest_mock import MockerFixture

from bridge.config import Config
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.state import (
    BridgeState,
    ServerState,
    StateSettings,
    apply_event,
    forget_server,
)
from bridge.extensions import butler_payloads
from bridge.extensions.bridge_topics import BridgeTopics
from bridge.extensions.butler_compat import ButlerCompat
from bridge.extensions.link import Link
from bridge.extensions.state_topics import StateTopics
from bridge.extensions.task_topics import TaskTopics
from tests.fakes import FakeLink, fake_context


def test_the_fake_link_is_a_link() -> None:
    link: Link = FakeLink()  # mypy checks it against the Protocol
    assert link.publish_now("t", b"x", retain=False)


def test_bridge_topics_at_connect_say_online_info_and_stats() -> None:
    link = FakeLink()
    BridgeTopics(fake_context(link=link)).on_connect()
    assert [(m.topic, m.retain) for m in link.published] == [
        ("qlik2mqtt/bridge/state", True),
        ("qlik2mqtt/bridge/info", True),
        ("qlik2mqtt/bridge/stats", True),
    ]
    assert link.published[0].payload == b"online"
    assert json.loads(link.published[1].payload)["started_at"] == "2023-11-14T22:13:20.000Z"
    assert json.loads(link.published[2].payload)["outbox_depth"] == 0


def test_bridge_topics_list_the_servers_until_one_is_forgotten() -> None:
    link = FakeLink()
    state = BridgeState()
    state.servers["qsprod01"] = ServerState(host="QSPROD01")
    topics = BridgeTopics(fake_context(link=link, state=state))
    del state.servers["qsprod01"]
    topics.on_forget("qsprod01")
    assert json.loads(link.payloads("qlik2mqtt/bridge/info")[-1])["servers"] == {}


def test_nothing_is_published_while_the_link_is_down() -> None:
    link = FakeLink(connected=False)
    BridgeTopics(fake_context(link=link)).on_connect()
    assert link.published == []


class FlakyLink(FakeLink):
    """A link whose publish raises a few times, as a library bug might."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.stats_published = asyncio.Event()

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("publish failed")
        if topic.endswith("/bridge/stats"):
            self.stats_published.set()
        return super().publish_now(topic, payload, retain=retain, qos=qos)


async def test_the_periodic_stats_outlive_an_exception_and_count_it() -> None:
    """The stats task is supervised: it is restarted (counted), not gone for good."""
    link = FlakyLink(failures=1)
    config = Config.model_validate({"stats_interval": 0.01})
    context = fake_context(config=config, link=link)
    topics = BridgeTopics(context)
    topics.start()
    try:
        await asyncio.wait_for(link.stats_published.wait(), 10)  # after a 1 s restart delay
    finally:
        await topics.stop()
    assert context.stats.task_restarts["bridge-stats"] == 1


async def test_a_timer_an_extension_set_runs_behind_the_guard() -> None:
    """A change schedules a stats publish a second later: its exception is counted."""
    link = FlakyLink(failures=1)
    context = fake_context(link=link)
    topics = BridgeTopics(context)
    call = topics.guarded("stats_soon", topics.publish_stats)
    call()  # raises inside: logged and counted, not propagated
    assert context.stats.extension_errors["bridge_topics.stats_soon"] == 1
    call()
    assert link.payloads("qlik2mqtt/bridge/stats")


async def test_cached_user_counts_follow_sessions_and_servers() -> None:
    """The site's distinct users (kept in the state) and what ButlerCompat rendered from the
    users (`SiteUsers`) follow sessions starting and ending, servers appearing and forgotten."""
    state = BridgeState()
    link = FakeLink()
    config = Config.model_validate({"butler_compat": {"enabled": True}})
    context = fake_context(config=config, link=link, state=state)
    site, butler = StateTopics(context), ButlerCompat(context)

    def login(server: str, user: str, kind: UserEventType = UserEventType.SESSION_START) -> None:
        event = UserEvent(
            event_type=kind, server=server, source_format=SourceFormat.XML, user_id=user
        )
        apply_event(state, event, 1.0, StateSettings(None, 60.0, None))

    async def counts() -> tuple[int, bytes]:
        site.on_connect()
        butler.on_connect()
        await butler.stop()  # the render, in steps
        active = json.loads(link.payloads("qlik2mqtt/site")[-1])["active_users"]
        return active, link.payloads("qliksense/users/active/count")[-1]

    assert await counts() == (0, b"0")
    login("QS1", "anna")
    login("QS2", "anna")
    login("QS2", "bob")
    assert await counts() == (2, b"2")
    login("QS1", "anna", UserEventType.CONNECTION_OPEN)  # the same users: nothing to rebuild
    assert await counts() == (2, b"2")
    login("QS2", "bob", UserEventType.SESSION_STOP)
    assert await counts() == (1, b"1")
    forget_server(state, "qs1")
    forget_server(state, "qs2")
    assert await counts() == (0, b"0")


def big_server(state: BridgeState, users: int) -> None:
    for number in range(users):
        event = UserEvent(
            event_type=UserEventType.SESSION_START,
            server="QS1",
            source_format=SourceFormat.XML,
            user_directory="CORP",
            user_id=f"user{number * 7919 % 100_003:06d}",
        )
        apply_event(state, event, 1.0, StateSettings(None, 60.0, None))


async def test_stop_waits_for_the_user_list_being_rendered() -> None:
    state = BridgeState()
    big_server(state, 20_000)
    link = FakeLink()
    topics = StateTopics(fake_context(link=link, state=state))
    topics.on_connect()  # the list's render starts: a task, in steps
    assert link.payloads("qlik2mqtt/qs1/users") == []
    await topics.stop()
    listed = json.loads(link.payloads("qlik2mqtt/qs1/users")[-1])
    assert len(listed["users"]) == listed["active_users"] == 20_000
    assert listed["users"] == sorted(listed["users"])


async def test_a_server_forgotten_while_its_list_renders_keeps_its_list_cleared() -> None:
    state = BridgeState()
    big_server(state, 20_000)
    link = FakeLink()
    topics = StateTopics(fake_context(link=link, state=state))
    topics.on_connect()
    for _ in range(3):  # three of the render's (many more) steps: it is under way
        await asyncio.sleep(0)
    del state.servers["qs1"]
    topics.on_forget("qs1")
    await topics.stop()
    assert link.payloads("qlik2mqtt/qs1/users") == [b""]  # the clear, and nothing after it


class ListRefusingLink(FakeLink):
    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        if topic.endswith("/users"):
            raise RuntimeError("publish failed")
        return super().publish_now(topic, payload, retain=retain, qos=qos)


async def test_a_failing_list_render_is_counted_and_the_state_goes_on() -> None:
    state = BridgeState()
    big_server(state, 10)
    link = ListRefusingLink()
    context = fake_context(link=link, state=state)
    topics = StateTopics(context)
    topics.on_connect()
    await topics.stop()
    assert context.stats.extension_errors["state_topics.render_users"] >= 1  # stop tries again
    assert json.loads(link.payloads("qlik2mqtt/qs1")[-1])["active_users"] == 10


async def test_stop_publishes_the_newest_state_whatever_the_byte_budget_still_asks() -> None:
    """A big server's state and list wait in proportion to their size; at shutdown the broker
    keeps what was last published, so stop publishes the newest of every topic."""
    state = BridgeState()
    big_server(state, 300)
    link = FakeLink()
    config = Config.model_validate({"mqtt": {"state_bytes_per_second": 1024}})
    topics = StateTopics(fake_context(config=config, link=link, state=state))
    topics.on_connect()  # everything at once; the list of 300 is being rendered, in steps
    event = UserEvent(
        event_type=UserEventType.SESSION_START,
        server="QS1",
        source_format=SourceFormat.XML,
        user_directory="CORP",
        user_id="the-last-one",
    )
    topics.on_change(apply_event(state, event, 2.0, StateSettings(None, 60.0, None)))
    await topics.stop()
    assert json.loads(link.payloads("qlik2mqtt/qs1")[-1])["active_users"] == 301
    assert json.loads(link.payloads("qlik2mqtt/qs1/users")[-1])["active_users"] == 301


async def test_a_failed_butler_render_is_rendered_again_at_the_next_flush(
    mocker: MockerFixture,
) -> None:
    """A render that fails (a bug in a step: it is guarded and counted) leaves nothing kept as
    rendered: the next flush renders again, though the users did not change."""
    state = BridgeState()
    big_server(state, 10)
    link = FakeLink()
    config = Config.model_validate({"butler_compat": {"enabled": True}})
    context = fake_context(config=config, link=link, state=state)
    butler = ButlerCompat(context)
    real_steps = butler_payloads.active_user_steps
    failures = [RuntimeError("a step failed")]

    def steps(*args: Any) -> Any:  # the first render fails, the next ones are the real
        if failures:
            raise failures.pop()
        return real_steps(*args)

    mocker.patch.object(butler_payloads, "active_user_steps", side_effect=steps)
    butler.on_connect()
    await butler.stop()
    assert context.stats.extension_errors["butler_compat.render_users"] == 1
    butler.on_connect()  # the users did not change, but the failed render sent nothing
    await butler.stop()
    assert link.payloads("qliksense/users/active/count")[-1] == b"10"


@dataclass
class BehindLink(FakeLink):
    """A link whose broker is behind: `publish_now` refuses while `behind` (too much
    unacknowledged, as `bridge.mqtt.drain` answers), and says each refusal on `refused`."""

    behind: bool = False
    refused: asyncio.Event = field(default_factory=asyncio.Event)

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        if self.behind:
            self.refused.set()
            return False
        return super().publish_now(topic, payload, retain=retain, qos=qos)


async def test_state_refused_by_a_broker_behind_is_published_once_it_catches_up() -> None:
    """A quiet site's last change must not stay unpublished: the retained state would be stale
    until the next change, which may be hours away."""
    state = BridgeState()
    link = BehindLink(behind=True)
    topics = StateTopics(fake_context(link=link, state=state))
    event = UserEvent(
        event_type=UserEventType.SESSION_START,
        server="QS1",
        source_format=SourceFormat.XML,
        user_directory="CORP",
        user_id="anna",
    )
    topics.on_change(apply_event(state, event, 1.0, StateSettings(None, 60.0, None)))
    await asyncio.wait_for(link.refused.wait(), 5)
    link.behind = False  # caught up; no change comes any more
    while not (link.payloads("qlik2mqtt/qs1") and link.payloads("qlik2mqtt/site")):
        link.arrived.clear()
        await asyncio.wait_for(link.arrived.wait(), 5)
    assert json.loads(link.payloads("qlik2mqtt/qs1")[-1])["active_users"] == 1
    assert json.loads(link.payloads("qlik2mqtt/site")[-1])["active_users"] == 1
    await topics.stop()


async def test_task_topics_refused_by_a_broker_behind_are_published_once_it_catches_up() -> None:
    config = Config.model_validate({"tasks": {"watch": ["Reload Sales"]}})
    state = BridgeState()
    link = BehindLink(behind=True)
    topics = TaskTopics(fake_context(config=config, link=link, state=state))
    failure = TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QS1",
        source_format=SourceFormat.XML,
        task_name="Reload Sales",
        task_id="7c3e5a10-0000-4000-8000-000000000001",
    )
    apply_event(state, failure, 1.0, StateSettings(None, 60.0, None))
    topics.on_event(failure, 1.0)
    assert link.refused.is_set()
    link.behind = False
    topic = "qlik2mqtt/tasks/reload_sales"
    while not link.payloads(topic):
        link.arrived.clear()
        await asyncio.wait_for(link.arrived.wait(), 5)
    assert json.loads(link.payloads(topic)[-1])["task"] == "Reload Sales"
    await topics.stop()
