"""Scheduler datagrams (Butler's tagged layout) for one task's outcome, with its ids."""

from __future__ import annotations

import time
from typing import Literal

Outcome = Literal["failed", "succeeded", "aborted"]
_LINES = {
    "failed": ("/scheduler-task-failed/", "ERROR", "Task finished with state FinishedFail"),
    "succeeded": ("/scheduler-task-success/", "INFO", "Task finished with state FinishedSuccess"),
    "aborted": ("/scheduler-task-aborted/", "INFO", "Execution State Change to Aborting"),
}


def task_datagram(
    outcome: Outcome, name: str, task_id: str, execution: str, server: str = "QS1"
) -> bytes:
    tag, level, message = _LINES[outcome]
    date = time.strftime("%Y-%m-%d %H:%M:%S,000")
    app_id = "9f1d2b20-0000-4000-8000-000000000001"
    fields = [tag, server, name, "Sales", "CORP\\svc", task_id, app_id, date, level, execution]
    return ";".join([*fields, message]).encode()
