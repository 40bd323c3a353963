"""Counters of what the bridge received, refused, published and dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bridge.events import RejectReason


@dataclass(slots=True)
class Stats:
    datagrams: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    events_published: int = 0
    """Events the broker acknowledged (QoS >= 1) or that were sent (QoS 0)."""
    outbox_dropped: int = 0
    state_publishes: int = 0
    mqtt_connects: int = 0
    slack_sent: int = 0
    slack_failed: int = 0
    slack_dropped: int = 0

    def reject(self, reason: RejectReason) -> None:
        self.rejected[reason.value] += 1

    def as_payload(self, outbox_depth: int) -> dict[str, Any]:
        return {
            "datagrams": self.datagrams,
            "events": self.events,
            "duplicates": self.duplicates,
            "rejected": {reason.value: self.rejected[reason.value] for reason in RejectReason},
            "rejected_total": sum(self.rejected.values()),
            "events_published": self.events_published,
            "outbox_depth": outbox_depth,
            "outbox_dropped": self.outbox_dropped,
            "state_publishes": self.state_publishes,
            "mqtt_connects": self.mqtt_connects,
            "slack_sent": self.slack_sent,
            "slack_failed": self.slack_failed,
            "slack_dropped": self.slack_dropped,
        }
