"""Retained topics about single tasks: `<base>/site/retry`, the failed task the retry button
would start (with `qrs.enabled`), and `<base>/tasks/<slug>` with `…/last_outcome_at` for each
watched task (`tasks.watch`). Published at connect and after each task event, forget or change
of the retry candidates, each only when it changed; at connect, the topics of a task no longer
watched (in `BridgeState.watched_slugs`, outcome or not) are cleared, and it is dropped. A
publish the broker refused (too much unacknowledged) is tried again a `mqtt.state_interval`
later: these topics change only at task events, which may not come again for hours."""

from __future__ import annotations

import asyncio

from bridge.core.events import Event, TaskEvent
from bridge.core.payloads import encode
from bridge.core.retry import retry_payload, retry_target
from bridge.core.state import Change, drop_watched
from bridge.core.watch import watched_payload
from bridge.extensions import Context, Extension
from bridge.qrs.allow import AllowList


class TaskTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._retry = context.config.qrs.enabled
        allow = AllowList(context.config.qrs.allowed_tasks)
        self._allowed = lambda task_id: allow.allowed("id", task_id)
        self._watched = context.config.tasks.watched()
        self._watch = {watch.key: watch.slug for watch in self._watched}
        self._published: dict[str, bytes] = {}
        self._again: asyncio.TimerHandle | None = None
        """The retry of refused publishes, while one is scheduled."""

    def on_connect(self) -> None:
        self._published.clear()
        topics, link, state = self.context.topics, self.context.link, self.context.state
        retired = sorted(state.watched_slugs - set(self._watch.values()))
        cleared = all(
            [
                link.publish_now(topic, b"", retain=True)
                for slug in retired
                for topic in (topics.watched_task(slug), topics.watched_task_at(slug))
            ]
        )
        if cleared:
            drop_watched(state, self._watched)  # Home Assistant's side keeps its own list
        self._publish_all()

    def on_event(self, event: Event, received_at: float) -> None:
        if isinstance(event, TaskEvent):
            self._publish_all()

    def on_change(self, change: Change) -> None:
        if change.retry:
            self._publish_all()

    def on_forget(self, slug: str) -> None:
        self._publish_all()

    def _publish_all(self) -> None:
        state, topics = self.context.state, self.context.topics
        published = True
        if self._retry:
            record = retry_target(state, self._allowed)
            published &= self._publish(topics.site_retry, encode(retry_payload(record)))
        for entry, slug in self._watch.items():
            payload = watched_payload(entry, state.watched.get(entry))
            published &= self._publish(topics.watched_task(slug), encode(payload))
            if payload["last_outcome_at"] is not None:
                at = payload["last_outcome_at"].encode()
                published &= self._publish(topics.watched_task_at(slug), at)
        if not published and self.context.link.connected and self._again is None:
            self._again = asyncio.get_running_loop().call_later(
                self.context.config.mqtt.state_interval,
                self.guarded("publish_again", self._publish_again),
            )

    async def stop(self) -> None:
        if self._again is not None:
            self._again.cancel()
            self._again = None

    def _publish_again(self) -> None:
        self._again = None
        self._publish_all()

    def _publish(self, topic: str, payload: bytes) -> bool:
        """Whether the broker has `payload` on `topic` now (published, or already there)."""
        if self._published.get(topic) == payload:
            return True
        if self.context.link.publish_now(topic, payload, retain=True):
            self._published[topic] = payload
            return True
        return False
