"""Counters of what the bridge received, refused, published and dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bridge.core.events import RejectReason


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
    outbox_disk_errors: int = 0
    """Outbox writes, reads or deletes the disk refused (events waited in memory)."""
    publish_refused: int = 0
    """State publishes held back because the broker left too many unacknowledged."""
    state_save_errors: int = 0
    extension_errors: Counter[str] = field(default_factory=Counter)
    """Exceptions raised in an extension's hook (or an MQTT callback), by `name.hook`."""
    task_restarts: Counter[str] = field(default_factory=Counter)
    """Background tasks that failed or ended and were restarted, by name."""
    task_starts: int = 0
    """Tasks QRS took a start request for (`task/start`)."""
    task_start_errors: Counter[str] = field(default_factory=Counter)
    """Start requests refused or failed, by reason (`not_allowed`, `rate_limited`, …)."""
    qrs_requests: int = 0
    """Requests sent to QRS for failures' contexts (`tasks.context`)."""
    task_contexts: Counter[str] = field(default_factory=Counter)
    """Failures' contexts by outcome: `complete`, `partial`, `folded`, `unavailable`."""
    task_context_unavailable: Counter[str] = field(default_factory=Counter)
    """Contexts without QRS's answer, by reason (`timeout`, `qrs_unreachable`, `busy`, …)."""
    problems: list[str] = field(default_factory=list)
    """What is wrong now, as the health report last found it (bridge.ops.health.Facts)."""

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
            "outbox_disk_errors": self.outbox_disk_errors,
            "publish_refused": self.publish_refused,
            "state_save_errors": self.state_save_errors,
            "extension_errors": dict(self.extension_errors),
            "extension_errors_total": sum(self.extension_errors.values()),
            "task_restarts": dict(self.task_restarts),
            "task_starts": self.task_starts,
            "task_start_errors": dict(self.task_start_errors),
            "qrs_requests": self.qrs_requests,
            "task_contexts": dict(self.task_contexts),
            "task_context_unavailable": dict(self.task_context_unavailable),
            "problems": self.problems,
        }
