"""`<base>/bridge/state` (`online`, retained at connect), `<base>/bridge/info` (retained at
connect) and `<base>/bridge/stats` (every stats_interval).

The bridge also reads its own `bridge/state`: while it runs, another writer (a bridge that was
still shutting down, a stray will, a hand-typed `mosquitto_pub -r`) may replace `online` with
`offline`, and every Home Assistant entity would stay unavailable. It says `online` again,
logs it and counts it (`availability_reasserted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from bridge import __version__
from bridge.core.bounded import TEXT_BYTES, clip_text
from bridge.core.payloads import encode
from bridge.core.state import Change
from bridge.core.times import iso_time
from bridge.extensions import Context, Extension
from bridge.runtime.logs import RateLimiter
from bridge.runtime.supervise import supervised

log = structlog.get_logger("qlik2mqtt")

STATS_AFTER_CHANGE = 1.0
REASSERT_LOG_INTERVAL = 60.0
ONLINE = b"online"


class BridgeTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._task: asyncio.Task[None] | None = None
        self._known_servers = set(context.state.servers)
        # Besides every stats_interval: a second after a change (trailing, so the outbox has
        # been sent by then), at most once a second, so the counters move with the events.
        self._stats_soon: asyncio.TimerHandle | None = None
        self._stopping = False
        self._reassert_log = RateLimiter(REASSERT_LOG_INTERVAL, time.monotonic)

    def start(self) -> None:
        self._task = asyncio.create_task(
            supervised("bridge-stats", self._publish_stats_forever, self.context.stats),
            name="bridge-stats",
        )

    async def stop(self) -> None:
        self._stopping = True  # the `offline` this bridge is about to publish is its own
        if self._stats_soon is not None:
            self._stats_soon.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.publish_stats()

    def on_connect(self) -> None:
        self.context.link.publish_now(self.context.topics.bridge_state, ONLINE, retain=True)
        self._publish_info()
        self.publish_stats()

    def subscriptions(self) -> tuple[str, ...]:
        return (self.context.topics.bridge_state,)

    def on_retained(self, topic: str, payload: bytes) -> None:
        """What the broker held when this connection subscribed: the `online` published just
        after the subscription replaced it already."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """Another writer replaced `online`: say it again."""
        if self._stopping or payload == ONLINE:
            return
        if not self.context.link.publish_now(topic, ONLINE, retain=True):
            return  # not connected: the next connection publishes `online`
        self.context.stats.availability_reasserted += 1
        held_back = self._reassert_log.allow("reassert")
        if held_back is not None:
            log.warning(
                "another client replaced this bridge's availability while it runs: "
                "published online again (is another bridge using the same base topic?)",
                topic=topic,
                payload=payload[:32].decode("utf-8", errors="replace"),
                times=self.context.stats.availability_reasserted,
            )

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
                "log_port": config.udp.log_port,
                "source_filter": bool(config.udp.allowed_sources),
            },
            "embedded_broker": self.context.embedded_broker,
            "homeassistant": config.homeassistant.enabled,
            "butler_compat": config.butler_compat.enabled,
            "qrs": config.qrs.enabled,
            "servers": {  # a host's first 256 bytes (bridge.core.bounded), as in `<server>`
                slug: clip_text(server.host, TEXT_BYTES)
                for slug, server in sorted(self.context.state.servers.items())
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
