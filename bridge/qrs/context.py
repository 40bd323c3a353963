"""A failed or aborted reload's context from QRS (issue 26): the task (name, tags, custom
properties), its app (owner, stream, published, tags, custom properties), the execution that
failed (status, times, node, QRS's messages) and the script log's last lines.

Off the event path and bounded: one context per execution (asked twice, the same future); the
tasks' and apps' metadata cached (`cache_ttl`, `cache_size`, least recently used first out,
one request per task or app however many ask at once); at most `max_requests` QRS requests in
flight and `MAX_PENDING` contexts waiting, past which a context is `unavailable` (`busy`) at
once; a task's execution and log fetched at most once per `min_interval` (a storm of its
failures is one fetch, the other contexts `folded` into it); and after QRS could not be
reached, `unavailable` at once for `retry_after` rather than a queue of timeouts. Every
request goes through `bridge.qrs.client.QrsClient`: the certificates, xrfkey and user of
`task/start`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import structlog

from bridge.config import TaskContextConfig
from bridge.core.reloads import canonical_id
from bridge.core.stats import Stats
from bridge.core.task_context import Failure, failure_ids, unavailable
from bridge.qrs.client import QrsError
from bridge.qrs.reasons import Reason
from bridge.qrs.shapes import app_facts, execution_facts, log_tail, reference, task_facts
from bridge.runtime.logs import RateLimiter

log = structlog.get_logger("qlik2mqtt.qrs")

MAX_PENDING = 100
"""Contexts fetching or waiting for a request slot; past this a new one is `busy`."""
REMEMBERED = 2000
"""Contexts kept by execution (a failure asked for again gets the same one)."""
JSON_MAX_BYTES = 1 << 20
"""The largest JSON answer read (a task, an app, a list of execution results)."""
REFERENCE_MAX_BYTES = 4096
"""A script log's download reference (a GUID, as JSON): its answer's last bytes at most."""
LOG_READ_FACTOR = 2
"""A script log's tail read: this many times `script_log_bytes` (the lines are cut after)."""
DOWN = frozenset(
    {
        Reason.UNREACHABLE,
        Reason.TIMEOUT,
        Reason.CERTIFICATE_REFUSED,
        Reason.TLS_ERROR,
        Reason.SERVER_NOT_TRUSTED,
    }
)
"""Failures that say QRS cannot be used now (not: this one thing is missing)."""
LOG_METHODS = ("scriptlogfile", "scriptlog")
"""The script log's endpoints: Qlik Sense from May 2025 (`…/scriptlogfile?executionResultId=`),
and the releases before (`…/scriptlog?fileReferenceId=`, deprecated since)."""


T = TypeVar("T")


class Source(Protocol):
    """What contexts need of QRS (`bridge.qrs.client.QrsClient` is one)."""

    async def get(self, path: str, params: dict[str, str], max_bytes: int) -> bytes: ...

    async def get_json(self, path: str, params: dict[str, str], max_bytes: int) -> object: ...

    async def aclose(self) -> None: ...


