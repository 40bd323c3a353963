"""Qlik Sense log events for the appender tests, and what each must become: the captured
fixtures plus the other messages the Proxy and Scheduler log. Shared by the model test
(test_appenders) and the real-log4net test (test_log4net)."""

from __future__ import annotations

import json

from bridge.core.events import TaskEvent, UserEvent
from bridge.inputs.parse import parse_datagram
from tests.helpers import FIXTURES
from tests.log4net_model import LogEvent

TASK_SESSION = "System.Scheduler.Scheduler.Master.Task.TaskSession"
RELOAD_TASK = "System.Scheduler.Scheduler.Slave.Tasks.ReloadTask"
PROXY = "AuditActivity.Proxy"
COMMAND_EVENT_TYPES = {
    "Start session": "session_start",
    "Stop session": "session_stop",
    "Open connection": "connection_open",
    "Close connection": "connection_close",
}


def fixture_events() -> list[LogEvent]:
    lines = (FIXTURES / "log4net-events.jsonl").read_text(encoding="utf-8").splitlines()
    return [
        LogEvent(e["logger"], e["level"], e["message"], e["properties"])
        for e in map(json.loads, lines)
    ]


def task(message: str, level: str = "INFO", logger: str = TASK_SESSION) -> LogEvent:
    return LogEvent(
        logger,
        level,
        message,
        {
            "TaskName": "Reload Sales; € <daily>",
            "AppName": 'Sales "FY" & more',
            "User": "CORP\\svc",
            "TaskId": "tid-1",
            "AppId": "aid-1",
            "ExecutionId": "eid-1",
        },
    )


def command(name: str) -> LogEvent:
    return LogEvent(
        PROXY,
        "INFO",
        f"{name} for user 'CORP\\anna'",
        {
            "Command": name,
            "UserDirectory": "CORP",
            "UserId": "anna",
            "Origin": "AppAccess",
            "Context": "/hub/",
        },
    )


# (event, the event_type it must become, or None: it must not be sent)
INTENDED: list[tuple[LogEvent, str | None]] = [
    *[(e, "user" if e.logger == PROXY else None) for e in fixture_events()[:5]],
    (fixture_events()[5], "task_failed"),
    (fixture_events()[6], "task_aborted"),
    (fixture_events()[7], None),  # ReloadTask's own "Reload failed": TaskSession reports it
    (fixture_events()[8], "task_failed"),
    (task("Execution State Change to FinishedSuccess"), "task_succeeded"),
    (task("Failed to start session", "ERROR"), "task_failed"),
    (task("Could not reserve an executor for task", "WARN"), "task_failed"),
    (
        task("Exiting execute of Distribute task request.", logger=RELOAD_TASK),
        "distribute_finished",
    ),
    (task("Execution State Change to Running"), None),
    (task("Execution State Change to FinishedFail"), None),  # a retry follows
    (task("Execution State Change to Queued"), None),
    (task("Max retries reached", logger="System.Scheduler.Other"), None),
    (command("Login"), None),
    (command("Start session attempt"), None),
    (command("Ticket request"), None),
    (LogEvent("AuditSecurity.Proxy", "INFO", "x", {"Command": "Start session"}), None),
]


def assert_datagram_is(data: bytes, event: LogEvent, expected: str, server: str) -> None:
    """`data` parses to the event `event` must become (`expected`: "user", or a task event
    type), from `server`, with every property intact."""
    parsed = parse_datagram(data)
    assert isinstance(parsed, UserEvent | TaskEvent), parsed
    assert parsed.server == server
    assert parsed.message == event.message
    props = event.properties
    if isinstance(parsed, UserEvent):
        assert expected == "user"
        assert parsed.event_type.value == COMMAND_EVENT_TYPES[props["Command"]]
        assert (parsed.user_directory, parsed.user_id) == (
            props.get("UserDirectory"),
            props["UserId"],
        )
        assert (parsed.origin, parsed.context) == (props.get("Origin"), props.get("Context"))
    else:
        assert parsed.event_type.value == expected
        assert (parsed.task_name, parsed.app_name) == (props["TaskName"], props["AppName"])
        assert (parsed.task_id, parsed.app_id, parsed.execution_id) == (
            props["TaskId"],
            props["AppId"],
            props["ExecutionId"],
        )
        assert parsed.user == props["User"]
