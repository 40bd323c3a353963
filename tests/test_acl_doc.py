"""docs/qrs.md's example mosquitto ACL, loaded into a real mosquitto: each user it names can
publish and read what the doc says it may, and no more."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.helpers import ROOT, Mosquitto, Subscriber

QRS_MD = ROOT / "docs/qrs.md"
PROBE = ("probe", "probe-pw")
"""A test-only user that may do anything: it publishes what the others read, and reads what
they publish."""
SENTINEL = "qlik2mqtt/acl_sentinel"
"""Readable by every user (`pattern read qlik2mqtt/+`): once it arrived, what was sent before
it on the same path has arrived too, or never will."""

MAY = {
    "qlik2mqtt": {
        "write": [
            "qlik2mqtt/site",
            "qlik2mqtt/bridge/response/task/start",
            "homeassistant/sensor/qlik2mqtt/site_failed_tasks/config",
            "qliksense/qs1/state",
        ],
        "read": [
            "qlik2mqtt/bridge/request/task/start",
            "qlik2mqtt/bridge/request/task/retry",
            "qlik2mqtt/bridge/acknowledge",
            "qlik2mqtt/bridge/forget",
            "homeassistant/status",
            "qliksense/start_task",
        ],
    },
    "homeassistant": {
        "write": [
            "qlik2mqtt/bridge/acknowledge",
            "qlik2mqtt/bridge/request/task/start",
            "qlik2mqtt/bridge/request/task/retry",
            "homeassistant/status",
        ],
        "read": [
            "qlik2mqtt/site",
            "qlik2mqtt/tasks/reload_sales",
            "qlik2mqtt/bridge/response/task/retry",
            "homeassistant/sensor/qlik2mqtt/site_failed_tasks/config",
        ],
    },
    "scheduler": {
        "write": ["qliksense/start_task"],
        "read": ["qlik2mqtt/bridge/response/task/start", "qlik2mqtt/site"],
    },
    "viewer": {"write": [], "read": ["qlik2mqtt/site", "qlik2mqtt/qs1"]},
}
"""What docs/qrs.md says each user may do (`viewer`: any user the ACL does not name)."""
MAY_NOT = {
    "qlik2mqtt": {"write": ["zigbee2mqtt/bridge/request/x"], "read": ["zigbee2mqtt/x"]},
    "homeassistant": {
        "write": [
            "qlik2mqtt/bridge/forget",
            "qlik2mqtt/site",
            "qlik2mqtt/bridge/response/task/start",
            "qliksense/start_task",
        ],
        "read": ["qliksense/start_task"],
    },
    "scheduler": {
        "write": [
            "qlik2mqtt/bridge/request/task/start",
            "qlik2mqtt/bridge/acknowledge",
            "qlik2mqtt/site",
        ],
        "read": ["qlik2mqtt/bridge/response/task/retry", "qlik2mqtt/qs1/event/task"],
    },
    "viewer": {
        "write": [
            "qlik2mqtt/bridge/request/task/start",
            "qlik2mqtt/bridge/request/task/retry",
            "qlik2mqtt/bridge/acknowledge",
            "qlik2mqtt/site",
            "qliksense/start_task",
        ],
        "read": ["qlik2mqtt/bridge/response/task/start", "qlik2mqtt/qs1/event/task"],
    },
}


def documented_acl() -> str:
    """The first code block after `## Who may ask` in docs/qrs.md."""
    text = QRS_MD.read_text(encoding="utf-8")
    section = text[text.index("## Who may ask\n") :]
    return section.split("```\n", 2)[1]


async def can_write(user: Subscriber, probe: Subscriber, topic: str) -> bool:
    payload = uuid.uuid4().hex.encode()
    user.publish(topic, payload)
    await user.subscribe(SENTINEL)  # the SUBACK: the broker has handled the publish
    mark = payload + b"-sentinel"
    probe.publish(SENTINEL, mark)
    await probe.wait_for(SENTINEL, lambda m: m.payload == mark)
    return any(m.topic == topic and m.payload == payload for m in probe.messages)


async def can_read(user: Subscriber, probe: Subscriber, topic: str) -> bool:
    payload = uuid.uuid4().hex.encode()
    await user.subscribe(topic)
    probe.publish(topic, payload)
    mark = payload + b"-sentinel"
    probe.publish(SENTINEL, mark)  # one publisher, one subscriber: delivered in order
    await user.wait_for(SENTINEL, lambda m: m.payload == mark)
    return any(m.topic == topic and m.payload == payload for m in user.messages)


async def test_each_documented_user_may_do_what_the_doc_says_and_no_more(tmp_path: Path) -> None:
    acl = documented_acl()
    assert "user homeassistant" in acl
    users = {name: f"{name}-pw" for name in MAY} | dict([PROBE])
    broker = Mosquitto(tmp_path, users=users, acl=f"{acl}\nuser {PROBE[0]}\ntopic readwrite #\n")
    broker.start()
    clients: list[Subscriber] = []
    try:
        probe = await Subscriber(broker.port, auth=PROBE).start("#")
        clients.append(probe)
        allowed: set[tuple[str, str, str]] = set()
        asked: set[tuple[str, str, str]] = set()
        for name in MAY:
            user = await Subscriber(broker.port, auth=(name, users[name])).start(SENTINEL)
            clients.append(user)
            for rules in (MAY[name], MAY_NOT[name]):
                for action, topics in rules.items():
                    check = can_write if action == "write" else can_read
                    for topic in topics:
                        asked.add((name, action, topic))
                        if await check(user, probe, topic):
                            allowed.add((name, action, topic))
    finally:
        for client in clients:
            await client.stop()
        broker.stop()
    expected = {
        (name, action, topic)
        for name, rules in MAY.items()
        for action, topics in rules.items()
        for topic in topics
    }
    assert expected < asked
    assert allowed == expected
