"""The MQTT link: one owner for the broker connection, supervised, with an ordered outbox.

Events go through `enqueue` into the outbox and are delivered in order, QoS 1 by default;
what the broker has not acknowledged when a connection drops goes back to the front of the
outbox and out again on the next connection (QoS 1 is at-least-once). Retained state goes
through `publish_now`: it is not queued, because the newest state is published again on
every (re)connect.

Each connection is a fresh gmqtt client with its own acknowledgement store (see
bridge.mqtt.inflight); the supervisor reconnects with backoff. The callbacks it calls (on
connect, on message) are code it does not own: an exception there is logged, counted and
never ends the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import structlog

from bridge.core.stats import Stats
from bridge.mqtt.client import (
    CONNECT_TIMEOUT,
    BrokerSettings,
    Client,
    abandon,
    connect,
    describe,
    new_client,
    will_message,
)
from bridge.mqtt.drain import Connection, Drain
from bridge.mqtt.inflight import InflightStore
from bridge.mqtt.outbox import Outbox, OutMessage
from bridge.runtime.guard import Guard
from bridge.runtime.logs import RateLimiter
from bridge.runtime.supervise import supervised

log = structlog.get_logger("qlik2mqtt.mqtt")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
LOG_INTERVAL = 60.0
WATCH_INTERVAL = 1.0
"""How often a connection is looked at: gmqtt reports a loss only once its socket is closed,
and a broker that stopped reading (hung, or its host gone) keeps it closing for minutes."""
ABANDON_TIMEOUT = 2.0
"""A disconnect waits at most this long for a broker that does not answer."""
ALIVE_WITHIN = 60.0
"""The supervisor looks at its connection every second, and sleeps at most BACKOFF_MAX between
attempts: silent for longer, it is stuck."""


class MqttLink:
    def __init__(
        self,
        settings: BrokerSettings,
        stats: Stats,
        *,
        on_connect: Callable[[], None] = lambda: None,
        on_message: Callable[[str, bytes, bool], None] = lambda topic, payload, retained: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._on_connect = on_connect
        self._on_message = on_message
        self._monotonic = monotonic
        self._log_limit = RateLimiter(LOG_INTERVAL, monotonic)
        self._guard = Guard(stats, monotonic)
        outbox = Outbox(
            settings.outbox_path,
            settings.outbox_max,
            self._dropped,
            on_disk_error=self._disk_error,
            clock=monotonic,
        )
        self._drain = Drain(outbox, stats, monotonic)
        self._client: Client | None = None
        self._store: InflightStore | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._lost = asyncio.Event()
        self._beat = monotonic()
        """When the supervisor last showed it is working."""
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[str] = []
        self.last_error: str | None = None
        """Why the last connection attempt failed (`describe`), None once connected."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        """The supervisor and the drain are running (they are restarted if they end) and the
        supervisor is not stuck."""
        running = bool(self._tasks) and not any(task.done() for task in self._tasks)
        return running and self._monotonic() - self._beat < ALIVE_WITHIN

    @property
    def in_flight(self) -> int:
        """Events sent on the current connection and not yet acknowledged."""
        return self._drain.in_flight

    @property
    def outbox_depth(self) -> int:
        """Events waiting for the broker: queued plus sent-but-unacknowledged."""
        return len(self._drain.outbox) + self._drain.in_flight

    @property
    def disk_ok(self) -> bool:
        return self._drain.outbox.disk_ok

    def waiting_for(self) -> float:
        """Seconds the oldest undelivered event has gone without any delivery progress."""
        return self._drain.stalled_for()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        """Until the link has no connection (lost, or not yet made)."""
        await self._disconnected.wait()

    async def wait_idle(self) -> None:
        """Until every queued event has been acknowledged by the broker."""
        await self._drain.idle.wait()

    def subscribe(self, topic: str) -> None:
        """Subscribe (QoS 1) on every connection from now on; call before start()."""
        if topic not in self._subscriptions:
            self._subscriptions.append(topic)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                supervised("mqtt-supervisor", self._supervise, self._stats, stop=self._closing),
                name="mqtt-supervisor",
            ),
            asyncio.create_task(
                supervised("mqtt-outbox", self._drain.run, self._stats), name="mqtt-outbox"
            ),
        ]

    def enqueue(self, message: OutMessage) -> None:
        """Queue an event for in-order delivery; the oldest is dropped past the bound."""
        self._drain.put(message)

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        """Send at once if connected (state, commands' answers); False when not connected."""
        if not self.connected:
            return False
        return self._drain.publish_now(
            OutMessage(topic, payload, qos, retain=retain, durable=False)
        )

    async def close(self, flush_timeout: float, final: tuple[str, bytes] | None = None) -> int:
        """Deliver what the broker takes within `flush_timeout`, send `final` (retained), and
        disconnect. Returns how many events were left undelivered (kept on disk, if any)."""
        if self.connected and self.outbox_depth:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain.idle.wait(), flush_timeout)
        self._closing.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        client, store = self._client, self._store
        if client is not None and store is not None and self.connected:
            if final is not None and self._drain.publish_now(
                OutMessage(final[0], final[1], 1, True, durable=False)
            ):
                # DISCONNECT only once the broker has acknowledged it: a broker that finds
                # the socket closed while it answers (mosquitto: "out of memory") takes the
                # goodbye as a lost connection and publishes the will too (`offline` twice).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(store.all_acknowledged.wait(), ABANDON_TIMEOUT)
            await self._abandon(client)
        self._set_connected(False)
        self._drain.detach()
        left = len(self._drain.outbox)
        lost = self._drain.outbox.close([])
        if lost:
            self._stats.outbox_dropped += lost
            log.error("could not keep undelivered events on disk: lost", count=lost)
        return left

    # -- connection ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = BACKOFF_FIRST
        failures = 0
        settings = self._settings
        while not self._closing.is_set():
            self._beat = self._monotonic()
            store = InflightStore(self._drain.wake.set)
            client = new_client(settings, will_message(settings.will_topic), store)
            client.on_disconnect = self._on_disconnect
            client.on_message = self._on_gmqtt_message
            self._client, self._store = client, store
            self._lost.clear()
            try:
                await connect(client, settings, CONNECT_TIMEOUT)
            except Exception as exc:  # gmqtt raises OSError, TimeoutError and its own errors
                failures += 1
                self.last_error = describe(exc)
                await self._abandon(client)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "MQTT broker unreachable, retrying",
                        broker=f"{settings.host}:{settings.port}",
                        error=describe(exc),
                        attempt=failures,
                        retry_in=round(delay, 1),
                    )
                if await self._sleep_unless_closing(delay * random.uniform(0.8, 1.2)):
                    return
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            failures, delay = 0, BACKOFF_FIRST
            self.last_error = None
            silent = False
            try:
                silent = await self._serve(client, store)
            finally:
                if not self._closing.is_set():  # else close() finishes the connection
                    self._set_connected(False)
                    self._drain.detach()
            if silent:
                await self._abandon(client)  # gmqtt never reported it: let it go ourselves
            if not self._closing.is_set():
                log.warning("MQTT connection lost, reconnecting", queued=self.outbox_depth)

    async def _serve(self, client: Client, store: InflightStore) -> bool:
        """One connection, from CONNACK until it is lost. True when the loss was found by
        looking (the socket closing without gmqtt's on_disconnect), not reported."""
        settings = self._settings
        self._stats.mqtt_connects += 1
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._set_connected(True)
        self._drain.attach(Connection(client, store))
        log.info("MQTT connected", broker=f"{settings.host}:{settings.port}")
        self._guarded("on_connect", self._on_connect)
        while not self._lost.is_set():
            self._beat = self._monotonic()
            if not client.is_connected:  # closing: keepalive gave up on a silent broker
                log.warning("MQTT broker stopped answering: connection given up")
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), WATCH_INTERVAL)
        return False

    def _set_connected(self, connected: bool) -> None:
        (self._connected if connected else self._disconnected).set()
        (self._disconnected if connected else self._connected).clear()

    async def _abandon(self, client: Client) -> None:
        """Let a client go, waiting at most ABANDON_TIMEOUT for a broker that does not read."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(abandon(client), ABANDON_TIMEOUT)

    async def _sleep_unless_closing(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if client is self._client:
            self._lost.set()

    def _on_gmqtt_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        retained = bool(properties.get("retain")) if isinstance(properties, dict) else False
        self._guarded("on_message", lambda: self._on_message(topic, payload, retained))
        return 0

    def _guarded(self, hook: str, call: Callable[[], None]) -> None:
        """Run a callback the link does not own: an exception is logged and counted."""
        self._guard.call("mqtt", hook, call)

    # -- outbox faults ------------------------------------------------------------------

    def _dropped(self, count: int) -> None:
        self._stats.outbox_dropped += count
        if self._log_limit.allow("outbox-full") is not None:
            log.warning(
                "outbox full: dropping the oldest events",
                limit=self._settings.outbox_max,
                dropped_total=self._stats.outbox_dropped,
            )

    def _disk_error(self, action: str, exc: Exception) -> None:
        self._stats.outbox_disk_errors += 1
        suppressed = self._log_limit.allow(f"disk-{action}")
        if suppressed is not None:
            log.error(
                "outbox disk failing: events wait in memory until it works again",
                action=action,
                path=str(self._settings.outbox_path),
                error=str(exc),
                similar_suppressed=suppressed,
            )
