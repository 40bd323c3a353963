"""Butler's topics (`qliksense/...`) for users migrating from Butler; on with butler_compat."""

from __future__ import annotations

from bridge.core.events import Event
from bridge.core.state import Change
from bridge.extensions import Context, Extension, SiteUsers
from bridge.extensions import butler_payloads as butler
from bridge.extensions.link import OutMessage
from bridge.runtime.coalesce import Coalescer


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
        self._coalescer.flush_now()

    def _publish_users(self) -> None:
        if self._site_users.changed(self.context.state):
            self._users = butler.active_user_messages(
                self.context.state, self._base, self.context.privacy
            )
        for topic, payload in self._users:
            self.context.link.publish_now(topic, payload, retain=False)
