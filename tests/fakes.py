"""Small in-memory stand-ins for unit tests of an extension: no broker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bridge.config import Config
from bridge.core.state import BridgeState
from bridge.core.stats import Stats
from bridge.core.topics import Topics
from bridge.extensions import Context
from bridge.extensions.link import Link, OutMessage


@dataclass
class Published:
    topic: str
    payload: bytes
    retain: bool
    qos: int


@dataclass
class FakeLink:
    """A `Link` that records what extensions publish and queue."""

    connected: bool = True
    published: list[Published] = field(default_factory=list)
    queued: list[OutMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each publish: a test awaits an answer published later (then clears it)."""

    @property
    def outbox_depth(self) -> int:
        return len(self.queued)

    def enqueue(self, message: OutMessage) -> None:
        self.queued.append(message)

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        if not self.connected:
            return False
        self.published.append(Published(topic, payload, retain, qos))
        self.arrived.set()
        return True

    def payloads(self, topic: str) -> list[bytes]:
        return [message.payload for message in self.published if message.topic == topic]


def fake_context(
    config: Config | None = None, link: Link | None = None, state: BridgeState | None = None
) -> Context:
    config = config or Config()
    return Context(
        config=config,
        topics=Topics(config.mqtt.base_topic),
        link=link or FakeLink(),
        state=state or BridgeState(),
        stats=Stats(),
        clock=time.time,
        started_at=1_700_000_000.0,
    )
