"""What the retry button would start: the most recent failed task that has a task id, may be
started and is not started already (`TaskRecord.started_at`), and the payload of
`<base>/site/retry` that says so. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.core.bounded import bounded
from bridge.core.state import BridgeState, TaskRecord
from bridge.core.times import iso_time


def retry_target(state: BridgeState, allowed: Callable[[str], bool]) -> TaskRecord | None:
    """The newest of `state.retryable` not started since it failed whose task id `allowed`
    takes, None when there is none."""
    for record in reversed(state.retryable.values()):
        task_id = record.event.task_id
        if task_id and record.started_at is None and allowed(task_id):
            return record
    return None


def retry_payload(record: TaskRecord | None) -> dict[str, Any]:
    """`<base>/site/retry`: the task the button would start (`task_id` null: none, and the
    button is unavailable)."""
    if record is None:
        return {"task_id": None, "task_name": None, "server": None, "failed_at": None}
    event = record.event
    return bounded(
        {
            "task_id": event.task_id,
            "task_name": event.task_name,
            "server": event.server,
            "failed_at": iso_time(record.received_at),
        }
    )
