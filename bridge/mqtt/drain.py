"""The outbox drain: events go from the outbox to the broker in order, and what the broker
acknowledged is settled (its outbox row deleted, counted).

At most MAX_INFLIGHT events are unacknowledged at a time, well below MQTT's 65,535 packet ids.
Every publish, event or state, goes through gmqtt's public `publish`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.core.stats import Stats
from bridge.mqtt.client import Client
from bridge.mqtt.inflight import InflightStore
from bridge.mqtt.outbox import Outbox, OutMessage

MAX_INFLIGHT = 2000
"""Events sent but not yet acknowledged, per connection."""
MAX_UNACKNOWLEDGED = 20_000
"""Every publish (state too) not yet acknowledged; past it state publishes wait for the next
change or reconnect, so a broker that stops acknowledging cannot exhaust packet ids."""
RETRY_TAKE = 1.0
"""Seconds before the drain looks again at events it could not take from the outbox."""
SEND_BATCH = 500
"""Events sent before yielding to the event loop, so the UDP listener keeps reading."""


@dataclass(slots=True)
class Connection:
    """One broker connection: its client and the store that tracks its acknowledgements."""

    client: Client
    store: InflightStore

    @property
    def usable(self) -> bool:
        """Connected, and the socket not already closing (the loss is being reported)."""
        return not self.store.retired and bool(self.client.is_connected)

    def publish(self, message: OutMessage) -> None:
        self.store.sending(message if message.durable and message.qos else None)
        try:
            self.client.publish(
                message.topic, message.payload, qos=message.qos, retain=message.retain
            )
        finally:
            self.store.sending(None)


class Drain:
    def __init__(
        self, outbox: Outbox, stats: Stats, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.outbox = outbox
        self._stats = stats
        self._clock = clock
        self._progress_at = clock()
        """When an event was last delivered, or the outbox last became non-empty."""
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._connection: Connection | None = None

    @property
    def in_flight(self) -> int:
        """Events sent on the current connection and not yet acknowledged."""
        connection = self._connection
        return 0 if connection is None else connection.store.events_in_flight

    def attach(self, connection: Connection) -> None:
        self._connection = connection
        self._progress_at = self._clock()  # an outage is not a stall: count from now
        self.outbox.set_online(True)
        self.wake.set()

    def detach(self) -> None:
        """The connection is gone: settle what it acknowledged, and put what it did not back
        at the front of the outbox."""
        connection, self._connection = self._connection, None
        self.outbox.set_online(False)
        if connection is not None:
            self._settle(connection)
            self.outbox.spill(connection.store.retire())

    def stalled_for(self) -> float:
        """Seconds without delivery progress while events wait (0 when none wait)."""
        if self.idle.is_set():
            return 0.0
        return max(0.0, self._clock() - self._progress_at)

    def put(self, message: OutMessage) -> None:
        if self.idle.is_set():
            self._progress_at = self._clock()
            self.idle.clear()
        self.outbox.put(message)
        self.wake.set()

    def publish_now(self, message: OutMessage) -> bool:
        """Send a non-queued message on the current connection; False when there is none or
        too much is unacknowledged."""
        connection = self._connection
        if connection is None or not connection.usable:
            return False
        if message.qos and connection.store.unacknowledged >= MAX_UNACKNOWLEDGED:
            self._stats.publish_refused += 1
            return False
        connection.publish(message)
        return True

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            self.step()
            connection = self._connection
            while connection is not None and self._room(connection):
                batch = self.outbox.take(min(SEND_BATCH, MAX_INFLIGHT - self.in_flight))
                if not batch:
                    break
                self._send(connection, batch)
                await asyncio.sleep(0)  # let the UDP listener read between batches
                self.step()  # what was acknowledged meanwhile: settled as the burst goes on
                connection = self._connection
            if not len(self.outbox) and not self.in_flight:
                self.idle.set()
            elif connection is not None and connection.usable and not self.in_flight:
                # Events wait but none could be taken (the disk refused a read): nothing
                # else will wake the drain while the link is idle, so look again soon.
                asyncio.get_running_loop().call_later(RETRY_TAKE, self.wake.set)

    def step(self) -> None:
        """Settle the acknowledgements that arrived since the last step."""
        if self._connection is not None:
            self._settle(self._connection)

    def _room(self, connection: Connection) -> bool:
        return connection.usable and connection.store.events_in_flight < MAX_INFLIGHT

    def _send(self, connection: Connection, batch: list[OutMessage]) -> None:
        sent_unacknowledged: list[OutMessage] = []
        for index, message in enumerate(batch):
            if not connection.usable:  # lost mid-batch: the rest waits for the next one
                self.outbox.unsend(batch[index:])
                break
            try:
                connection.publish(message)
            except Exception:
                self.outbox.unsend(batch[index:])
                raise  # the drain is restarted (bridge.runtime.supervise); nothing was lost
            if not message.qos:  # QoS 0: sent is all there is
                sent_unacknowledged.append(message)
        if sent_unacknowledged:
            self._settled(sent_unacknowledged)

    def _settle(self, connection: Connection) -> None:
        acked = connection.store.take_acked()
        if acked:
            self._settled(acked)

    def _settled(self, messages: list[OutMessage]) -> None:
        self._progress_at = self._clock()
        self.outbox.acked(messages)
        self._stats.events_published += len(messages)
