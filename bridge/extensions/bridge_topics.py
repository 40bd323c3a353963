"""`<base>/bridge/info` (retained at connect) and `<base>/bridge/stats` (every stats_interval)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bridge import __version__
from bridge.core.payloads import encode
from bridge.core.state import Change
from bridge.core.times import iso_time
from bridge.extensions import Context, Extension
from bridge.runtime.supervise import supervised

STATS_AFTER_CHANGE = 1.0


class BridgeTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._task: asyncio.Task[None] | None = None
        self._known_servers = set(context.state.servers)
        # Besides every stats_interval: a second after a change (trailing, so the outbox has
        # been sent by then), at most once a second, so the counters move with the events.
        self._stats_soon: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            supervised("bridge-stats", self._publish_stats_forever, self.context.stats),
            name="bridge-stats",
        )

    async def stop(self) -> None:
        if self._stats_soon is not None:
            self._stats_soon.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.publish_stats()

    def on_connect(self) -> None:
        self.context.link.publish_now(self.context.topics.bridge_state, b"online", retain=True)
        self._publish_info()
        self.publish_stats()

    def on_forget(self, slug: str) -> None:
        self._known_servers.discard(slug)
        self._publish_info()

    def on_change(self, change: Change) -> None:
        if self._stats_soon is None:
            loop = asyncio.get_running_loop()
            self._stats_soon = loop.call_later(
                STATS_AFTER_CHANGE, self.guarded("stats_soon", self._publish_soon)
            )
        if not change.servers <= self._known_servers:  # a new server: info lists the servers
            self._known_servers = set(self.context.state.servers)
            self._publish_info()

    def _publish_info(self) -> None:
        self.context.link.publish_now(
            self.context.topics.bridge_info, encode(self.info()), retain=True
        )

    def info(self) -> dict[str, Any]:
        config = self.context.config
        return {
            "version": __version__,
            "started_at": iso_time(self.context.started_at),
            "base_topic": config.mqtt.base_topic,
            "udp": {
                "host": config.udp.host,
                "user_activity_port": config.udp.user_activity_port,
                "task_port": config.udp.task_port,
                "source_filter": bool(config.udp.allowed_sources),
            },
            "embedded_broker": self.context.embedded_broker,
            "homeassistant": config.homeassistant.enabled,
            "butler_compat": config.butler_compat.enabled,
            "qrs": config.qrs.enabled,
            "servers": {
                slug: server.host for slug, server in sorted(self.context.state.servers.items())
            },
        }

    def _publish_soon(self) -> None:
        self._stats_soon = None
        self.publish_stats()

    def publish_stats(self) -> None:
        payload = self.context.stats.as_payload(self.context.link.outbox_depth)
        self.context.link.publish_now(
            self.context.topics.bridge_stats, encode(payload), retain=True
        )

    async def _publish_stats_forever(self) -> None:
        while True:
            await asyncio.sleep(self.context.config.stats_interval)
            self.publish_stats()
