"""Retained `<base>/site` and `<base>/<server>`, coalesced to one publish per interval.

Rendering a server's user list is the costly part of a state publish (sorting 50,000 names
takes tens of milliseconds), so the list and the site's distinct-user count are kept until the
set of users changes (`ServerState.membership`), not rebuilt on every flush.
"""

from __future__ import annotations

from bridge.core.payloads import distinct_users, encode, server_payload, site_payload, user_names
from bridge.core.state import Change, ServerState
from bridge.extensions import Context, Extension, SiteUsers
from bridge.runtime.coalesce import Coalescer


class StateTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._dirty_servers: set[str] = set()
        self._site_dirty = False
        self._published: dict[str, bytes] = {}
        self._coalescer = Coalescer(
            context.config.mqtt.state_interval, self.guarded("flush", self._flush)
        )
        self._names: dict[str, tuple[ServerState, int, list[str]]] = {}
        """Per server slug: the user list, and the server and membership it was made from."""
        self._site_users = SiteUsers()
        self._distinct = 0
        """The site's distinct-user count, while `_site_users` has not changed."""

    async def stop(self) -> None:
        self._coalescer.flush_now()

    def on_connect(self) -> None:
        self._published.clear()
        self._dirty_servers = set(self.context.state.servers)
        self._site_dirty = True
        self._coalescer.flush_now()

    def on_forget(self, slug: str) -> None:
        self._names.pop(slug, None)
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
                payload = server_payload(server, self.context.privacy, self._user_names(slug))
                self._publish(topics.server(slug), encode(payload))
        if self._site_dirty:
            site = site_payload(state, self.context.privacy, self._distinct_users())
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

    def _user_names(self, slug: str) -> list[str]:
        server = self.context.state.servers[slug]
        cached = self._names.get(slug)
        if cached is None or cached[0] is not server or cached[1] != server.membership:
            cached = (server, server.membership, user_names(server, self.context.privacy))
            self._names[slug] = cached
        return cached[2]

    def _distinct_users(self) -> int:
        if self._site_users.changed(self.context.state):
            self._distinct = distinct_users(self.context.state)
        return self._distinct
