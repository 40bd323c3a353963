"""Slack with a failure's QRS context (issue 26): a local Slack (tests/slack_server.py), a local
QRS with Qlik's certificates (tests/qrs_server.py), a real mosquitto. The card shows the app's
owner, stream, tags, custom properties and the log tail; QRS slow or down, the message posts
after `slack.context_wait` without them, saying why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.slack.messages import task_message
from tests.bridge_runner import RunningBridge, bridge_config
from tests.certs import make_certificates
from tests.helpers import Mosquitto, free_port
from tests.qrs_server import QrsServer, qrs_settings
from tests.qrs_site import FINANCE_EXECUTION, FINANCE_TASK, SALES_EXECUTION, SALES_TASK, furnish
from tests.slack_server import SlackServer
from tests.task_datagrams import task_datagram


def webhook(slack: SlackServer, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "webhook_url": f"{slack.url}/services/T0/B0/SECRET", **extra}


@asynccontextmanager
async def running(
    tmp_path: Path, mosquitto: Mosquitto, slack: dict[str, Any], qrs: dict[str, Any], **more: Any
) -> AsyncIterator[RunningBridge]:
    config = bridge_config(
        tmp_path, mosquitto.port, slack=slack, qrs=qrs, homeassistant__enabled=False, **more
    )
    bridge = await RunningBridge(config).start()
    try:
        yield bridge
    finally:
        await bridge.close()


async def test_the_card_shows_owner_stream_tags_and_the_log_tail(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, qrs_server: QrsServer
) -> None:
    furnish(qrs_server)
    async with running(tmp_path, mosquitto, webhook(slack), qrs_settings(qrs_server)) as bridge:
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        (request,) = await asyncio.to_thread(slack.wait_for, 1)
    body = request.body
    assert body["text"].startswith("Reload task failed: Reload Sales (app Sales) on QS1")
    assert "owner Anna Berg (CORP\\anna)" in body["text"]
    fields = {field["text"].split("\n")[0]: field["text"] for field in body["blocks"][1]["fields"]}
    assert fields["*Owner*"] == "*Owner*\nAnna Berg (CORP\\anna)"
    assert fields["*Stream*"] == "*Stream*\nSales"
    assert fields["*Tags*"] == "*Tags*\nProduction"
    assert fields["*Custom properties*"] == "*Custom properties*\nAlertTeam=Sales"
    codes = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"][1:]
    assert codes[-1].startswith("```")
    assert "Error: Field 'Amount' not found (Sales)" in codes[-1]


async def test_qrs_slow_slack_posts_after_context_wait_saying_so(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, qrs_server: QrsServer
) -> None:
    furnish(qrs_server).delay = 10.0
    settings = webhook(slack, context_wait=1)
    async with running(tmp_path, mosquitto, settings, qrs_settings(qrs_server)) as bridge:
        sent = time.monotonic()
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        (request,) = await asyncio.to_thread(slack.wait_for, 1)
        waited = time.monotonic() - sent
    assert 0.9 <= waited < 9  # context_wait, not QRS's 10 s (the bench measures it closely)
    notes = [b for b in request.body["blocks"] if b["type"] == "context"]
    assert "QRS context not here within 1 s" in str(notes)
    assert "Owner" not in str(request.body["blocks"])


async def test_qrs_down_slack_posts_at_once_with_the_reason(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server, port=free_port())
    async with running(tmp_path, mosquitto, webhook(slack, context_wait=5), qrs) as bridge:
        sent = time.monotonic()
        bridge.tasks.send(
            task_datagram("failed", "Reload Finance", FINANCE_TASK, FINANCE_EXECUTION)
        )
        (request,) = await asyncio.to_thread(slack.wait_for, 1)
        waited = time.monotonic() - sent
    assert waited < 4  # the refused connection ends the wait: no context_wait spent
    assert "QRS context unavailable: QRS unreachable" in str(request.body["blocks"])


async def test_a_custom_property_route_posts_to_its_channel_only(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer, slack: SlackServer
) -> None:
    furnish(qrs_server)
    route = {
        "channel": "#finance-alerts",
        "filter": {"custom_properties": {"AlertTeam": "Finance"}, "without_context": "skip"},
    }
    settings = {
        "enabled": True,
        "token": "xoxb-test",
        "base_url": f"{slack.url}/api/",
        "task_events": {"channel": "#qlik-alerts", "routes": [route]},
    }
    async with running(tmp_path, mosquitto, settings, qrs_settings(qrs_server)) as bridge:
        bridge.tasks.send(
            task_datagram("failed", "Reload Finance", FINANCE_TASK, FINANCE_EXECUTION)
        )
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        requests = await asyncio.to_thread(slack.wait_for, 2)
    channels = {r.body["text"].split(" (")[0]: r.body["channel"] for r in requests}
    assert channels == {
        "Reload task failed: Reload Finance": "#finance-alerts",
        "Reload task failed: Reload Sales": "#qlik-alerts",
    }
    assert len(slack.requests) == 2


async def test_qrs_refusing_the_certificate_slack_posts_at_once_with_the_reason(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, qrs_certs: Any
) -> None:
    (tmp_path / "other").mkdir()
    other = make_certificates(tmp_path / "other")
    refusing = furnish(QrsServer(qrs_certs, client_ca=other.ca_file)).start()
    try:
        async with running(
            tmp_path, mosquitto, webhook(slack, context_wait=5), qrs_settings(refusing)
        ) as bridge:
            sent = time.monotonic()
            bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
            (request,) = await asyncio.to_thread(slack.wait_for, 1)
            waited = time.monotonic() - sent
    finally:
        refusing.stop()
    assert waited < 4
    assert "QRS context unavailable: certificate refused" in str(request.body["blocks"])


def test_the_card_without_a_context_is_as_before_and_says_why() -> None:
    event = TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        task_name="Reload Sales",
        message="failed",
    )
    plain = task_message(event, None)
    down = task_message(event, None, context={"status": "unavailable", "reason": "timeout"})
    assert down.text == plain.text
    assert down.blocks[:2] == plain.blocks[:2]
    assert down.blocks[-1]["elements"][0]["text"] == "QRS context unavailable: timeout"
    shown = task_message(
        event, None, context={"status": "complete", "app_owner": "<!channel>", "log_tail": "x"}
    )
    assert "&lt;!channel&gt;" in str(shown.blocks)  # QRS's text is escaped like the event's
    assert "<!channel>" not in str(shown.blocks)
