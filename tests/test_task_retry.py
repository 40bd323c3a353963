"""The retry button's command end to end: task events by UDP, `site/retry` saying what it would
start, the request on the broker (a real mosquitto), the start at a local QRS
(tests/qrs_server.py) and the answer on `bridge/response/task/retry`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import Mosquitto, Subscriber
from tests.qrs_server import HR_ID, SALES_ID, QrsServer, qrs_settings
from tests.task_datagrams import task_datagram
from tests.test_task_start import bridge_and_client
from tests.test_topics_doc import example

RETRY = "qlik2mqtt/bridge/request/task/retry"
ANSWER = "qlik2mqtt/bridge/response/task/retry"
TARGET = "qlik2mqtt/site/retry"


async def retry(client: Subscriber, transaction: str) -> Any:
    client.publish(RETRY, json.dumps({"transaction": transaction}).encode())
    answer = await client.wait_json(ANSWER, lambda p: p.get("transaction") == transaction)
    return answer


async def test_the_retry_starts_the_newest_allowed_failed_task_until_none_is_left(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server, allowed_tasks=[SALES_ID])  # HR may not be started
    async with bridge_and_client(tmp_path, mosquitto, qrs, (ANSWER, TARGET)) as (bridge, client):
        await client.wait_json(TARGET, lambda p: p["task_id"] is None)
        nothing = await retry(client, "before")
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e1"))
        bridge.tasks.send(task_datagram("failed", "Reload HR", HR_ID, "e2"))  # newer, refused
        target = await client.wait_json(TARGET, lambda p: p["task_id"] == SALES_ID)
        since = client.mark()
        client.publish(RETRY, b"retry")  # what the button sends: answered without transaction
        pressed = await client.wait_json(ANSWER, lambda p: "transaction" not in p)
        await client.wait_json(TARGET, lambda p: p["task_id"] is None, since=since)  # started
        again = await retry(client, "again")  # a second press before its outcome: no start
        bridge.tasks.send(task_datagram("succeeded", "Reload Sales", SALES_ID, "e3"))
        after = await retry(client, "after")
    assert nothing == {
        "status": "error",
        "error": "no failed task to retry",
        "transaction": "before",
    }
    assert (target["task_name"], target["server"]) == ("Reload Sales", "QS1")
    assert target["failed_at"].endswith("Z")
    assert set(example("qlik2mqtt/site/retry")) == set(target)  # docs/topics.md
    assert pressed == {
        "status": "ok",
        "data": {"id": SALES_ID, "name": "Reload Sales", "server": "QS1"},
    }
    assert again["error"] == after["error"] == "no failed task to retry"
    assert [request.path for request in qrs_server.requests] == [f"/qrs/task/{SALES_ID}/start"]


async def test_a_task_qrs_does_not_know_is_answered_and_no_longer_offered(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs_server.task_ids.discard(SALES_ID)  # deleted in the QMC since it failed
    qrs = qrs_settings(qrs_server)
    async with bridge_and_client(tmp_path, mosquitto, qrs, (ANSWER, TARGET)) as (bridge, client):
        bridge.tasks.send(task_datagram("failed", "Reload HR", HR_ID, "e1"))
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e2"))
        await client.wait_json(TARGET, lambda p: p["task_id"] == SALES_ID)
        answer = await retry(client, "gone")
        await client.wait_json(TARGET, lambda p: p["task_id"] == HR_ID)  # the next one
        next_one = await retry(client, "next")
    assert answer == {
        "status": "error",
        "error": "not found",
        "data": {"id": SALES_ID, "name": "Reload Sales", "server": "QS1"},
        "transaction": "gone",
    }
    assert (next_one["status"], next_one["data"]["id"]) == ("ok", HR_ID)
    assert [request.path for request in qrs_server.requests] == [
        f"/qrs/task/{SALES_ID}/start",
        f"/qrs/task/{HR_ID}/start",
    ]


async def test_a_reload_the_retry_started_is_not_offered_again_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    """The pending mark is in the state file: a reload still running when the bridge restarts
    is not started a second time by the next press."""
    qrs = qrs_settings(qrs_server, allowed_tasks=[SALES_ID])
    async with bridge_and_client(tmp_path, mosquitto, qrs, (ANSWER, TARGET)) as (bridge, client):
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e1"))
        await client.wait_json(TARGET, lambda p: p["task_id"] == SALES_ID)
        since = client.mark()
        pressed = await retry(client, "before")
        await client.wait_json(TARGET, lambda p: p["task_id"] is None, since=since)
        await bridge.stop()
        since = client.mark()
        await bridge.start()
        after_restart = await client.wait_json(TARGET, lambda p: True, since=since)
        await client.wait_for(
            "qlik2mqtt/bridge/state", lambda m: m.payload == b"online", since=since
        )
        again = await retry(client, "after")
    assert pressed["status"] == "ok"
    assert after_restart["task_id"] is None  # still pending: not offered
    assert again["error"] == "no failed task to retry"
    assert [request.path for request in qrs_server.requests] == [f"/qrs/task/{SALES_ID}/start"]


async def test_a_forged_failure_never_chooses_what_retry_starts(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    """Issue 24, finding 1: a task-failure datagram made the Retry button's target whatever
    task id it named, started as sa_repository. Now QRS must know a reload task with that id
    and the name the failure gave: a made-up id is `not found`, a real id under another name
    `not the failed task`; neither starts anything, and the button moves on to a real one."""
    forged = "0d0d0d0d-0000-4000-8000-000000000000"
    qrs = qrs_settings(qrs_server, allowed_tasks=["*"])
    async with bridge_and_client(tmp_path, mosquitto, qrs, (ANSWER, TARGET)) as (bridge, client):
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e1"))  # genuine
        bridge.tasks.send(task_datagram("failed", "Reload Payroll", HR_ID, "e2"))  # a real id
        bridge.tasks.send(task_datagram("failed", "Reload Sales", forged, "e3"))  # made up
        await client.wait_json(TARGET, lambda p: p["task_id"] == forged)
        made_up = await retry(client, "made-up")
        renamed = await retry(client, "renamed")
        genuine = await retry(client, "genuine")
    assert made_up["error"] == "not found"
    assert made_up["data"]["id"] == forged
    assert renamed["error"] == "not the failed task"
    assert (renamed["data"]["id"], renamed["data"]["name"]) == (HR_ID, "Reload Payroll")
    assert genuine == {
        "status": "ok",
        "data": {"id": SALES_ID, "name": "Reload Sales", "server": "QS1"},
        "transaction": "genuine",
    }
    assert [request.path for request in qrs_server.requests] == [f"/qrs/task/{SALES_ID}/start"]
