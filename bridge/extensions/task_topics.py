"""Retained topics about single tasks: `<base>/site/retry`, the failed task the retry button
would start (with `qrs.enabled`). Published at connect and after each task event or forget,
only when it changed."""

from __future__ import annotations

from bridge.core.events import Event, TaskEvent
from bridge.core.payloads import encode
from bridge.core.retry import retry_payload, retry_target
from bridge.extensions import Context, Extension
from bridge.qrs.allow import AllowList


class TaskTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._retry = context.config.qrs.enabled
        allow = AllowList(context.config.qrs.allowed_tasks)
        self._allowed = lambda task_id: allow.allowed("id", task_id)
        self._published: dict[str, bytes] = {}

    def on_connect(self) -> None:
        self._published.clear()
        self._publish_all()

    def on_event(self, event: Event, received_at: float) -> None:
        if isinstance(event, TaskEvent):
            self._publish_all()

    def on_forget(self, slug: str) -> None:
        self._publish_all()

    def _publish_all(self) -> None:
        if self._retry:
            record = retry_target(self.context.state, self._allowed)
            self._publish(self.context.topics.site_retry, encode(retry_payload(record)))

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._published.get(topic) == payload:
            return
        if self.context.link.publish_now(topic, payload, retain=True):
            self._published[topic] = payload
