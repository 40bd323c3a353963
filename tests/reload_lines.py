"""The datagrams one reload task's run makes in each format Butler's and qlik2mqtt's appenders
send: Butler's tagged scheduler and engine lines (the `conversionPattern`s of Butler's
documented appenders), its legacy lines (ten fields, and the four-field one naming the task
alone, windows-1252 as log4net sends without `<encoding>`), and qlik2mqtt's scheduler appender
(XmlLayoutSchemaLog4j, rendered as tests/log4net_model.py renders the captures)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tests.helpers import log4j_xml

TASK_SESSION = "System.Scheduler.Scheduler.Master.Task.TaskSession"
DATE = "2026-12-06 14:23:45,123"

Outcome = Literal["failed", "succeeded", "aborted"]
_TAGS = {
    "failed": "/scheduler-task-failed/",
    "succeeded": "/scheduler-reloadtask-success/",
    "aborted": "/scheduler-task-aborted/",
}
_MESSAGES = {
    "failed": ("ERROR", "Task finished with state FinishedFail. Max retries reached"),
    "succeeded": ("INFO", "Execution State Change to FinishedSuccess"),
    "aborted": ("INFO", "Execution State Change to Aborting"),
}


@dataclass(frozen=True)
class Reload:
    """One run of a reload task on a node: what the scheduler knows of it."""

    host: str
    task_id: str = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
    app_id: str = "9f1d2b20-7c1e-4a8b-b0d2-3e4f5a6b7c8d"
    name: str = "Reload Sales"
    app_name: str = "Sales"
    execution: str = "e4a6c830-1b2c-4d3e-8f4a-5b6c7d8e9f00"
    user: str = "CORP\\svc_reload"


def _fields(reload: Reload, outcome: Outcome) -> list[str]:
    """The ten fields Butler's legacy line and its tagged scheduler line share."""
    level, message = _MESSAGES[outcome]
    return [
        reload.host,
        reload.name,
        reload.app_name,
        reload.user,
        reload.task_id,
        reload.app_id,
        DATE,
        level,
        reload.execution,
        message,
    ]


def tagged(reload: Reload, outcome: Outcome = "failed") -> bytes:
    """Butler's scheduler appender: `/scheduler-…/;%hostname;%property{TaskName};…`."""
    return ";".join([_TAGS[outcome], *_fields(reload, outcome)]).encode()


def xml(reload: Reload, outcome: Outcome = "failed") -> bytes:
    """qlik2mqtt's scheduler appender (XmlLayoutSchemaLog4j)."""
    level, message = _MESSAGES[outcome]
    return log4j_xml(
        TASK_SESSION,
        level,
        message,
        host=reload.host,
        TaskName=reload.name,
        AppName=reload.app_name,
        User=reload.user,
        TaskId=reload.task_id,
        AppId=reload.app_id,
        ExecutionId=reload.execution,
    )


def legacy_long(reload: Reload, outcome: Outcome = "failed") -> bytes:
    """Butler's legacy ten-field failure line (a failure whatever the outcome asked)."""
    return ";".join(_fields(reload, "failed")).encode("cp1252")


def legacy(reload: Reload, outcome: Outcome = "failed") -> bytes:
    """Butler's legacy four-field failure line: `%hostname;TaskName;AppName;UserId`, the task
    named by its name alone."""
    return f"{reload.host};{reload.name};{reload.app_name};{reload.user}".encode("cp1252")


def engine(reload: Reload, outcome: Outcome = "failed") -> bytes:
    """Butler's engine appender: `/engine-reload-failed/;%hostname;%property{AppId};
    %property{SessionId};%property{ActiveUserDirectory};%property{ActiveUserId};%date;%level;
    %message`: the app alone."""
    directory, _, user_id = reload.user.partition("\\")
    fields = [
        "/engine-reload-failed/",
        reload.host,
        reload.app_id,
        "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
        directory,
        user_id,
        DATE,
        "ERROR",
        "Reload failed: General Script Error in statement handling",
    ]
    return ";".join(fields).encode()


Format = Callable[[Reload, Outcome], bytes]
SCHEDULER_FAILURES: dict[str, Format] = {"tagged": tagged, "xml": xml, "legacy_long": legacy_long}
"""The lines naming the task by its id."""
SUCCESSES: dict[str, Format] = {"tagged": tagged, "xml": xml}


def pairs() -> list[tuple[str, list[Format], int]]:
    """(name, the failure lines in order, how many are published): every pair of formats
    that logs one failed reload, each order."""
    cases: list[tuple[str, list[Format], int]] = []
    for name, scheduler in SCHEDULER_FAILURES.items():
        cases.append((f"{name}+engine", [scheduler, engine], 2))
        cases.append((f"engine+{name}", [engine, scheduler], 2))
        cases.append((f"legacy+{name}", [legacy, scheduler], 2))
        cases.append((f"{name}+legacy", [scheduler, legacy], 2))
    cases.append(("xml+tagged", [xml, tagged], 1))  # one line in two layouts: a duplicate
    cases.append(("tagged+xml", [tagged, xml], 1))
    cases.append(("all", [engine, legacy, xml, tagged], 3))
    return cases
