"""Alerts that route by a failure's QRS context (issue 26), end to end: failure datagrams by
UDP, a local QRS with Qlik's certificates (tests/qrs_server.py), a real mosquitto, a local
Slack. A lamp filtered by a tag lights only for the tagged task; without context the fallback
decides. (The Slack route: tests/slack/test_slack_context.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, free_port
from tests.qrs_server import QrsServer, qrs_settings
from tests.qrs_site import (
    FINANCE_APP,
    FINANCE_EXECUTION,
    FINANCE_TASK,
    SALES_EXECUTION,
    SALES_TASK,
    furnish,
)
from tests.reload_lines import Reload, engine, tagged
from tests.task_datagrams import task_datagram

LAMP = "cmnd/prod_lamp/POWER"
CONTEXT = "qlik2mqtt/qs1/event/task_context"
PRODUCTION_LAMP = {"topic": LAMP, "on": "ON", "off": "OFF", "filter": {"tags": ["Production"]}}


@asynccontextmanager
async def running(
    tmp_path: Path, mosquitto: Mosquitto, qrs: dict[str, Any], **config: Any
) -> AsyncIterator[tuple[RunningBridge, Subscriber]]:
    sub = await Subscriber(mosquitto.port).start("cmnd/#", CONTEXT, "qlik2mqtt/site")
    settings = bridge_config(
        tmp_path, mosquitto.port, qrs=qrs, homeassistant__enabled=False, **config
    )
    bridge = await RunningBridge(settings).start()
    try:
        yield bridge, sub
    finally:
        await sub.stop()
        await bridge.close()


def finance() -> bytes:
    return task_datagram("failed", "Reload Finance", FINANCE_TASK, FINANCE_EXECUTION)


def sales() -> bytes:
    return task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION)


async def test_a_lamp_filtered_by_a_tag_lights_only_for_the_tagged_task(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    furnish(qrs_server)
    alerts = {"outputs": [PRODUCTION_LAMP]}
    async with running(tmp_path, mosquitto, qrs_settings(qrs_server), alerts=alerts) as (
        bridge,
        sub,
    ):
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(finance())  # tagged Nightly: the flag is on, this lamp is not
        await sub.wait_json(CONTEXT, lambda p: p["task_id"] == FINANCE_TASK)
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        assert sub.payloads(LAMP, mark) == []
        bridge.tasks.send(sales())  # tagged Production
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        mark = sub.mark()
        sub.publish("qlik2mqtt/bridge/acknowledge", b"acknowledge")
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF", since=mark)


async def test_without_qrs_the_lamp_s_fallback_decides(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    """QRS down: `without_context: alert` lights the lamp, `skip` does not."""
    skip = {**PRODUCTION_LAMP, "topic": "cmnd/skip/POWER"}
    skip["filter"] = {"tags": ["Production"], "without_context": "skip"}
    alerts = {"outputs": [PRODUCTION_LAMP, skip], "context_wait": 2}
    qrs = qrs_settings(qrs_server, port=free_port())
    async with running(tmp_path, mosquitto, qrs, alerts=alerts) as (bridge, sub):
        await sub.wait_for("cmnd/skip/POWER", lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(sales())
        await sub.wait_json(CONTEXT, lambda p: p["status"] == "unavailable")
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        assert sub.payloads("cmnd/skip/POWER", mark) == []


@pytest.mark.parametrize("known", [True, False], ids=["task-known", "task-not-known-yet"])
async def test_the_engine_line_of_a_failure_the_filter_excludes_lights_nothing(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer, known: bool
) -> None:
    """Cold review: the engine logs every failed reload too (the app alone). Its context came
    back `unavailable: no task id` at once, the fallback (`alert`) passed it, and the
    Production lamp lit for a Nightly task (and stayed lit while its task was known). Now the
    engine's line is judged with its joined task's context, or, while no task is known for
    its app, left to the scheduler's line of the same failure."""
    furnish(qrs_server)
    nightly = Reload(
        "QS1",
        task_id=FINANCE_TASK,
        app_id=FINANCE_APP,
        name="Reload Finance",
        app_name="Finance",
        execution=FINANCE_EXECUTION,
    )
    alerts = {"outputs": [PRODUCTION_LAMP]}
    async with running(tmp_path, mosquitto, qrs_settings(qrs_server), alerts=alerts) as (
        bridge,
        sub,
    ):
        await sub.wait_for(LAMP, lambda m: m.payload == b"OFF")
        if known:  # an earlier run taught the join of its app to the task
            bridge.tasks.send(tagged(nightly, "succeeded"))
            await sub.wait_json("qlik2mqtt/site", lambda p: p["last_event_at"] is not None)
        mark = sub.mark()
        bridge.tasks.send(engine(nightly))  # the engine's line first, as Qlik logs it
        bridge.tasks.send(tagged(nightly))  # then the scheduler's, with the task
        await sub.wait_json(CONTEXT, lambda p: p["task_id"] == FINANCE_TASK, since=mark)
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON", since=mark)
        bridge.tasks.send(sales())  # the Production task: its context lights the lamp
        await sub.wait_for(LAMP, lambda m: m.payload == b"ON", since=mark)
        assert sub.payloads(LAMP, mark) == [b"ON"]  # once, and only for the tagged task
        before = sub.on(CONTEXT, since=mark)
        assert [m.json()["task_id"] for m in before][-1] == SALES_TASK
