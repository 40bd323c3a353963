"""`<base>/<server>/event/user` and `…/event/task`: every event, queued, QoS 1 by default."""

from __future__ import annotations

from bridge.events import Event, UserEvent
from bridge.extensions import Extension
from bridge.mqtt import OutMessage
from bridge.payloads import encode, event_payload
from bridge.topics import server_slug


class EventTopics(Extension):
    def on_event(self, event: Event, received_at: float) -> None:
        topics = self.context.topics
        slug = server_slug(event.server)
        topic = topics.user_event(slug) if isinstance(event, UserEvent) else topics.task_event(slug)
        payload = encode(event_payload(event, received_at))
        self.context.link.enqueue(OutMessage(topic, payload, self.context.config.mqtt.qos))
