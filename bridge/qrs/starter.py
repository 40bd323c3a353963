"""Whether a task may be started now, and the start itself: the allow-list
(`qrs.allowed_tasks`), the rate limit (`qrs.max_starts_per_minute`, all tasks together) and
the counters in `bridge/stats` (`task_starts`, `task_start_errors` by reason)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote

import structlog

from bridge.config import QrsConfig
from bridge.core.stats import Stats
from bridge.qrs.allow import AllowList, TaskKey
from bridge.qrs.client import QrsError
from bridge.qrs.reasons import Reason
from bridge.runtime.logs import RateLimiter

log = structlog.get_logger("qlik2mqtt.qrs")

WINDOW = 60.0
"""Seconds `max_starts_per_minute` counts over."""


CONFIRMED_FOR = 300.0
"""Seconds a task QRS confirmed (its id and name) is not asked about again."""
CONFIRMED_MAX = 256
TASK_BYTES = 256 * 1024
"""The most of a ReloadTask's JSON read to confirm it (one is a few KB)."""


class Client(Protocol):
    """What starting needs of QRS (`bridge.qrs.client.QrsClient` is one)."""

    async def start(self, key: TaskKey, value: str) -> None: ...

    async def get_json(self, path: str, params: dict[str, str], max_bytes: int) -> object: ...

    async def aclose(self) -> None: ...


class TaskStarter:
    def __init__(
        self, qrs: QrsConfig, client: Client, stats: Stats, monotonic: Callable[[], float]
    ) -> None:
        self._client = client
        self._stats = stats
        self._monotonic = monotonic
        self._limit = qrs.max_starts_per_minute
        self._allow = AllowList(qrs.allowed_tasks)
        self._recent: deque[float] = deque()
        self._log_limit = RateLimiter(WINDOW, monotonic)
        self._confirmed: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """Task id → the name QRS gave it, and when."""

    def allowed(self, key: TaskKey, value: str) -> bool:
        return self._allow.allowed(key, value)

    async def start(self, key: TaskKey, value: str) -> Reason | None:
        """Start the task; None when QRS took the request, else why not (counted, logged)."""
        if not self.allowed(key, value):
            return self._refused(Reason.NOT_ALLOWED, key, value)
        now = self._monotonic()
        while self._recent and now - self._recent[0] >= WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self._limit:
            return self._refused(Reason.RATE_LIMITED, key, value)
        self._recent.append(now)
        try:
            await self._client.start(key, value)
        except QrsError as exc:
            return self._refused(exc.reason, key, value, exc.detail)
        except Exception as exc:  # a failure the client does not know: still an answer
            log.exception("QRS request failed unexpectedly", **{f"task_{key}": value})
            return self._refused(Reason.QRS_ERROR, key, value, type(exc).__name__)
        self._stats.task_starts += 1
        log.info("task started", **{f"task_{key}": value})
        return None

    async def confirm(self, task_id: str, name: str | None) -> Reason | None:
        """Whether QRS knows a reload task with this id and (when the failure named it) this
        name: what the retry button starts comes from a datagram, which anyone who can send
        UDP could have written. None when it does; else why not (counted, logged). One `GET`
        per task, cached for CONFIRMED_FOR."""
        now = self._monotonic()
        known = self._confirmed.get(task_id)
        if known is not None and name is not None and name.strip() != known[0].strip():
            known = None  # renamed since it was cached: QRS is asked again before refusing
        if known is None or now - known[1] >= CONFIRMED_FOR:
            try:
                task = await self._client.get_json(
                    f"/qrs/reloadtask/{quote(task_id, safe='')}", {}, TASK_BYTES
                )
            except QrsError as exc:
                return self._refused(exc.reason, "id", task_id, f"confirming it: {exc.detail}")
            qrs_name = task.get("name") if isinstance(task, dict) else None
            if not isinstance(qrs_name, str):
                return self._refused(Reason.QRS_ERROR, "id", task_id, "a task without a name")
            known = self._confirmed[task_id] = (qrs_name, now)
            self._confirmed.move_to_end(task_id)
            while len(self._confirmed) > CONFIRMED_MAX:
                self._confirmed.popitem(last=False)
        if name is not None and name.strip() != known[0].strip():
            detail = f"QRS names it {known[0]!r}, the failure {name!r}"
            return self._refused(Reason.NOT_THE_FAILED_TASK, "id", task_id, detail)
        return None

    async def aclose(self) -> None:
        await self._client.aclose()

    def _refused(self, reason: Reason, key: TaskKey, value: str, detail: str = "") -> Reason:
        self._stats.task_start_errors[reason.counter] += 1
        held_back = self._log_limit.allow(reason.counter)
        if held_back is not None:
            log.warning(
                "task not started",
                reason=reason.value,
                detail=detail or None,
                held_back=held_back or None,
                **{f"task_{key}": value},
            )
        return reason
