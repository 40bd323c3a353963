"""A small Qlik Sense site for the local QRS (tests/qrs_server.py): tasks, apps, executions
and script logs, in the shapes Qlik's Repository API documents."""

from __future__ import annotations

from tests.qrs_server import QrsServer, execution_result, qrs_app, reload_task

SALES_TASK = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
SALES_APP = "9f1d2b20-0000-4000-8000-000000000001"
FINANCE_TASK = "0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f"
FINANCE_APP = "9f1d2b20-0000-4000-8000-000000000002"
SALES_EXECUTION = "11111111-2222-4333-8444-555555555555"
FINANCE_EXECUTION = "22222222-3333-4444-8555-666666666666"
LOG_LINES = 50
"""Lines of each script log: the last one names the error."""


def script_log(name: str, lines: int = LOG_LINES) -> str:
    body = [f"20261206T100{i:03d}.000+0100 {i:>4} Load {name} step {i}" for i in range(lines - 1)]
    body.append(f"20261206T100042.000+0100 Error: Field 'Amount' not found ({name})")
    return "\r\n".join(body) + "\r\n"


def furnish(server: QrsServer) -> QrsServer:
    """Reload Sales (tagged Production, AlertTeam Sales, in the Sales stream) and Reload
    Finance (tagged Nightly, AlertTeam Finance, unpublished), each with a failed execution."""
    server.reloadtasks[SALES_TASK] = reload_task(
        SALES_TASK,
        "Reload Sales",
        SALES_APP,
        "Sales",
        tags=("Production",),
        properties={"AlertTeam": ("Sales",)},
    )
    server.apps[SALES_APP] = qrs_app(
        SALES_APP, "Sales", ("CORP", "anna", "Anna Berg"), "Sales", tags=("Core",)
    )
    server.reloadtasks[FINANCE_TASK] = reload_task(
        FINANCE_TASK,
        "Reload Finance",
        FINANCE_APP,
        "Finance",
        tags=("Nightly",),
        properties={"AlertTeam": ("Finance", "Controlling")},
    )
    server.apps[FINANCE_APP] = qrs_app(FINANCE_APP, "Finance", ("CORP", "bo", "Bo Lind"), None)
    for result, task, execution, name in (
        ("r-sales", SALES_TASK, SALES_EXECUTION, "Sales"),
        ("r-finance", FINANCE_TASK, FINANCE_EXECUTION, "Finance"),
    ):
        server.executions[execution] = execution_result(result, task, execution)
        server.script_logs[result] = script_log(name)
    return server
