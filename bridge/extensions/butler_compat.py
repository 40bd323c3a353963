"""Butler's topics (`qliksense/...`) for users migrating from Butler; on with butler_compat.

The active users' messages are rendered by a task in steps (`active_user_steps`), while the
loop runs, and published when ready; until the users change they are kept and sent again."""

from __future__ import annotations

import asyncio

from bridge.core.events import Event
from bridge.core.state import Change
from bridge.extensions import Context, Extension, SiteUsers
from bridge.extensions import butler_payloads as butler
from bridge.extensions.link import OutMessage
from bridge.runtime.coalesce import Coalescer
from bridge.runtime.steps import run_steps


class ButlerCompat(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._base = context.config.butler_compat.base_topic
        self._coalescer = Coalescer(
            context.config.mqtt.state_interval, self.guarded("flush", self._publish_users)
        )
        self._site_users = SiteUsers()
        self._users: list[butler.Message] = []
        """The active-user messages, while `_site_users` has not changed (sorting 50,000
        names took 30-50 ms a flush)."""
        self._known: butler.Known = {}
        """Hashed names from the last render: the next hashes only new users."""
        self._rendering: asyncio.Task[None] | None = None
        self._again = False
        """The users may have changed while a render ran: look again when it ends."""

    def on_event(self, event: Event, received_at: float) -> None:
        qos = self.context.config.mqtt.qos
        for topic, payload in butler.event_messages(event, self._base, self.context.privacy):
            self.context.link.enqueue(OutMessage(topic, payload, qos))

    def on_change(self, change: Change) -> None:
        if change.servers:
            self._coalescer.mark()

    def on_connect(self) -> None:
        self._coalescer.flush_now()

    async def stop(self) -> None:
        """The users as they are now, published before the connection closes."""
        self._coalescer.flush_now()
        while self._rendering is not None:
            await self._rendering  # never raises: it counts its own failure

    def _publish_users(self) -> None:
        """The kept messages when the users did not change; else a render is started (one at
        a time: a change during it is looked at when it ends)."""
        if self._rendering is not None:
            self._again = True
            return
        if not self._site_users.changed(self.context.state):
            self._send(self._users)
            return
        self._rendering = asyncio.get_running_loop().create_task(self._render())

    async def _render(self) -> None:
        try:
            steps = butler.active_user_steps(
                self.context.state, self._base, self.context.privacy, self._known
            )
            self._users, self._known = await run_steps(steps)
            self._send(self._users)
        except Exception:
            self.failed("render_users")
            self._site_users = SiteUsers()  # not rendered: the next flush renders again
        finally:
            self._rendering = None
        if self._again:
            self._again = False
            self.guarded("flush", self._publish_users)()

    def _send(self, messages: list[butler.Message]) -> None:
        for topic, payload in messages:
            self.context.link.publish_now(topic, payload, retain=False)
