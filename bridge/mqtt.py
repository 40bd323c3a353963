"""The MQTT connection: gmqtt underneath, reconnect with backoff, an ordered event outbox.

One owner for the broker connection. Events go through `enqueue` into an outbox and are
delivered in order, QoS 1 by default; what the broker has not acknowledged when a connection
drops is put back at the front of the outbox and sent again on the next connection (QoS 1 is
at-least-once). Retained state goes through `publish_now`: it is not queued, because the
newest state is published again on every (re)connect.

gmqtt's own reconnect is switched off: it replays unacknowledged messages only when the broker
kept the session, and a restarted broker usually has not. Each connection is a fresh client.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gmqtt
import structlog
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.package import Package
from gmqtt.storage import PersistentStorage

from bridge.outbox import Outbox, OutMessage
from bridge.stats import Stats
from bridge.wire import next_packet_id, publish_packet, read_packets

log = structlog.get_logger("qlik2mqtt.mqtt")

MAX_INFLIGHT = 2000
"""Events sent but not yet acknowledged; bounded well below MQTT's 65535 packet ids."""
CONNECT_TIMEOUT = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
SEND_BATCH = 500
"""Events sent before yielding to the event loop, so the UDP listener keeps reading."""
LANE_FIRST_ID = 16_384
"""Packet ids from here up are the fast lane's; gmqtt numbers its own packets below."""
MAX_PACKET_ID = 65_535


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    keepalive: int
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    outbox_max: int = 100_000
    outbox_path: Path | None = None
    """SQLite file that keeps events across outages and restarts; None: memory only."""
    will_topic: str | None = None


class _Client(gmqtt.Client):  # type: ignore[misc]
    async def reconnect(self, delay: bool = False) -> None:
        """Disabled: MqttLink owns reconnection (see the module docstring)."""


