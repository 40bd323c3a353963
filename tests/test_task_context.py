"""A failure's context end to end (issue 26): a failure datagram by UDP, the failure event on
the broker (a real mosquitto) at once, then `event/task_context` from a local QRS (tests/
qrs_server.py, the Repository API's shapes) and the retained last failed task with it; and,
QRS slow or down, the event on time and the context `unavailable` with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import Mosquitto
from tests.qrs_server import QrsServer, qrs_settings
from tests.qrs_site import SALES_EXECUTION, SALES_TASK, furnish
from tests.task_datagrams import task_datagram
from tests.test_task_start import bridge_and_client

EVENT = "qlik2mqtt/qs1/event/task"
CONTEXT = "qlik2mqtt/qs1/event/task_context"
SITE = "qlik2mqtt/site"
TOPICS = (EVENT, CONTEXT, SITE)


def kept(site: dict[str, Any]) -> dict[str, Any] | None:
    last = site.get("last_failed_task") or {}
    context: dict[str, Any] | None = last.get("context")
    return context


async def test_the_context_follows_the_failure_and_joins_the_last_failed_task(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    furnish(qrs_server)
    qrs = qrs_settings(qrs_server)
    async with bridge_and_client(tmp_path, mosquitto, qrs, TOPICS) as (bridge, client):
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        event = await client.wait_json(EVENT, lambda p: True)
        context = await client.wait_json(CONTEXT, lambda p: True)
        site = await client.wait_json(SITE, lambda p: kept(p) is not None)
    assert event["execution_id"] == SALES_EXECUTION
    assert "context" not in event  # the event is as it always was
    event_at = next(i for i, m in enumerate(client.messages) if m.topic == EVENT)
    context_at = next(i for i, m in enumerate(client.messages) if m.topic == CONTEXT)
    assert event_at < context_at
    assert (context["status"], context["task_id"], context["execution_id"]) == (
        "complete",
        SALES_TASK,
        SALES_EXECUTION,
    )
    assert context["event_type"] == "task_failed"
    assert context["task"]["tags"] == ["Production"]
    assert context["task"]["custom_properties"] == {"AlertTeam": ["Sales"]}
    assert context["app"]["owner"]["name"] == "Anna Berg"
    assert context["app"]["stream"] == "Sales"
    assert context["script_log"]["lines"][-1].endswith("Error: Field 'Amount' not found (Sales)")
    summary = kept(site)
    assert summary is not None
    assert summary["app_owner"] == "Anna Berg (CORP\\anna)"
    assert (summary["stream"], summary["task_tags"]) == ("Sales", "Production")
    assert summary["custom_properties"] == "AlertTeam=Sales"
    assert summary["log_tail"].endswith("Error: Field 'Amount' not found (Sales)")
    assert len(qrs_server.context_requests) == 5


async def test_qrs_slow_the_event_is_on_time_and_the_context_unavailable(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    furnish(qrs_server).delay = 10.0
    # QRS's timeout past the first event's wait for Home Assistant (up to 1 s for a server not
    # seen before): with both at 1 s a loaded machine published the context first (CI).
    qrs = qrs_settings(qrs_server, timeout=3)
    async with bridge_and_client(tmp_path, mosquitto, qrs, TOPICS) as (bridge, client):
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        await client.wait_json(EVENT, lambda p: True, timeout=2.5)
        assert client.on(CONTEXT) == []  # the event did not wait for QRS
        context = await client.wait_json(CONTEXT, lambda p: True)
        stats = await client.wait_json(
            "qlik2mqtt/bridge/stats", lambda p: p.get("task_contexts", {}).get("unavailable")
        )
    assert (context["status"], context["reason"]) == ("unavailable", "timeout")
    assert stats["task_context_unavailable"] == {"timeout": 1}
