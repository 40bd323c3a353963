"""The inputs the bridge listens to: Qlik Sense's user activity, its reload tasks and the
warnings and errors of its services (log events).

All accept every format Butler's and Butler SOS's appenders and log4net's XML layout send
(`parse`), so a datagram reaches the bridge whichever port an appender file names.
"""

from __future__ import annotations

from bridge.inputs.declare import Input
from bridge.inputs.parse import parse_datagram

EVERY_SESSION_AND_TASK_FORMAT = (
    "Butler's plain and tagged semicolon lines, and log4net's XML layout (sessions, "
    "connections, reload tasks)"
)

USER_ACTIVITY = Input(
    name="user_activity",
    port=lambda udp: udp.user_activity_port,
    parse=parse_datagram,
    formats=EVERY_SESSION_AND_TASK_FORMAT,
)
TASKS = Input(
    name="tasks",
    port=lambda udp: udp.task_port,
    parse=parse_datagram,
    formats=EVERY_SESSION_AND_TASK_FORMAT,
)

LOG_EVENTS = Input(
    name="log_events",
    port=lambda udp: udp.log_port,
    parse=parse_datagram,
    formats="Butler SOS's log events (/qseow-engine/, /qseow-proxy/, /qseow-repository/, "
    "/qseow-scheduler/: every level) and QIX performance lines (/qseow-qix-perf/), "
    "and every session and task format",
)

INPUTS: tuple[Input, ...] = (USER_ACTIVITY, TASKS, LOG_EVENTS)
"""Every input, in the order their ports are bound."""
