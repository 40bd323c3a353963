"""`<base>/<server>/event/task_context`: a failed or aborted reload's context from QRS (issue
26), published when it arrives, after the failure event (which never waits for it), and kept,
summarised, with the last failed task (retained state, Home Assistant attributes).

The fetching is `Context.task_contexts` (bridge/qrs/context.py); this extension asks for each
failure's context at once, so Slack and the alert outputs find it already on its way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.core.events import Event, TaskEvent
from bridge.core.payloads import encode
from bridge.core.state import Change, TaskRecord, slug_of, with_known_task
from bridge.core.task_context import failure_of, private, summary
from bridge.core.times import iso_time
from bridge.extensions import Context, Extension, TaskContextSource
from bridge.extensions.event_topics import NEW_SERVER_HOLD
from bridge.extensions.link import OutMessage


class TaskContextTopics(Extension):
    def __init__(self, context: Context, contexts: TaskContextSource) -> None:
        super().__init__(context)
        self._contexts = contexts
        self._qos = context.config.mqtt.qos
        self._hold = NEW_SERVER_HOLD if context.config.homeassistant.enabled else 0.0
        self._known: set[str] = set()
        self._held_until: dict[str, float] = {}
        """A new server's first events are held (`EventTopics`): its contexts come after."""

    def start(self) -> None:
        self._known = set(self.context.state.servers)

    async def stop(self) -> None:
        await self._contexts.aclose()

    def on_event(self, event: Event, received_at: float) -> None:
        if not isinstance(event, TaskEvent) or failure_of(event) is None:
            return  # most task events are no failure: no identity looked up for them
        state = self.context.state
        failure = failure_of(with_known_task(state, event))  # the engine's line: its task's
        if failure is None:
            return
        slug = slug_of(state, event.server)
        if slug not in self._known and slug in state.servers:  # past limits.max_servers: none
            self._known.add(slug)
            if self._hold > 0:
                self._held_until[slug] = received_at + self._hold
        arrived = self.guarded("arrived", self._arrived)
        self._contexts.context_for(failure).add_done_callback(
            lambda done: arrived(event, received_at, done)
        )

    def _arrived(
        self, event: TaskEvent, received_at: float, done: asyncio.Future[dict[str, Any]]
    ) -> None:
        if done.cancelled():
            return
        privacy = self.context.privacy
        context = private(done.result(), privacy, privacy.user_part(event.user))
        slug = slug_of(self.context.state, event.server)
        payload = {
            **context,
            "task_name": event.task_name,
            "event_timestamp": iso_time(received_at),
            "timestamp": iso_time(self.context.clock()),
        }
        message = OutMessage(self.context.topics.task_context(slug), encode(payload), self._qos)
        wait = self._held_until.get(slug, 0.0) - self.context.clock()
        if wait > 0:  # the failure event itself is still held: the context follows it
            later = self.guarded("publish", self.context.link.enqueue)
            asyncio.get_running_loop().call_later(wait + 0.05, later, message)
        else:
            self._held_until.pop(slug, None)
            self.context.link.enqueue(message)
        kept = summary(context)
        records = self._records_of(event, slug)
        for record in records:
            record.context = kept
        if records and self.context.changed is not None:
            self.context.changed(Change(servers=frozenset({slug}), site=True))

    def on_forget(self, slug: str) -> None:
        self._known.discard(slug)
        self._held_until.pop(slug, None)

    def _records_of(self, event: TaskEvent, slug: str) -> list[TaskRecord]:
        """The last failed task (the server's and the site's) when it is still this event."""
        state = self.context.state
        server = state.servers.get(slug)
        candidates = (state.last_failed_task, server.last_failed_task if server else None)
        found: list[TaskRecord] = []
        for record in candidates:
            if record is not None and record.event is event and record not in found:
                found.append(record)
        return found
