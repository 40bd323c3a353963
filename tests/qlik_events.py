"""Qlik Sense log events for the appender tests, and what each must become: the captured
fixtures plus the other messages the Proxy and Scheduler log, and the warnings and errors of
the four services (LOG_INTENDED). Shared by the model test
(test_appenders) and the real-log4net test (test_log4net)."""

from __future__ import annotations

import dataclasses
import json

from bridge.core.events import LogEvent as ParsedLogEvent
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


# Warnings and errors the four services log, for the log-event appenders: (service, event,
# whether the service's file sends it to the log port). Messages span lines and hold `;`,
# quotes, `<>&` and non-ASCII; exceptions are Windows stack traces (CRLF).
ENGINE_PROPERTIES = {
    "ProxySessionId": "3f6b1c8e-2a41-4d1f-9c3e-7b52a0d9e611",
    "ActiveUserDirectory": "CORP",
    "ActiveUserId": "mia",
    "EngineTimestamp": "20261104T081502.417Z",
    "ProcessId": "9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e",
    "Exe Version": "14.129.5.0",
    "Server Started": "20261101T060000.000Z",
    "Entry Type": "Session",
    "SessionId": "b2f0e8a4-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "AppId": "e7af59a0-c243-480d-9571-08727551a66f",
}
PROXY_PROPERTIES = {
    "UserDirectory": "CORP",
    "UserId": "Åsa Öberg",
    "Command": "Login",
    "Result": "401",
    "Origin": "AppAccess",
    "Context": "/hub/",
}
SCHEDULER_PROPERTIES = {
    "UserDirectory": "CORP",
    "UserId": "svc_reload",
    "User": "CORP\\svc_reload",
    "TaskName": 'Reload Sales; € <daily> & "more"',
    "AppName": "Sales 'FY'; 日本",
    "TaskId": "dec2a02a-1680-44ef-8dc2-e2bfb180af87",
    "AppId": "e7af59a0-c243-480d-9571-08727551a66f",
    "ExecutionId": "4831c6a5-34f6-45bb-9d40-73a6e6992670",
}
STACK = (
    "System.Net.WebException: The remote server returned an error: (503) <Server Unavailable>"
    " & more.\r\n   at System.Net.HttpWebRequest.GetResponse()\r\n"
    '   at Qlik.Sense.Repository.Sync.Send(String "node"; Int32 retry)'
)
LOG_INTENDED: list[tuple[str, LogEvent, bool]] = [
    (
        "engine",
        LogEvent(
            "System.Engine.Engine",
            "WARN",
            "Document 'Sales; EMEA.qvf' could not be opened;\nreason: \"file locked\" <lock> & €",
            ENGINE_PROPERTIES,
        ),
        True,
    ),
    (
        "engine",
        LogEvent(
            "Session.Engine.Session",
            "ERROR",
            "Out of memory: a request for 2048 MB was refused",
            {**ENGINE_PROPERTIES, "ProxySessionId": "0", "Entry Type": "Error"},
        ),
        True,
    ),
    (
        "engine",
        LogEvent("Performance.Engine.Engine", "FATAL", "日本語のアプリ: working set 全部 used"),
        True,
    ),
    (
        "engine",
        LogEvent("System.Engine.Engine", "INFO", "Engine started", ENGINE_PROPERTIES),
        False,
    ),
    ("engine", LogEvent("QixPerformance.Engine.Engine", "WARN", "not a covered logger"), False),
    (
        "proxy",
        LogEvent(
            "Audit.Proxy.Proxy.SessionEstablishment.Authentication.AuthenticationHandler",
            "WARN",
            "Authentication failed for user 'CORP\\Åsa Öberg'; reason: \"ticket expired\"",
            PROXY_PROPERTIES,
        ),
        True,
    ),
    (
        "proxy",
        LogEvent(
            "System.Proxy.Proxy.Core.RequestListener",
            "ERROR",
            "Request to <https://qsprod02:4242/qrs/about> failed\r\nafter 3 retries",
            {**PROXY_PROPERTIES, "Command": "Ticket request", "Result": "500"},
            exception=STACK,
        ),
        True,
    ),
    (
        "proxy",
        LogEvent("AuditSecurity.Proxy", "ERROR", "Access denied: <rule> \"Stream\" & 'x'"),
        True,
    ),
    (
        "proxy",
        LogEvent("Security.Proxy.Certificates", "FATAL", "No certificate; cannot start"),
        True,
    ),
    ("proxy", LogEvent("System.Proxy.Proxy.Core", "INFO", "Listening on 443"), False),
    ("proxy", LogEvent("AuditActivity.Proxy", "WARN", "not a covered logger"), False),
    (
        "repository",
        LogEvent(
            "System.Repository.Repository.Core.Licensing",
            "ERROR",
            'License check failed; the LEF for "CORP" <expired> & cannot be renewed',
            {"UserDirectory": "CORP", "UserId": "admin", "Command": "Check license"},
            exception='System.InvalidOperationException: <<<>>> & ]]> <&> "x"\r\n   at A.B()',
        ),
        True,
    ),
    ("repository", LogEvent("Service", "WARN", "Node 'rim01' unreachable; will retry"), True),
    (
        "repository",
        LogEvent(
            "UserManagement.Repository.Sync", "ERROR", "UDC 'AD'; sync failed", exception=STACK
        ),
        True,
    ),
    ("repository", LogEvent("System.Repository.Repository.Core", "DEBUG", "debug"), False),
    (
        "scheduler",
        LogEvent(
            TASK_SESSION,
            "ERROR",
            "Task finished with state FinishedFail.\nMax retries reached",
            SCHEDULER_PROPERTIES,
        ),
        True,
    ),
    (
        "scheduler",
        LogEvent("Service", "WARN", "Slave 'rim01' did not answer; <timeout> & \"retry\""),
        True,
    ),
    ("scheduler", LogEvent(RELOAD_TASK, "INFO", "Reload started", SCHEDULER_PROPERTIES), False),
]


