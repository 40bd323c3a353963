"""Watched tasks (`tasks.watch`): the payload of `<base>/tasks/<slug>` and what a Start button
asks for. Pure."""

from __future__ import annotations

from typing import Any

from bridge.core.bounded import bounded
from bridge.core.events import TaskEventType
from bridge.core.state import TaskRecord
from bridge.core.times import iso_time

OUTCOMES = {
    TaskEventType.TASK_SUCCEEDED: "succeeded",
    TaskEventType.TASK_FAILED: "failed",
    TaskEventType.TASK_ABORTED: "aborted",
}


def watched_payload(entry: str, record: TaskRecord | None) -> dict[str, Any]:
    """`<base>/tasks/<slug>`: the entry as configured, its last outcome (`null`: none seen
    yet) and the task event it came from."""
    if record is None:
        return {
            "task": entry,
            "outcome": None,
            "last_outcome_at": None,
            "task_name": None,
            "task_id": None,
            "server": None,
        }
    event = record.event
    return {
        "task": entry,
        "outcome": OUTCOMES.get(event.event_type),
        "last_outcome_at": iso_time(record.received_at),
        **bounded({"task_name": event.task_name, "task_id": event.task_id, "server": event.server}),
    }
