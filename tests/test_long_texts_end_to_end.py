"""A long error and a long failure message, of the kind real nodes send (a SQL statement, a
stack trace), rendered in our XML appenders' layout, over real UDP into a real mosquitto: the
event topics carry every character, the retained state keeps its start and stays small (issue
25: it was 34 KB per publish)."""

from __future__ import annotations

from typing import Any

from bridge.core.bounded import ELLIPSIS, MESSAGE_BYTES
from bridge.inputs.fields import MAX_MESSAGE_CHARS, clip
from bridge.inputs.testevents import TASK_LOGGER, Sample, render
from tests.bridge_runner import RunningBridge
from tests.helpers import Mosquitto, Subscriber

BASE = "qlik2mqtt"
SQL = "Error: ODBC read failed; SQL: SELECT " + ", ".join(f"Å{n}" for n in range(3_000))
MESSAGE = SQL[:MAX_MESSAGE_CHARS]  # the most a message keeps whole (bridge.inputs.fields)


async def test_long_messages_are_whole_on_the_events_and_clipped_in_the_state(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    try:
        await sub.wait_for(f"{BASE}/bridge/state", lambda m: m.payload == b"online")
        error = Sample(
            "log", "System.Engine.Engine", "ERROR", MESSAGE, {"log4jmachinename": "QS1"}, "engine"
        )
        bridge.logs.send(render(error, "xml"))
        failure = Sample(
            "task",
            TASK_LOGGER,
            "ERROR",
            "Task finished with state FinishedFail; " + MESSAGE,
            {
                "TaskName": "Reload Sales",
                "AppName": "Sales",
                "User": "CORP\\svc_reload",
                "TaskId": "7c3e5a10-0000-4000-8000-000000000001",
                "AppId": "9f1d2b20-0000-4000-8000-000000000001",
                "ExecutionId": "e4a6c830-0001-4000-8000-000000000001",
                "log4jmachinename": "QS1",
            },
        )
        bridge.tasks.send(render(failure, "xml"))

        log = await sub.wait_json(f"{BASE}/qs1/event/log", lambda p: True)
        assert log["message"] == MESSAGE
        task = await sub.wait_json(f"{BASE}/qs1/event/task", lambda p: True)
        longer = "Task finished with state FinishedFail; " + MESSAGE
        assert task["message"] == clip(longer, MAX_MESSAGE_CHARS)  # as the parser keeps it

        def has_both(payload: dict[str, Any]) -> bool:
            return payload["failed_tasks"] == 1 and payload["log_events"]["last_error"] is not None

        await sub.wait_json(f"{BASE}/qs1", has_both)
        await sub.wait_json(f"{BASE}/site", has_both)
    finally:
        await sub.stop()

    # What a subscriber coming later reads: the retained state.
    late = await Subscriber(mosquitto.port).start(f"{BASE}/qs1", f"{BASE}/site")
    try:
        for topic in (f"{BASE}/qs1", f"{BASE}/site"):
            retained = await late.wait_for(topic, lambda m: m.retain)
            assert len(retained.payload) < 4_096, topic
            state = retained.json()
            last_error = state["log_events"]["last_error"]["message"]
            assert last_error.startswith("Error: ODBC read failed; SQL: SELECT Å0, Å1")
            assert last_error.endswith(ELLIPSIS)
            assert len(last_error.encode()) <= MESSAGE_BYTES
            failed = state["last_failed_task"]
            assert failed["message"].startswith("Task finished with state FinishedFail; Error")
            assert failed["task_name"] == "Reload Sales"  # short texts are kept whole
    finally:
        await late.stop()