class _AckStore(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store, observed: tells the link which packet id was sent and acked."""

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        super().__init__()
        self.last_mid = 0
        self._on_ack = on_ack

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self.last_mid = mid

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        self._on_ack(mid)


class MqttLink:
    def __init__(
        self,
        settings: BrokerSettings,
        stats: Stats,
        *,
        on_connect: Callable[[], None] = lambda: None,
        on_message: Callable[[str, bytes], None] = lambda topic, payload: None,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._on_connect = on_connect
        self._on_message = on_message
        self._outbox = Outbox(settings.outbox_path, settings.outbox_max, self._dropped)
        self._inflight: dict[int, OutMessage] = {}
        self._inflight_durable = 0
        """Events among the in-flight messages (kept, not counted, on the hot path)."""
        self._client: _Client | None = None
        self._store: _AckStore | None = None
        self._lane: _FastLane | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[str] = []

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def outbox_depth(self) -> int:
        """Events waiting for the broker: queued plus sent-but-unacknowledged."""
        return len(self._outbox) + self._inflight_events()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_idle(self) -> None:
        """Until every queued event has been acknowledged by the broker."""
        await self._idle.wait()

    def subscribe(self, topic: str) -> None:
        """Subscribe (QoS 1) on every connection from now on; call before start()."""
        if topic not in self._subscriptions:
            self._subscriptions.append(topic)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._supervise(), name="mqtt-supervisor"),
            asyncio.create_task(self._drain(), name="mqtt-outbox"),
        ]

    def enqueue(self, message: OutMessage) -> None:
        """Queue an event for in-order delivery; the oldest is dropped past the bound."""
        self._outbox.put(message)
        self._idle.clear()
        self._wake.set()

    def _dropped(self, count: int) -> None:
        self._stats.outbox_dropped += count
        if self._stats.outbox_dropped % 1000 == 1:
            log.warning(
                "outbox full: dropping the oldest events",
                limit=self._settings.outbox_max,
                dropped_total=self._stats.outbox_dropped,
            )

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        """Send at once if connected (state, commands' answers); False when not connected."""
        if not self.connected:
            return False
        self._send(OutMessage(topic, payload, qos, retain=retain, durable=False))
        return True

    async def close(self, flush_timeout: float, final: tuple[str, bytes] | None = None) -> int:
        """Deliver what the broker takes within `flush_timeout`, send `final` (retained), and
        disconnect. Returns how many events were left undelivered."""
        if self.connected and self.outbox_depth:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_timeout)
        self._closing.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        client = self._client
        if client is not None and self.connected:
            if final is not None:
                self._send(OutMessage(final[0], final[1], 1, retain=True, durable=False))
            await client.disconnect()
        self._connected.clear()
        left = self.outbox_depth
        self._outbox.close(self._unacked())
        self._inflight.clear()
        self._inflight_durable = 0
        return left

    # -- connection ---------------------------------------------------------------------

    def _new_client(self) -> _Client:
        settings = self._settings
        will = None
        if settings.will_topic is not None:
            will = gmqtt.Message(settings.will_topic, b"offline", qos=1, retain=True)
        self._store = _AckStore(self._acked)
        client = _client(settings, will, self._store)
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_gmqtt_message
        return client

    async def _supervise(self) -> None:
        delay = BACKOFF_FIRST
        failures = 0
        settings = self._settings
        while not self._closing.is_set():
            client = self._new_client()
            self._lost.clear()
            try:
                await _connect(client, settings, CONNECT_TIMEOUT)
            except Exception as exc:  # gmqtt raises OSError, TimeoutError and its own errors
                failures += 1
                await _abandon(client)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "MQTT broker unreachable, retrying",
                        broker=f"{settings.host}:{settings.port}",
                        error=_describe(exc),
                        attempt=failures,
                        retry_in=round(delay, 1),
                    )
                if await self._sleep_unless_closing(delay * random.uniform(0.8, 1.2)):
                    return
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            failures, delay = 0, BACKOFF_FIRST
            self._client = client
            self._lane = _FastLane.attach(client, self._inflight, self._acked)
            self._stats.mqtt_connects += 1
            for topic in self._subscriptions:
                client.subscribe(topic, qos=1)
            self._connected.set()
            self._outbox.set_online(True)
            log.info("MQTT connected", broker=f"{settings.host}:{settings.port}")
            self._on_connect()
            self._wake.set()
            await self._lost.wait()
            self._connected.clear()
            self._outbox.set_online(False)
            self._requeue_inflight()
            if not self._closing.is_set():
                log.warning("MQTT connection lost, reconnecting", queued=self.outbox_depth)

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
        try:
            self._on_message(topic, payload)
        except Exception:
            log.exception("error handling an MQTT command", topic=topic)
        return 0

    # -- outbox -------------------------------------------------------------------------

    def _send(self, message: OutMessage) -> None:
        assert self._client is not None
        assert self._store is not None
        if self._lane is not None and message.qos == 1:
            self._inflight[self._lane.publish(message)] = message
            self._inflight_durable += message.durable
            return
        self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if message.qos > 0:
            self._inflight[self._store.last_mid] = message
            self._inflight_durable += message.durable
        elif message.durable:  # QoS 0: sent is all there is; its disk row, if any, goes too
            self._outbox.acked(message)
            self._stats.events_published += 1

    def _acked(self, mid: int) -> None:
        message = self._inflight.pop(mid, None)
        if message is not None and message.durable:
            self._inflight_durable -= 1
            self._outbox.acked(message)
            self._stats.events_published += 1
            self._wake.set()

    def _unacked(self) -> list[OutMessage]:
        return [message for message in self._inflight.values() if message.durable]

    def _requeue_inflight(self) -> None:
        unacked = self._unacked()
        self._inflight.clear()
        self._inflight_durable = 0
        self._outbox.spill(unacked)

    def _can_send(self) -> bool:
        """Connected, and the socket not already closing (the loss is being reported)."""
        return self.connected and self._client is not None and bool(self._client.is_connected)

    def _inflight_events(self) -> int:
        return self._inflight_durable

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._can_send() and len(self._inflight) < MAX_INFLIGHT:
                batch = self._outbox.take(min(SEND_BATCH, MAX_INFLIGHT - len(self._inflight)))
                if not batch:
                    break
                with _one_write(self._client):
                    for message in batch:
                        self._send(message)
                await asyncio.sleep(0)  # let the UDP listener read between batches
            if not len(self._outbox) and not self._inflight_events():
                self._idle.set()


