"""Retained `<base>/site`, `<base>/<server>` and `<base>/<server>/users`.

The site and server topics are coalesced to one publish per `mqtt.state_interval` and stay small
whatever the site's size: counts, flags, the last events and a bounded preview of the users
(`session_preview`: O(what is shown)). Every user's name is on `<server>/users`, rendered only
when the server's users changed (`ServerState.membership`), at most once per
`state.users_interval`, and in steps by a task of its own (`user_list_steps`: 50,000 names
take 10-20 ms, 120 ms hashed), so no step holds the event loop for more than about 1 ms.
Each topic also keeps to `mqtt.state_bytes_per_second` (`ByteBudget`): a big payload waits in
proportion to its size, so the retained state a big site sends stays bounded.
"""

from __future__ import annotations

import asyncio

from bridge.core.payloads import (
    encode,
    server_state,
    session_preview,
    site_payload,
)
from bridge.core.state import Change, ServerState
from bridge.core.user_list import Names, user_list_steps
from bridge.extensions import Context, Extension
from bridge.runtime.budget import ByteBudget
from bridge.runtime.coalesce import Coalescer
from bridge.runtime.steps import run_steps


class StateTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._dirty_servers: set[str] = set()
        self._site_dirty = False
        self._published: dict[str, bytes] = {}
        self._budget = ByteBudget(context.config.mqtt.state_bytes_per_second)
        self._coalescer = Coalescer(
            context.config.mqtt.state_interval, self.guarded("flush", self._flush)
        )
        self._users_coalescer = Coalescer(
            context.config.state.users_interval, self.guarded("flush_users", self._flush_users)
        )
        self._previews: dict[str, tuple[ServerState, int, tuple[list[str], bool]]] = {}
        """Per server slug: the preview, and the server and membership it was made from."""
        self._listed: dict[str, tuple[ServerState, int]] = {}
        """Per server slug: the server and membership `<server>/users` was last made from."""
        self._rendering: dict[str, asyncio.Task[None]] = {}
        """Per server slug: the task rendering its `<server>/users`, while it runs."""
        self._names: dict[str, Names] = {}
        """Per server slug: the treated (hashed) names of its users, from the last render."""

    async def stop(self) -> None:
        """The last word: the newest state of every topic, big or not (the broker keeps it)."""
        self._budget.clear()
        self._coalescer.flush_now()
        for _ in range(3):  # a render under way lists the users as they were when it began
            self._budget.clear()
            self._users_coalescer.flush_now()
            await asyncio.gather(*self._rendering.values())  # each guards itself: never raises
            if not any(self._users_changed(slug) for slug in self.context.state.servers):
                break

    def on_connect(self) -> None:
        self._published.clear()
        self._budget.clear()  # the broker may have nothing: every topic at once
        self._listed.clear()
        self._dirty_servers = set(self.context.state.servers)
        self._site_dirty = True
        self._coalescer.flush_now()
        self._users_coalescer.flush_now()

    def on_forget(self, slug: str) -> None:
        self._previews.pop(slug, None)
        self._listed.pop(slug, None)
        self._names.pop(slug, None)
        self._dirty_servers.discard(slug)
        for topic in (self.context.topics.server(slug), self.context.topics.server_users(slug)):
            self._published.pop(topic, None)
            self._budget.forget(topic)
            self.context.link.publish_now(topic, b"", retain=True)  # clears the retained state

    def on_change(self, change: Change) -> None:
        if change.servers or change.site:
            self._dirty_servers |= change.servers
            self._site_dirty |= change.site
            self._coalescer.mark()
            if any(self._users_changed(slug) for slug in change.servers):
                self._users_coalescer.mark()

    def _flush(self) -> None:
        link, state, topics = self.context.link, self.context.state, self.context.topics
        if not link.connected:
            return  # on_connect publishes everything again
        now = asyncio.get_running_loop().time()
        waiting: set[str] = set()
        soonest = float("inf")
        for slug in self._dirty_servers:
            server = state.servers.get(slug)
            if server is None:
                continue
            topic = topics.server(slug)
            wait = self._budget.wait(topic, now)
            if wait > 0:
                waiting.add(slug)  # its last payload was big: not yet
                soonest = min(soonest, wait)
                continue
            if not self._publish(
                topic, server_state(server, self.context.privacy, self._preview(slug))
            ):
                waiting.add(slug)  # refused (the broker is behind): again next interval
                soonest = min(soonest, 0.0)
        site_waiting = False
        if self._site_dirty:
            wait = self._budget.wait(topics.site, now)
            if wait > 0:
                site_waiting = True
                soonest = min(soonest, wait)
            else:
                site = site_payload(state, self.context.privacy)
                published = self._publish(topics.site, encode(site))
                if site["last_event_at"] is not None:
                    last = site["last_event_at"].encode()
                    published = self._publish(topics.site_last_event, last) and published
                if not published:
                    site_waiting = True
                    soonest = min(soonest, 0.0)
        self._dirty_servers = waiting
        self._site_dirty = site_waiting
        if waiting or site_waiting:
            self._coalescer.mark(at_least=soonest)

    def _flush_users(self) -> None:
        """`<server>/users` of each server whose users changed since it was last published."""
        if not self.context.link.connected:
            return  # on_connect publishes them again
        loop = asyncio.get_running_loop()
        soonest = float("inf")
        for slug, server in self.context.state.servers.items():
            if slug not in self._rendering and self._users_changed(slug):
                wait = self._budget.wait(self.context.topics.server_users(slug), loop.time())
                if wait > 0:
                    soonest = min(soonest, wait)  # its last list was big: not yet
                    continue
                self._rendering[slug] = loop.create_task(self._render_users(slug, server))
        if soonest < float("inf"):
            self._users_coalescer.mark(at_least=soonest)

    async def _render_users(self, slug: str, server: ServerState) -> None:
        """Render `<server>/users` in steps, and publish it if the server is still there."""
        try:
            membership = server.membership
            budget = self.context.config.state.users_max_bytes
            known = self._names.get(slug, {})
            steps = user_list_steps(server, self.context.privacy, budget, known)
            payload, names = await run_steps(steps)
            if self.context.state.servers.get(slug) is not server:
                return  # forgotten meanwhile
            self._names[slug] = names
            topic = self.context.topics.server_users(slug)
            if self.context.link.connected and self._publish(topic, payload):
                self._listed[slug] = (server, membership)
            if self._users_changed(slug):
                self._users_coalescer.mark()  # changed while rendering: once more, in time
        except Exception:
            self.failed("render_users")
        finally:
            self._rendering.pop(slug, None)

    def _users_changed(self, slug: str) -> bool:
        server = self.context.state.servers.get(slug)
        if server is None:
            return False
        listed = self._listed.get(slug)
        return listed is None or listed[0] is not server or listed[1] != server.membership

    def _publish(self, topic: str, payload: bytes) -> bool:
        """Whether the broker has `payload` on `topic` now (published, or already there)."""
        if self._published.get(topic) == payload:
            return True
        if self.context.link.publish_now(topic, payload, retain=True):
            self._published[topic] = payload
            self._budget.spend(topic, len(payload), asyncio.get_running_loop().time())
            self.context.stats.state_publishes += 1
            return True
        return False

    def _preview(self, slug: str) -> tuple[list[str], bool]:
        server = self.context.state.servers[slug]
        cached = self._previews.get(slug)
        if cached is None or cached[0] is not server or cached[1] != server.membership:
            known = self._names.get(slug)  # hashed names from the last list: not hashed again
            preview = session_preview(server, self.context.privacy, known=known)
            cached = (server, server.membership, preview)
            self._previews[slug] = cached
        return cached[2]
