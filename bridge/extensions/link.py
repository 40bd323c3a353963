"""What an extension may do with the broker: the `Link` interface.

Extensions depend on this, not on `bridge.mqtt.MqttLink`, so an extension can be tested with a
small in-memory link and the MQTT side can change without touching them. `MqttLink` is the
link the bridge runs with.
"""

from __future__ import annotations

from typing import Protocol

from bridge.mqtt.outbox import OutMessage

__all__ = ["Link", "OutMessage"]


class Link(Protocol):
    @property
    def connected(self) -> bool:
        """Whether the broker connection is up (retained state is published only then)."""
        ...

    @property
    def outbox_depth(self) -> int:
        """Events waiting for the broker (for `bridge/stats`)."""
        ...

    def enqueue(self, message: OutMessage) -> None:
        """Queue an event: delivered in order, kept while the broker is away."""
        ...

    def publish_now(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> bool:
        """Send at once if connected (state, discovery, answers); False when not connected.
        An empty retained payload clears the topic."""
        ...
