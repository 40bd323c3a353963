"""Counters of what the bridge received, refused, published and dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bridge.core.bounded import clip_text
from bridge.core.events import RejectReason

UNTRACKED = ("servers", "sessions", "tasks")
"""The caps of `limits:` whose untracked events are counted (bridge.core.state.Cap)."""
MAX_QIX_SERVERS = 100
"""Host names the QIX performance counts keep apart (a stray sender cannot grow them)."""
QIX_HOST_BYTES = 64
"""The start of a host name the QIX performance counts keep (bridge.core.bounded): 100 hosts
stay a few KB of the retained `bridge/stats` whatever the datagrams name."""
OTHER_SERVERS = "(other)"


@dataclass(slots=True)
class Stats:
    datagrams: int = 0
    events: int = 0
    duplicates: int = 0
    uncertain_fields: int = 0
    qix_performance: int = 0
    """QIX performance lines received (`/qseow-qix-perf/`), published or not."""
    qix_performance_servers: Counter[str] = field(default_factory=Counter)
    """The same by host name (at most `MAX_QIX_SERVERS` names; the rest under `(other)`)."""
    qix_performance_published: int = 0
    qix_performance_filtered: int = 0
    """Left out by `log_events.qix_performance`'s filters (app ids, minimum process time)."""
    """Log events published with `fields_uncertain`: a tail that could not be split."""
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
    untracked: Counter[str] = field(default_factory=Counter)
    """Events past a cap of `limits:`, published but not tracked, by cap (`servers`,
    `sessions`, `tasks`: bridge.core.state.Cap)."""
    commands_retained_ignored: int = 0
    """Commands that arrived with the retain flag: never run (they would run again at every
    reconnect)."""
    availability_reasserted: int = 0
    """Times another writer replaced this bridge's retained `online` and it said it again."""
    qrs_requests: int = 0
    """Requests sent to QRS for failures' contexts (`tasks.context`)."""
    task_contexts: Counter[str] = field(default_factory=Counter)
    """Failures' contexts by outcome: `complete`, `partial`, `folded`, `unavailable`."""
    task_context_unavailable: Counter[str] = field(default_factory=Counter)
    """Contexts without QRS's answer, by reason (`timeout`, `qrs_unreachable`, `busy`, …)."""
    problems: list[str] = field(default_factory=list)
    """What is wrong now, as the health report last found it (bridge.ops.health.Facts)."""

    def qix_received(self, host: str) -> None:
        self.qix_performance += 1
        servers = self.qix_performance_servers
        if host not in servers:  # a known host (nearly every line) is kept clipped already
            host = clip_text(host, QIX_HOST_BYTES)
        if host in servers or len(servers) < MAX_QIX_SERVERS:
            servers[host] += 1
        else:
            servers[OTHER_SERVERS] += 1

    def reject(self, reason: RejectReason) -> None:
        self.rejected[reason.value] += 1

    def as_payload(self, outbox_depth: int) -> dict[str, Any]:
        return {
            "datagrams": self.datagrams,
            "events": self.events,
            "duplicates": self.duplicates,
            "uncertain_fields": self.uncertain_fields,
            "qix_performance": {
                "received": self.qix_performance,
                "published": self.qix_performance_published,
                "filtered": self.qix_performance_filtered,
                "servers": dict(self.qix_performance_servers),
            },
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
            **{f"untracked_{cap}": self.untracked[cap] for cap in UNTRACKED},
            "commands_retained_ignored": self.commands_retained_ignored,
            "availability_reasserted": self.availability_reasserted,
            "qrs_requests": self.qrs_requests,
            "task_contexts": dict(self.task_contexts),
            "task_context_unavailable": dict(self.task_context_unavailable),
            "problems": self.problems,
        }
