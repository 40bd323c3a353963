"""Acknowledgement tracking: which of this connection's publishes the broker has taken.

gmqtt tells its `PersistentStorage` (a constructor argument) when a QoS 1/2 publish gets its
packet id and when the broker acknowledged that id; `InflightStore` is that storage, observed.
One store belongs to one connection: when the connection is lost the store is retired, hands
back what was not acknowledged (in send order), and ignores any acknowledgement that still
arrives from the dying connection, so a late PUBACK can never acknowledge another event.

Acknowledged events are only collected here; deleting their outbox rows (disk I/O) happens in
the drain task, never inside gmqtt's read loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gmqtt.storage import PersistentStorage

from bridge.mqtt.outbox import OutMessage


class InflightStore(PersistentStorage):  # type: ignore[misc]
    def __init__(self, on_ack: Callable[[], None]) -> None:
        super().__init__()
        self._on_ack = on_ack
        self._events: dict[int, OutMessage] = {}
        """Events published on this connection and not yet acknowledged, by packet id."""
        self._sending: OutMessage | None = None
        self._unacknowledged: set[int] = set()
        """Packet ids of every QoS 1/2 publish not yet acknowledged (state too)."""
        self.acked: list[OutMessage] = []
        """Events acknowledged since the drain last took them."""
        self.retired = False
        self.all_acknowledged = asyncio.Event()
        """Set while every publish of this connection (state too) is acknowledged."""
        self.all_acknowledged.set()

    @property
    def events_in_flight(self) -> int:
        return len(self._events)

    @property
    def unacknowledged(self) -> int:
        return len(self._unacknowledged)

    def sending(self, message: OutMessage | None) -> None:
        """The event the next publish is for (None for state and other non-durable ones)."""
        self._sending = message

    # -- gmqtt's side (PersistentStorage) ----------------------------------------------

    def push_message(self, mid: int, raw_package: bytes) -> None:
        """A publish got packet id `mid` (also called when a QoS 2 PUBLISH is swapped for
        its PUBREL: no new message then)."""
        self._unacknowledged.add(mid)
        self.all_acknowledged.clear()
        super().push_message(mid, raw_package)
        if self._sending is not None:
            self._events[mid] = self._sending
            self._sending = None

    def remove_message_by_mid(self, mid: int) -> None:
        """The broker acknowledged `mid` (PUBACK for QoS 1, PUBCOMP for QoS 2)."""
        super().remove_message_by_mid(mid)
        if mid not in self._unacknowledged or self.retired:
            return
        self._unacknowledged.discard(mid)
        if not self._unacknowledged:
            self.all_acknowledged.set()
        message = self._events.pop(mid, None)
        if message is not None:
            self.acked.append(message)
            self._on_ack()

    # -- the link's side ---------------------------------------------------------------

    def take_acked(self) -> list[OutMessage]:
        acked, self.acked = self.acked, []
        return acked

    def retire(self) -> list[OutMessage]:
        """The connection is gone: the events it did not get acknowledged, in send order.
        Acknowledgements that arrive later are ignored (the events go out again)."""
        self.retired = True
        unacked = list(self._events.values())
        self._events.clear()
        return unacked