class _FastLane:
    """QoS 1 publishes and their PUBACKs beside gmqtt (see bridge.wire).

    Packet ids are split: gmqtt's allocator keeps 1..LANE_FIRST_ID-1 for what it sends itself
    (subscriptions, QoS 2), the lane numbers its publishes from LANE_FIRST_ID up, skipping
    ids still in flight. The link keeps the in-flight messages and sends them again after a
    reconnect, so the lane needs no store of its own. Attached only where the gmqtt internals
    it uses are there; otherwise every packet takes gmqtt's own path.
    """

    def __init__(
        self,
        client: Any,
        inflight: dict[int, OutMessage],
        on_ack: Callable[[int], None],
    ) -> None:
        self._connection = client._connection
        self._protocol = client._connection._protocol
        self._gmqtt_ids = self._protocol.id_generator
        self._gmqtt_store = client._persistent_storage
        self._inflight = inflight
        """The link's in-flight messages by packet id: ids in it are not handed out again."""
        self._on_ack = on_ack
        self._next_id = LANE_FIRST_ID

    @classmethod
    def attach(
        cls, client: Any, inflight: dict[int, OutMessage], on_ack: Callable[[int], None]
    ) -> _FastLane | None:
        connection: Any = getattr(client, "_connection", None)
        protocol: Any = getattr(connection, "_protocol", None)
        ids: Any = getattr(protocol, "id_generator", None)
        needed = (
            hasattr(protocol, "write_data")
            and hasattr(protocol, "_read_packet")
            and hasattr(connection, "put_package")
            and hasattr(client, "_persistent_storage")
            and isinstance(getattr(ids, "_max", None), int)
        )
        if not needed:
            return None
        lane = cls(client, inflight, on_ack)
        ids._max = LANE_FIRST_ID  # gmqtt's ids stay below ours
        protocol._read_packet = lane._read  # gmqtt's read loop frames through us from now on
        return lane

    def publish(self, message: OutMessage) -> int:
        packet_id = next_packet_id(self._next_id, LANE_FIRST_ID, MAX_PACKET_ID, self._inflight)
        self._next_id = packet_id + 1
        topic = message.topic.encode()
        packet = publish_packet(topic, message.payload, 1, message.retain, packet_id)
        self._protocol.write_data(packet)  # looked up each time: _one_write may shadow it
        return packet_id

    def _read(self, data: bytes) -> int:
        consumed = read_packets(data, self._puback, self._other)
        self._connection._last_data_in = time.monotonic()  # gmqtt's keepalive bookkeeping
        return consumed

    def _puback(self, packet_id: int) -> None:
        if packet_id >= LANE_FIRST_ID:
            self._on_ack(packet_id)
        else:  # one of gmqtt's own
            self._gmqtt_ids.free_id(packet_id)
            self._gmqtt_store.remove_message_by_mid(packet_id)

    def _other(self, command: int, body: bytes) -> None:
        self._connection.put_package(Package(command, body))


@contextlib.contextmanager
def _one_write(client: Any) -> Iterator[None]:
    """Send a batch of publishes as one socket write instead of one write each.

    A profile put a quarter of the bridge's time in gmqtt writing each packet on its own.
    gmqtt has no public hook for this, so it reaches its protocol object; where that is not
    there (another gmqtt version) it does nothing and every packet is written as before.
    Packets lost to a connection that drops meanwhile are QoS 1 in-flight messages, which the
    link sends again after the reconnect.
    """
    protocol = getattr(getattr(client, "_connection", None), "_protocol", None)
    transport = getattr(protocol, "_transport", None)
    if protocol is None or transport is None or "write_data" in vars(protocol):
        yield
        return
    chunks: list[bytes] = []
    protocol.write_data = chunks.append  # shadows the method for this batch only
    try:
        yield
    finally:
        del protocol.write_data
        if chunks:
            protocol.write_data(b"".join(chunks))


async def probe(settings: BrokerSettings, within: float) -> str | None:
    """Connect once and disconnect: None when the broker took us, else what went wrong."""
    client = _client(settings)
    try:
        await _connect(client, settings, within)
    except Exception as exc:  # every failure is reported, none is fatal here
        await _abandon(client)
        return _describe(exc)
    await _abandon(client)
    return None


def _client(
    settings: BrokerSettings, will: Any = None, storage: PersistentStorage | None = None
) -> _Client:
    client = _Client(settings.client_id, will_message=will, persistent_storage=storage)
    if settings.username is not None:
        client.set_auth_credentials(settings.username, settings.password)
    return client


async def _connect(client: _Client, settings: BrokerSettings, within: float) -> None:
    """MQTT 3.1.1: gmqtt's default MQTT 5 connect hangs against some brokers (amqtt)."""
    await asyncio.wait_for(
        client.connect(
            settings.host,
            settings.port,
            ssl=settings.tls or False,
            keepalive=settings.keepalive,
            version=MQTTv311,
        ),
        within,
    )


async def _abandon(client: _Client) -> None:
    with contextlib.suppress(Exception):  # the connection never came up; nothing to close
        await client.disconnect()


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that host and port?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    return text
