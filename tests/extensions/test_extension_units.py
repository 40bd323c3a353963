"""Extensions tested alone, against the in-memory `FakeLink` (tests/fakes.py): no broker.

What they publish end to end through mosquitto is tested elsewhere (test_end_to_end and
others); here, each extension's own logic, through the `Link` interface it depends on.
"""

from __future__ import annotations

import json

from bridge.core.state import BridgeState, ServerState
from bridge.extensions.bridge_topics import BridgeTopics
from bridge.extensions.link import Link
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