LOG_FIELDS = {
    "ProxySessionId": "proxy_session_id",
    "ActiveUserDirectory": "user_directory",
    "ActiveUserId": "user_id",
    "EngineTimestamp": "engine_timestamp",
    "ProcessId": "process_id",
    "Exe Version": "engine_version",
    "Server Started": "server_started",
    "Entry Type": "entry_type",
    "SessionId": "session_id",
    "UserDirectory": "user_directory",
    "UserId": "user_id",
    "Command": "command",
    "Result": "result_code",
    "Origin": "origin",
    "Context": "context",
    "User": "user",
    "TaskName": "task_name",
    "AppName": "app_name",
    "TaskId": "task_id",
    "AppId": "app_id",
    "ExecutionId": "execution_id",
}
"""Qlik's property → the LogEvent field it must arrive in (written out here, not imported, so
the test does not check the parser against its own table)."""


def expected_log_event(service: str, event: LogEvent, server: str) -> dict[str, object]:
    """Every field of the LogEvent `event` must become, logged by `service` on `server`
    (without the time and the Windows user, which the sender sets)."""
    fields: dict[str, object] = {
        "source": service,
        "level": event.level,
        "server": server,
        "source_format": "xml",
        "log_row": None,
        "subsystem": event.logger,
        "message": event.message,
        "exception_message": event.exception,
    }
    for name in (
        "user_directory", "user_id", "proxy_session_id", "engine_timestamp", "process_id",
        "engine_version", "server_started", "entry_type", "session_id", "app_id", "command",
        "result_code", "origin", "context", "user", "task_name", "app_name", "task_id",
        "execution_id", "category",
    ):  # fmt: skip
        fields[name] = None
    fields["fields_uncertain"] = False
    for key, value in event.properties.items():
        fields[LOG_FIELDS[key]] = value
    complete_expected_user(fields)
    return fields


def complete_expected_user(fields: dict[str, object]) -> None:
    """The user in both forms, as Butler SOS's `user_full`: `DIR\\user` from directory and id,
    or directory and id from a `DIR\\user` (the scheduler logs either)."""
    user, directory, user_id = (
        value.strip() if isinstance(value, str) and value.strip() not in ("", "(null)") else None
        for value in (fields["user"], fields["user_directory"], fields["user_id"])
    )
    if user is None and directory and user_id:
        fields["user"] = f"{directory}\\{user_id}"
    elif isinstance(user, str) and "\\" in user and not directory and not user_id:
        directory, _, user_id = user.partition("\\")
        fields["user_directory"], fields["user_id"] = directory or None, user_id or None


def assert_log_datagram_is(data: bytes, service: str, event: LogEvent, server: str) -> None:
    """`data` parses to the log event `event` must become, with every field intact."""
    parsed = parse_datagram(data)
    assert isinstance(parsed, ParsedLogEvent), parsed
    fields = dataclasses.asdict(parsed)
    assert fields.pop("log_timestamp")
    assert fields.pop("windows_user")
    assert fields == expected_log_event(service, event, server)
