"""Which tasks may be started (`qrs.allowed_tasks`). Pure: the starter and the retry button's
availability ask the same list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bridge.core.task_ids import id_key, is_task_id

TaskKey = Literal["id", "name"]
"""How a request names the task: by its id (a GUID) or by its name."""
ANY_TASK = "*"


class AllowList:
    def __init__(self, entries: Iterable[str]) -> None:
        entries = set(entries)
        self._any = ANY_TASK in entries
        self._ids = {id_key(task) for task in entries if is_task_id(task)}
        self._names = entries - {ANY_TASK}

    def allowed(self, key: TaskKey, value: str) -> bool:
        """An entry allows a request that names the task as the entry does: an id entry a
        start by that id, a name entry a start by that name (no lookup in QRS)."""
        if self._any:
            return True
        if key == "id":
            return is_task_id(value) and id_key(value) in self._ids
        return value in self._names
