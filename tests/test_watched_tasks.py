"""Watched tasks end to end: task events by UDP, each watched task's retained topics and Home
Assistant device on a real mosquitto, its Start button's request reaching a local QRS
(tests/qrs_server.py), the outcome kept across a restart, and a task no longer watched
removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber
from tests.qrs_server import HR_ID, SALES_ID, QrsServer, qrs_settings
from tests.task_datagrams import task_datagram
from tests.test_task_start import RESPONSE
from tests.test_topics_doc import example

SALES = "qlik2mqtt/tasks/reload_sales"
HR = f"qlik2mqtt/tasks/{HR_ID.replace('-', '_')}"
DISCOVERY = "homeassistant/+/qlik2mqtt/+/config"


def watching(tmp_path: Path, port: int, watch: list[str], qrs: dict[str, Any]) -> RunningBridge:
    return RunningBridge(bridge_config(tmp_path, port, qrs=qrs, tasks__watch=watch))


async def test_a_watched_task_follows_its_events_and_its_button_starts_it(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    bridge = watching(tmp_path, mosquitto.port, ["Reload Sales", HR_ID], qrs_settings(qrs_server))
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/tasks/#", DISCOVERY, RESPONSE)
    try:
        await bridge.start()
        unknown = await sub.wait_json(SALES, lambda p: True)
        await sub.wait_json(HR, lambda p: p["outcome"] is None)
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e1"))
        failed = await sub.wait_json(SALES, lambda p: p["outcome"] == "failed")
        at = await sub.wait_for(f"{SALES}/last_outcome_at")
        bridge.tasks.send(task_datagram("aborted", "Reload HR", HR_ID, "e2"))
        aborted = await sub.wait_json(HR, lambda p: p["outcome"] == "aborted")
        bridge.tasks.send(task_datagram("succeeded", "Reload Sales", SALES_ID, "e3"))
        await sub.wait_json(SALES, lambda p: p["outcome"] == "succeeded")
        button = await sub.wait_json(
            "homeassistant/button/qlik2mqtt/task_reload_sales_start/config", lambda p: True
        )
        sub.publish(button["command_topic"], button["payload_press"].encode())  # pressed
        answer = await sub.wait_json(RESPONSE, lambda p: True)
    finally:
        await bridge.close()
        await sub.stop()
    assert unknown["outcome"] is None
    assert sub.on(f"{SALES}/last_outcome_at")[0] is at  # published once there was an outcome
    assert at.payload.decode() == failed["last_outcome_at"]
    assert (failed["task"], failed["task_id"], failed["server"]) == (
        "Reload Sales",
        SALES_ID,
        "QS1",
    )
    assert (aborted["task"], aborted["task_name"]) == (HR_ID, "Reload HR")
    assert set(example("qlik2mqtt/tasks/<task>")) == set(failed)  # docs/topics.md
    assert answer == {"status": "ok", "data": {"name": "Reload Sales"}}
    assert [(r.path, r.query.get("name")) for r in qrs_server.requests] == [
        ("/qrs/task/start", ["Reload Sales"])
    ]


async def test_the_outcome_survives_a_restart_and_an_unwatched_task_is_removed(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server)
    first = watching(tmp_path, mosquitto.port, ["Reload Sales", "Reload HR"], qrs)
    sub = await Subscriber(mosquitto.port).start(SALES)
    try:
        await first.start()
        first.tasks.send(task_datagram("failed", "Reload Sales", SALES_ID, "e1"))
        first.tasks.send(task_datagram("failed", "Reload HR", HR_ID, "e2"))
        before = await sub.wait_json(SALES, lambda p: p["outcome"] == "failed")
    finally:
        await first.close()
        await sub.stop()
    again = watching(tmp_path, mosquitto.port, ["Reload Sales"], qrs)  # HR no longer watched
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/tasks/#", DISCOVERY)
    try:
        await again.start()
        await sub.wait_for(
            "homeassistant/sensor/qlik2mqtt/task_reload_hr_last_outcome/config",
            lambda m: m.payload == b"",
        )
        await sub.wait_for("qlik2mqtt/tasks/reload_hr", lambda m: m.payload == b"")
        retained = await sub.wait_for(SALES, lambda m: m.retain)  # the first bridge's
        after = (await sub.wait_for(SALES, lambda m: not m.retain)).json()  # the second's
    finally:
        await again.close()
        await sub.stop()
    assert after == before == retained.json()
    removed = {m.topic for m in sub.messages if m.payload == b"" and "reload_hr" in m.topic}
    assert removed == {
        "homeassistant/sensor/qlik2mqtt/task_reload_hr_last_outcome/config",
        "homeassistant/sensor/qlik2mqtt/task_reload_hr_last_outcome_at/config",
        "homeassistant/button/qlik2mqtt/task_reload_hr_start/config",
        "qlik2mqtt/tasks/reload_hr",
        "qlik2mqtt/tasks/reload_hr/last_outcome_at",
    }


async def test_a_task_watched_then_unwatched_with_no_event_between_is_removed(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server)
    first = watching(tmp_path, mosquitto.port, ["Reload Sales", "Reload HR"], qrs)
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/tasks/#", DISCOVERY)
    try:
        await first.start()
        await sub.wait_json("qlik2mqtt/tasks/reload_hr", lambda p: p["outcome"] is None)
        await sub.wait_for("homeassistant/button/qlik2mqtt/task_reload_hr_start/config")
    finally:
        await first.close()
        await sub.stop()
    again = watching(tmp_path, mosquitto.port, ["Reload Sales"], qrs)  # no event in between
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/tasks/#", DISCOVERY)
    try:
        await again.start()
        for topic in (
            "qlik2mqtt/tasks/reload_hr",
            "homeassistant/sensor/qlik2mqtt/task_reload_hr_last_outcome/config",
            "homeassistant/button/qlik2mqtt/task_reload_hr_start/config",
        ):
            await sub.wait_for(topic, lambda m: m.payload == b"")
        await sub.wait_json(SALES, lambda p: not p["outcome"])
    finally:
        await again.close()
        await sub.stop()
    third = watching(tmp_path, mosquitto.port, ["Reload Sales"], qrs)  # dropped: cleared once
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/tasks/#", DISCOVERY, SALES)
    try:
        await third.start()
        await sub.wait_for(SALES, lambda m: not m.retain)  # the third bridge's own
        await sub.wait_for("homeassistant/button/qlik2mqtt/task_reload_sales_start/config")
    finally:
        await third.close()
        await sub.stop()
    assert not [m.topic for m in sub.messages if "reload_hr" in m.topic]
