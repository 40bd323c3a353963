"""Failures' contexts (bridge/qrs/context.py) against a local HTTPS QRS with Qlik's
certificates and the Repository API's JSON shapes (tests/qrs_server.py, tests/qrs_site.py):
what a context holds, through both script-log endpoints, what it costs QRS, and what it says
when QRS is down, slow or refusing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.config import QrsConfig, TaskContextConfig
from bridge.core.stats import Stats
from bridge.core.task_context import Failure
from bridge.qrs.client import QrsClient
from bridge.qrs.context import MAX_PENDING, TaskContexts
from bridge.qrs.tls import client_context
from tests.certs import Certificates, make_certificates
from tests.helpers import free_port
from tests.qrs_server import QrsServer, qrs_settings
from tests.qrs_site import (
    FINANCE_EXECUTION,
    FINANCE_TASK,
    LOG_LINES,
    SALES_APP,
    SALES_EXECUTION,
    SALES_TASK,
    furnish,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("qrs-certs"))


@pytest.fixture
def server(certs: Certificates) -> Iterator[QrsServer]:
    running = furnish(QrsServer(certs)).start()
    yield running
    running.stop()


def contexts_for(
    server: QrsServer, stats: Stats, qrs: dict[str, Any] | None = None, **settings: Any
) -> TaskContexts:
    config = QrsConfig.model_validate(qrs_settings(server, **(qrs or {})))
    client = QrsClient(config, client_context(config))
    return TaskContexts(TaskContextConfig.model_validate(settings), client, stats, time.monotonic)


async def one_context(server: QrsServer, stats: Stats | None = None) -> dict[str, Any]:
    """The context of one Sales failure, from a `TaskContexts` made and closed for it."""
    contexts = contexts_for(server, stats or Stats())
    try:
        return await asyncio.wait_for(contexts.context_for(sales()), 10)
    finally:
        await contexts.aclose()


@pytest.fixture
async def contexts(server: QrsServer) -> AsyncIterator[tuple[TaskContexts, Stats]]:
    stats = Stats()
    running = contexts_for(server, stats)
    yield running, stats
    await running.aclose()


def sales(execution: str = SALES_EXECUTION) -> Failure:
    return Failure("QS1", "task_failed", SALES_TASK, SALES_APP, execution, "Reload Sales")


@pytest.mark.parametrize("endpoint", ["scriptlogfile", "scriptlog"])
async def test_a_failure_s_context_has_task_app_execution_and_log_tail(
    server: QrsServer, certs: Certificates, endpoint: str
) -> None:
    """Both Qlik Sense generations: a release with only the newer script-log endpoint, and
    one with only the older; the bridge falls back from one to the other."""
    server.log_endpoints = (endpoint,)
    stats = Stats()
    context = await one_context(server, stats)
    assert context["status"] == "complete", context
    assert context["task"] == {
        "name": "Reload Sales",
        "tags": ["Production"],
        "custom_properties": {"AlertTeam": ["Sales"]},
    }
    app = context["app"]
    assert (app["name"], app["stream"], app["published"], app["tags"]) == (
        "Sales",
        "Sales",
        True,
        ["Core"],
    )
    assert app["owner"] == {
        "name": "Anna Berg",
        "user_directory": "CORP",
        "user_id": "anna",
        "id": "user-anna",
    }
    execution = context["execution"]
    assert (execution["status"], execution["node"], execution["duration_ms"]) == (
        "FinishedFail",
        "qs-node-2",
        42000,
    )
    assert execution["details"][-1] == {
        "type": "error",
        "message": "The task failed",
        "at": "2026-12-06T10:00:42.000Z",
    }
    log = context["script_log"]
    assert log["source"] == endpoint
    assert len(log["lines"]) == 20
    assert log["truncated"]
    assert log["lines"][-1].endswith("Error: Field 'Amount' not found (Sales)")
    assert log["lines"][0].endswith(f"step {LOG_LINES - 20}")
    # Every request carried the start path's credentials: a fresh xrfkey, the same user.
    assert all(
        r.query["xrfkey"][0] == r.headers["x-qlik-xrfkey"]
        and r.headers["x-qlik-user"] == "UserDirectory=INTERNAL; UserId=sa_repository"
        for r in server.context_requests
    )
    paths = [r.path for r in server.context_requests]
    assert paths[:3] == [
        f"/qrs/reloadtask/{SALES_TASK}",
        f"/qrs/app/{SALES_APP}",
        "/qrs/executionresult",
    ]
    assert server.context_requests[2].query["filter"] == [f"executionID eq {SALES_EXECUTION}"]
    assert paths[-1].startswith("/qrs/download/reloadtask/")
    assert stats.qrs_requests == len(server.context_requests)


async def test_the_endpoint_that_answered_is_tried_first_next_time(
    server: QrsServer, certs: Certificates
) -> None:
    server.log_endpoints = ("scriptlog",)
    stats = Stats()
    contexts = contexts_for(server, stats, min_interval=0)
    try:
        await contexts.context_for(sales())
        first = len(server.context_requests)
        server.context_requests.clear()
        await contexts.context_for(sales("33333333-0000-4000-8000-000000000000"))
    finally:
        await contexts.aclose()
    # The second: cached task and app, then the execution (unknown here), then the task's
    # last execution (none here either) and no log at all.
    assert first == 6  # task, app, execution, scriptlogfile (404), scriptlog, download
    assert [r.path for r in server.context_requests] == [
        "/qrs/executionresult",
        f"/qrs/reloadtask/{SALES_TASK}",
    ]


async def test_without_its_execution_result_the_task_s_last_execution_is_read(
    server: QrsServer,
) -> None:
    """As Butler reads it: `operational.lastExecutionResult` of the task, fetched again."""
    result = server.executions[SALES_EXECUTION]
    condensed = {k: v for k, v in result.items() if k not in ("taskID", "executionID", "appID")}
    server.reloadtasks[SALES_TASK]["operational"]["lastExecutionResult"] = condensed
    stats = Stats()
    contexts = contexts_for(server, stats)
    try:
        context = await contexts.context_for(sales("44444444-0000-4000-8000-000000000000"))
    finally:
        await contexts.aclose()
    assert context["status"] == "complete", context
    assert context["execution"]["id"] == "r-sales"
    assert context["script_log"]["lines"][-1].endswith("not found (Sales)")


async def test_one_context_per_execution_and_metadata_cached(
    contexts: tuple[TaskContexts, Stats], server: QrsServer
) -> None:
    running, stats = contexts
    first = running.context_for(sales())
    assert running.context_for(sales()) is first  # the same execution: the same context
    await first
    before = stats.qrs_requests
    finance = Failure("QS1", "task_failed", FINANCE_TASK, None, FINANCE_EXECUTION)
    context = await running.context_for(finance)
    assert context["task"]["custom_properties"] == {"AlertTeam": ["Finance", "Controlling"]}
    assert context["app"]["stream"] is None
    assert context["app"]["published"] is False
    assert stats.qrs_requests - before == 5  # a new task: its task, app, execution, log (2)
    assert stats.task_contexts == {"complete": 2}


async def test_a_failure_storm_is_a_bounded_number_of_requests(server: QrsServer) -> None:
    """1,000 failures of 20 tasks within a few seconds: each task's metadata once, its
    execution and log once per `min_interval`; the rest folded, every failure answered."""
    tasks = [f"{index:08x}-0000-4000-8000-000000000000" for index in range(20)]
    for index, task_id in enumerate(tasks):
        server.reloadtasks[task_id] = dict(server.reloadtasks[SALES_TASK], id=task_id)
        server.executions[f"e-{index}"] = dict(
            server.executions[SALES_EXECUTION], taskID=task_id, executionID=f"e-{index}"
        )
    stats = Stats()
    contexts = contexts_for(server, stats)
    started = time.monotonic()
    try:
        futures = []
        for number in range(1000):
            index = number % 20
            execution = f"e-{index}" if number < 20 else f"storm-{number}"
            failure = Failure("QS1", "task_failed", tasks[index], SALES_APP, execution)
            futures.append(contexts.context_for(failure))
            if number % 100 == 99:
                await asyncio.sleep(0)  # arriving over time, as datagrams do
        results = await asyncio.wait_for(asyncio.gather(*futures), 30)
    finally:
        await contexts.aclose()
    assert time.monotonic() - started < 30
    statuses = {result["status"] for result in results}
    assert statuses <= {"complete", "folded", "unavailable"}
    assert sum(result["status"] != "unavailable" for result in results) >= 900
    # 20 tasks + 1 app + 20 x (execution, log reference, download): 81.
    assert stats.qrs_requests <= 20 * 4 + 1, stats.qrs_requests
    assert len(server.context_requests) == stats.qrs_requests


async def test_past_the_pending_bound_a_context_is_busy_at_once(server: QrsServer) -> None:
    server.delay = 5.0
    stats = Stats()
    contexts = contexts_for(server, stats, qrs={"timeout": 2}, min_interval=0)
    try:
        futures = [
            contexts.context_for(sales(f"{number:08x}-0000-4000-8000-000000000000"))
            for number in range(MAX_PENDING + 5)
        ]
        busy = [future.result() for future in futures if future.done()]
    finally:
        await contexts.aclose()
    assert len(busy) == 5
    assert {context["reason"] for context in busy} == {"busy"}
    assert stats.task_context_unavailable["busy"] == 5


async def test_qrs_down_is_unavailable_at_once_then_not_tried_for_a_while(
    server: QrsServer,
) -> None:
    stats = Stats()
    contexts = contexts_for(server, stats, qrs={"port": free_port()})
    try:
        first = await asyncio.wait_for(contexts.context_for(sales()), 10)
        second = await asyncio.wait_for(contexts.context_for(sales("other")), 1)
    finally:
        await contexts.aclose()
    assert (first["status"], first["reason"]) == ("unavailable", "QRS unreachable")
    assert (second["status"], second["reason"]) == ("unavailable", "QRS unreachable")
    assert stats.qrs_requests == 1  # the second never tried: QRS is down for retry_after
    assert stats.task_context_unavailable["qrs_unreachable"] == 2


async def test_a_slow_qrs_gives_a_timeout_within_qrs_timeout(server: QrsServer) -> None:
    server.delay = 10.0
    stats = Stats()
    contexts = contexts_for(server, stats, qrs={"timeout": 0.5})
    started = time.monotonic()
    try:
        context = await asyncio.wait_for(contexts.context_for(sales()), 5)
    finally:
        await contexts.aclose()
    assert (context["status"], context["reason"]) == ("unavailable", "timeout")
    assert time.monotonic() - started < 3
    assert stats.task_context_unavailable["timeout"] == 1


async def test_a_refused_certificate_is_unavailable_with_its_reason(
    certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = make_certificates(tmp_path_factory.mktemp("other"))
    server = furnish(QrsServer(certs, client_ca=other.ca_file)).start()
    try:
        context = await one_context(server)
    finally:
        server.stop()
    assert (context["status"], context["reason"]) == ("unavailable", "certificate refused")


async def test_a_missing_part_makes_a_partial_context(
    contexts: tuple[TaskContexts, Stats], server: QrsServer
) -> None:
    del server.apps[SALES_APP]
    del server.script_logs["r-sales"]
    running, stats = contexts
    context = await running.context_for(sales())
    assert context["status"] == "partial"
    assert context["app"] is None
    assert context["task"]["name"] == "Reload Sales"
    assert context["execution"]["status"] == "FinishedFail"
    assert context["script_log"] is None
    assert context["reason"] == "app: not found; script_log: not found"
    assert stats.task_contexts == {"partial": 1}


async def test_without_a_task_id_no_request_is_made(
    contexts: tuple[TaskContexts, Stats], server: QrsServer
) -> None:
    running, _stats = contexts
    context = await running.context_for(Failure("QS1", "engine_reload_failed", None))
    assert (context["status"], context["reason"]) == ("unavailable", "no task id")
    assert server.context_requests == []
