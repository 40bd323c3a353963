"""`<base>/<server>/event/user`, `…/event/task` and `…/event/log`: every event, queued, QoS 1
by default.

With Home Assistant discovery on, the first events of a server never seen before are held for
a moment: HA subscribes to the event topics only after it has processed the discovery configs
published at that same instant, and would miss a non-retained event sent before that.
"""

from __future__ import annotations

import asyncio

from bridge.core.events import Event, LogEvent, UserEvent
from bridge.core.payloads import encode, event_payload
from bridge.core.state import slug_of
from bridge.extensions import Context, Extension
from bridge.extensions.link import OutMessage

NEW_SERVER_HOLD = 1.0
"""Seconds a new server's first events wait for Home Assistant to subscribe."""


class EventTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._hold = NEW_SERVER_HOLD if context.config.homeassistant.enabled else 0.0
        self._known: set[str] = set()
        self._held: dict[str, list[OutMessage]] = {}
        self._qos = context.config.mqtt.qos

    def start(self) -> None:
        self._known = set(self.context.state.servers)

    async def stop(self) -> None:
        for slug in list(self._held):
            self._release(slug)

    def on_event(self, event: Event, received_at: float) -> None:
        topics = self.context.topics
        slug = slug_of(self.context.state, event.server)
        if isinstance(event, UserEvent):
            topic = topics.user_event(slug)
        elif isinstance(event, LogEvent):
            topic = topics.log_event(slug)
        else:
            topic = topics.task_event(slug)
        message = OutMessage(
            topic, encode(event_payload(event, received_at, self.context.privacy)), self._qos
        )
        # A host past limits.max_servers is not tracked: no device to wait for, and not
        # remembered here (a flood of host names would grow this set without end).
        tracked = slug in self.context.state.servers
        held = self._held.get(slug)
        if held is not None:
            held.append(message)
        elif tracked and slug not in self._known and self._hold > 0:
            self._known.add(slug)
            self._held[slug] = [message]
            release = self.guarded("release", self._release)
            asyncio.get_running_loop().call_later(self._hold, release, slug)
        else:
            if tracked:
                self._known.add(slug)
            self.context.link.enqueue(message)

    def on_forget(self, slug: str) -> None:
        self._known.discard(slug)

    def _release(self, slug: str) -> None:
        for message in self._held.pop(slug, []):
            self.context.link.enqueue(message)