class UnavailableError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cache:
    """Values by key for `ttl` seconds, at most `size` (least recently used out first)."""

    def __init__(self, ttl: float, size: int, monotonic: Callable[[], float]) -> None:
        self._ttl, self._size, self._monotonic = ttl, size, monotonic
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """The cached value, or `load()`'s (one load per key at a time: the others wait for it).
        Raises what `load` raises."""
        now = self._monotonic()
        item = self._items.get(key)
        if item is not None and item[0] > now:
            self._items.move_to_end(key)
            return item[1]
        waiting = self._loading.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        future.set_result(value)
        self._items[key] = (self._monotonic() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


class TaskContexts:
    """Fetches failures' contexts; `context_for` never waits and never raises."""

    def __init__(
        self,
        settings: TaskContextConfig,
        client: Source,
        stats: Stats,
        monotonic: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._client = client
        self._stats = stats
        self._monotonic = monotonic
        self._slots = asyncio.Semaphore(settings.max_requests)
        self._tasks = Cache(settings.cache_ttl, settings.cache_size, monotonic)
        self._apps = Cache(settings.cache_ttl, settings.cache_size, monotonic)
        self._contexts: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        self._last_fetch: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        """Task id → when its execution and log were last fetched, and for which execution."""
        self._running: set[asyncio.Task[None]] = set()
        """Contexts fetching an execution and its log (at most MAX_PENDING)."""
        self._following: set[asyncio.Task[None]] = set()
        """Contexts folded into another's fetch: metadata only, from the cache."""
        self._down_until = 0.0
        self._down_reason = ""
        self._log_method: str | None = None
        """The script-log endpoint that answered last (tried first next time)."""
        self._log_limit = RateLimiter(60.0, monotonic)

    def context_for(self, failure: Failure) -> asyncio.Future[dict[str, Any]]:
        """The context of `failure`'s execution: fetching starts now, once per execution."""
        key = failure.key
        known = self._contexts.get(key)
        if known is not None:
            return known
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._contexts[key] = future
        while len(self._contexts) > REMEMBERED:
            self._contexts.popitem(last=False)
        folded_into = self._folded_into(failure)
        running = self._running if folded_into is None else self._following
        if len(running) >= (MAX_PENDING if folded_into is None else REMEMBERED):
            self._settle(future, unavailable(failure, "busy"))
            return future
        if folded_into is None and failure.task_id:
            self._remember_fetch(canonical_id(failure.task_id), failure.execution_id)
        task = asyncio.create_task(self._run(failure, future, folded_into), name="task-context")
        running.add(task)
        task.add_done_callback(running.discard)
        return future

    def _folded_into(self, failure: Failure) -> str | None:
        """The execution this failure's context is folded into: its task's execution and log
        were fetched (or are being fetched) within `min_interval`. None: fetch them."""
        if not failure.task_id:
            return None
        last = self._last_fetch.get(canonical_id(failure.task_id))
        if last is None or self._monotonic() - last[0] >= self._settings.min_interval:
            return None
        return last[1] or "unknown"

    def _remember_fetch(self, task_id: str, execution_id: str | None) -> None:
        self._last_fetch[task_id] = (self._monotonic(), execution_id)
        self._last_fetch.move_to_end(task_id)
        while len(self._last_fetch) > self._settings.cache_size:
            self._last_fetch.popitem(last=False)

    def known(self, failure: Failure) -> dict[str, Any] | None:
        """The context, if it has arrived."""
        future = self._contexts.get(failure.key)
        if future is None or not future.done() or future.cancelled():
            return None
        return future.result()

    async def aclose(self) -> None:
        tasks = [*self._running, *self._following]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    async def _run(
        self, failure: Failure, future: asyncio.Future[dict[str, Any]], folded_into: str | None
    ) -> None:
        try:
            context = await self._fetch(failure, folded_into)
        except UnavailableError as exc:
            context = unavailable(failure, exc.reason)
        except QrsError as exc:
            context = unavailable(failure, exc.reason.value)
            self._warn(exc.reason.counter, "task context unavailable", failure, exc)
        except asyncio.CancelledError:
            self._settle(future, unavailable(failure, "stopped"))
            raise
        except Exception:  # a fault here costs this context only
            log.exception("task context: fault", task_id=failure.task_id)
            self._stats.extension_errors["task_context.fetch"] += 1
            context = unavailable(failure, "fault")
        self._settle(future, context)

    def _settle(self, future: asyncio.Future[dict[str, Any]], context: dict[str, Any]) -> None:
        status = str(context["status"])
        self._stats.task_contexts[status] += 1
        if status == "unavailable":
            reason = str(context["reason"]).lower().replace(" ", "_")
            self._stats.task_context_unavailable[reason] += 1
        if not future.done():
            future.set_result(context)

    async def _fetch(self, failure: Failure, folded_into: str | None) -> dict[str, Any]:
        if not failure.task_id:
            raise UnavailableError("no task id")
        self._check_up()
        task_id = canonical_id(failure.task_id)  # `{GUID}` and `guid` are one task, one URL
        task = await self._tasks.get(task_id, lambda: self._task(task_id))
        missing: dict[str, str] = {}
        app: dict[str, Any] | None = None
        app_id = task["app_id"] or failure.app_id
        if app_id:
            try:
                app = await self._apps.get(canonical_id(app_id), lambda: self._app(app_id))
            except QrsError as exc:
                self._partial(exc, "app", missing)
        context = {
            **failure_ids(failure),
            "status": "complete",
            "reason": None,
            "task": {key: task[key] for key in ("name", "tags", "custom_properties")},
            "app": app,
            "execution": None,
            "script_log": None,
            "folded_into": None,
        }
        if folded_into is not None:
            context.update(status="folded", reason="a failure of this task was fetched lately")
            context["folded_into"] = folded_into
            return context
        execution = None
        try:
            execution = await self._execution(failure, task_id)
        except QrsError as exc:
            self._partial(exc, "execution", missing)
        if execution is None:
            # As Butler reads it: the task's last execution result, fetched now (the cached
            # task may be older than this failure).
            try:
                fresh = await self._task(task_id)
            except QrsError as exc:
                self._partial(exc, "execution", missing)
            else:
                execution = fresh["last_execution"]
                if execution is not None:
                    missing.pop("execution", None)
        if execution is None and "execution" not in missing:
            missing["execution"] = "not found"
        if execution is not None:
            try:
                context["script_log"] = await self._script_log(task, task_id, execution)
            except QrsError as exc:
                self._partial(exc, "script_log", missing)
            context["execution"] = {
                key: value
                for key, value in execution.items()
                if key not in ("file_reference_id", "script_log_available")
            }
        if missing:
            reason = "; ".join(f"{part}: {why}" for part, why in missing.items())
            context.update(status="partial", reason=reason)
        return context

    def _partial(self, exc: QrsError, part: str, missing: dict[str, str]) -> None:
        """A part QRS did not give: QRS down ends the whole context; else noted, the rest
        goes on."""
        if exc.reason in DOWN:
            raise exc
        missing[part] = exc.reason.value

    def _check_up(self) -> None:
        if self._monotonic() < self._down_until:
            raise UnavailableError(self._down_reason)

    async def _task(self, task_id: str) -> dict[str, Any]:
        return task_facts(await self._json(f"/qrs/reloadtask/{quote(task_id, safe='')}", {}))

    async def _app(self, app_id: str) -> dict[str, Any]:
        return app_facts(await self._json(f"/qrs/app/{quote(app_id, safe='')}", {}))

    async def _execution(self, failure: Failure, task_id: str) -> dict[str, Any] | None:
        """The execution result: by the event's execution id, else the task's latest."""
        if failure.execution_id:
            query = {"filter": f"executionID eq {failure.execution_id}"}
        else:
            query = {"filter": f"taskID eq {task_id}", "orderby": "startTime desc"}
        return execution_facts(await self._json("/qrs/executionresult", query))

    async def _script_log(
        self, task: dict[str, Any], task_id: str, execution: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The log's last lines, through the endpoint that answered last, else the other."""
        settings = self._settings
        if settings.script_log_lines == 0:
            return None
        if execution["script_log_available"] is False:
            return {"lines": [], "truncated": False, "source": None, "reason": "no script log"}
        methods = sorted(LOG_METHODS, key=lambda method: method != self._log_method)
        failed: QrsError | None = None
        for method in methods:
            try:
                body = await self._log_body(method, task, task_id, execution)
            except QrsError as exc:
                if exc.reason in DOWN:
                    raise
                failed = exc
                continue
            if body is None:
                continue
            self._log_method = method
            lines, truncated = log_tail(body, settings.script_log_lines, settings.script_log_bytes)
            return {"lines": lines, "truncated": truncated, "source": method, "reason": None}
        if failed is not None:
            raise failed
        return {"lines": [], "truncated": False, "source": None, "reason": "no script log"}

    async def _log_body(
        self, method: str, task: dict[str, Any], task_id: str, execution: dict[str, Any]
    ) -> bytes | None:
        """One endpoint: the reference, then the download. None: this execution has no
        reference for it."""
        path = f"/qrs/reloadtask/{quote(task_id, safe='')}/{method}"
        if method == "scriptlogfile":
            if not execution["id"]:
                return None
            query = {"executionResultId": execution["id"]}
            file_name = f"{task['name'] or 'scriptlog'}.log"
        else:
            if not execution["file_reference_id"]:
                return None
            query = {"fileReferenceId": execution["file_reference_id"]}
            file_name = "scriptlog.txt"
        ref = reference(await self._request(self._client.get(path, query, REFERENCE_MAX_BYTES)))
        if ref is None:
            return None
        download = f"/qrs/download/reloadtask/{quote(ref, safe='')}/{quote(file_name, safe='')}"
        return await self._request(
            self._client.get(download, {}, self._settings.script_log_bytes * LOG_READ_FACTOR)
        )

    async def _json(self, path: str, params: dict[str, str]) -> object:
        return await self._request(self._client.get_json(path, params, JSON_MAX_BYTES))

    async def _request(self, call: Awaitable[T]) -> T:
        """One request in a slot; QRS found unreachable: no more tries for `retry_after`."""
        async with self._slots:
            try:
                self._check_up()
            except UnavailableError:
                if asyncio.iscoroutine(call):
                    call.close()
                raise
            self._stats.qrs_requests += 1
            try:
                return await call
            except QrsError as exc:
                if exc.reason in DOWN:
                    self._down_until = self._monotonic() + self._settings.retry_after
                    self._down_reason = exc.reason.value
                raise

    def _warn(self, key: str, event: str, failure: Failure, exc: QrsError) -> None:
        held_back = self._log_limit.allow(key)
        if held_back is not None:
            log.warning(
                event,
                reason=exc.reason.value,
                detail=exc.detail or None,
                task_id=failure.task_id,
                held_back=held_back or None,
            )
