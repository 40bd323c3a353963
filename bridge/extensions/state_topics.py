"""Retained `<base>/site` and `<base>/<server>`, coalesced to one publish per interval."""

from __future__ import annotations

from bridge.coalesce import Coalescer
from bridge.extensions import Context, Extension
from bridge.payloads import encode, server_payload, site_payload
from bridge.state import Change


class StateTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._dirty_servers: set[str] = set()
        self._site_dirty = False
        self._published: dict[str, bytes] = {}
        self._coalescer = Coalescer(context.config.mqtt.state_interval, self._flush)

    async def stop(self) -> None:
        self._coalescer.flush_now()

    def on_connect(self) -> None:
        self._published.clear()
        self._dirty_servers = set(self.context.state.servers)
        self._site_dirty = True
        self._coalescer.flush_now()

    def on_forget(self, slug: str) -> None:
        topic = self.context.topics.server(slug)
        self._dirty_servers.discard(slug)
        self._published.pop(topic, None)
        self.context.link.publish_now(topic, b"", retain=True)  # clears the retained state

    def on_change(self, change: Change) -> None:
        if change.servers or change.site:
            self._dirty_servers |= change.servers
            self._site_dirty |= change.site
            self._coalescer.mark()

    def _flush(self) -> None:
        link, state, topics = self.context.link, self.context.state, self.context.topics
        if not link.connected:
            return  # on_connect publishes everything again
        for slug in self._dirty_servers:
            server = state.servers.get(slug)
            if server is not None:
                self._publish(
                    topics.server(slug), encode(server_payload(server, self.context.privacy))
                )
        if self._site_dirty:
            site = site_payload(state, self.context.privacy)
            self._publish(topics.site, encode(site))
            if site["last_event_at"] is not None:
                self._publish(topics.site_last_event, site["last_event_at"].encode())
        self._dirty_servers = set()
        self._site_dirty = False

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._published.get(topic) == payload:
            return
        if self.context.link.publish_now(topic, payload, retain=True):
            self._published[topic] = payload
            self.context.stats.state_publishes += 1
