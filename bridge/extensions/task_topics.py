"""Retained topics about single tasks: `<base>/site/retry`, the failed task the retry button
would start (with `qrs.enabled`), and `<base>/tasks/<slug>` with `…/last_outcome_at` for each
watched task (`tasks.watch`). Published at connect and after each task event or forget, each
only when it changed; at connect, the topics of a task no longer watched are cleared."""

from __future__ import annotations

from bridge.core.events import Event, TaskEvent
from bridge.core.payloads import encode
from bridge.core.retry import retry_payload, retry_target
from bridge.core.topics import task_slug
from bridge.core.watch import watched_payload
from bridge.extensions import Context, Extension
from bridge.qrs.allow import AllowList


class TaskTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._retry = context.config.qrs.enabled
        allow = AllowList(context.config.qrs.allowed_tasks)
        self._allowed = lambda task_id: allow.allowed("id", task_id)
        self._watch = {watch.key: task_slug(watch.key) for watch in context.config.tasks.watched()}
        self._published: dict[str, bytes] = {}

    def on_connect(self) -> None:
        self._published.clear()
        topics, link = self.context.topics, self.context.link
        for entry in self.context.state.watched.keys() - self._watch.keys():
            slug = task_slug(entry)
            if slug and slug not in self._watch.values():
                link.publish_now(topics.watched_task(slug), b"", retain=True)
                link.publish_now(topics.watched_task_at(slug), b"", retain=True)
        self._publish_all()

    def on_event(self, event: Event, received_at: float) -> None:
        if isinstance(event, TaskEvent):
            self._publish_all()

    def on_forget(self, slug: str) -> None:
        self._publish_all()

    def _publish_all(self) -> None:
        state, topics = self.context.state, self.context.topics
        if self._retry:
            record = retry_target(state, self._allowed)
            self._publish(topics.site_retry, encode(retry_payload(record)))
        for entry, slug in self._watch.items():
            payload = watched_payload(entry, state.watched.get(entry))
            self._publish(topics.watched_task(slug), encode(payload))
            if payload["last_outcome_at"] is not None:
                self._publish(topics.watched_task_at(slug), payload["last_outcome_at"].encode())

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._published.get(topic) == payload:
            return
        if self.context.link.publish_now(topic, payload, retain=True):
            self._published[topic] = payload
