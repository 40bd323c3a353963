"""`qlik2mqtt send-test-events`: a realistic burst of Qlik Sense datagrams, in any layout.

Three users log in and open connections, one logs out, a reload fails (logged twice, as Qlik
does) and another is aborted — enough to watch every topic fill up without a Qlik server.

Each run is a new run of the same tasks: the task and app ids stay, the execution ids are new,
so the bridge folds the repeated failure within a run but not a second run's failure into the
first (`tasks.dedup_window` keys on server, event type, task and execution id).
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

Layout = Literal["legacy", "tagged", "xml"]
TASK_LOGGER = "System.Scheduler.Scheduler.Master.Task.TaskSession"
PROXY_LOGGER = "AuditActivity.Proxy"


@dataclass(frozen=True, slots=True)
class Sample:
    port_kind: Literal["user", "task"]
    logger: str
    level: str
    message: str
    properties: dict[str, str]


def sample_events(server: str, run: str | None = None) -> list[Sample]:
    """The burst claimed by `server`; `run` (12 hex digits, new each call when None) makes the
    execution ids of this run."""
    run_id = run if run is not None else uuid.uuid4().hex[:12]

    def user(command: str, directory: str, user_id: str, context: str) -> Sample:
        message = f"{command} for user '{directory}\\{user_id}'"
        properties = {
            "Command": command,
            "UserDirectory": directory,
            "UserId": user_id,
            "Origin": "AppAccess",
            "Context": context,
        }
        return Sample("user", PROXY_LOGGER, "INFO", message, properties)

    def task(level: str, message: str, name: str, app: str, number: int) -> Sample:
        properties = {
            "TaskName": name,
            "AppName": app,
            "User": "CORP\\svc_reload",
            "TaskId": f"7c3e5a10-0000-4000-8000-{number:012d}",
            "AppId": f"9f1d2b20-0000-4000-8000-{number:012d}",
            "ExecutionId": f"e4a6c830-{number:04d}-4000-8000-{run_id}",
        }
        return Sample("task", TASK_LOGGER, level, message, properties)

    failure = task(
        "ERROR",
        "Task finished with state FinishedFail. Max retries reached",
        "Reload Sales; daily",
        "Sales € dashboard",
        1,
    )
    events = [
        user("Start session", "CORP", "anna", "/hub/"),
        user("Open connection", "CORP", "anna", "/app/sales"),
        user("Start session", "CORP", "jöran", "/hub/"),
        user("Open connection", "CORP", "jöran", "/app/finance"),
        user("Start session", "EXT", "bob", "/hub/"),
        user("Close connection", "EXT", "bob", "/hub/"),
        user("Stop session", "EXT", "bob", "/hub/"),
        failure,
        failure,  # Qlik logs a failure more than once; the bridge folds it into one event
        task("INFO", "Execution State Change to Aborting", "Reload HR", "HR", 2),
    ]
    return [_on(server, sample) for sample in events]


def _on(server: str, sample: Sample) -> Sample:
    return Sample(
        sample.port_kind,
        sample.logger,
        sample.level,
        sample.message,
        {**sample.properties, "log4jmachinename": server},
    )


def render(sample: Sample, layout: Layout) -> bytes:
    """The datagram log4net would send for this event with the given layout."""
    p = sample.properties
    host = p["log4jmachinename"]
    if layout == "xml":
        data = "".join(
            f"<log4j:data name={quoteattr(k)} value={quoteattr(v)} />" for k, v in p.items()
        )
        stamp = int(time.time() * 1000)
        text = (
            f'<log4j:event logger={quoteattr(sample.logger)} timestamp="{stamp}" '
            f'level={quoteattr(sample.level)} thread="1">'
            f"<log4j:message>{escape(sample.message)}</log4j:message>"
            f"<log4j:properties>{data}</log4j:properties></log4j:event>\r\n"
        )
        return text.encode("utf-8")
    if sample.port_kind == "user":
        fields = [host, p["Command"], p["UserDirectory"], p["UserId"]]
        if layout == "tagged":
            fields = ["/proxy-session/", *fields, p["Origin"], p["Context"], sample.message]
        # Butler's legacy appenders had no <encoding>: log4net then sends windows-1252.
        return ";".join(fields).encode("utf-8" if layout == "tagged" else "cp1252")
    date = time.strftime("%Y-%m-%d %H:%M:%S,000")
    fields = [
        host,
        p["TaskName"],
        p["AppName"],
        p["User"],
        p["TaskId"],
        p["AppId"],
        date,
        sample.level,
        p["ExecutionId"],
        sample.message,
    ]
    if layout == "legacy":
        # Butler <= v4's 10-field failure line: it carries the execution id, so a second run
        # is not folded into the first as the 4-field line (no ids at all) would be.
        return ";".join(fields).encode("cp1252", errors="replace")
    tag = "/scheduler-task-aborted/" if "Aborting" in sample.message else "/scheduler-task-failed/"
    return ";".join([tag, *fields]).encode("utf-8")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def source_address(host: str, port: int) -> str:
    """The local address datagrams to host:port leave from, as the bridge will see it: the
    kernel's choice for a connected UDP socket (connecting sends nothing)."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        return str(sock.getsockname()[0])


def send_test_events(host: str, user_port: int, task_port: int, layout: Layout, server: str) -> int:
    """Send the burst; returns the number of datagrams sent."""
    samples = sample_events(server)
    if layout == "legacy":  # Butler <= v4 had no abort datagrams
        samples = [s for s in samples if "Aborting" not in s.message]
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        for sample in samples:
            port = user_port if sample.port_kind == "user" else task_port
            sock.sendto(render(sample, layout), (host, port))
    return len(samples)
