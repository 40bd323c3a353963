"""The commands the bridge takes today: acknowledge the failure flag, forget a server, start
a reload task (ours, and Butler's `start_task`).

To add one (`task/start`, say): declare a `Command` here (its topic, the config that enables
it, its button if Home Assistant should show one, its handler) and add it to `COMMANDS`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Literal

import structlog

from bridge.commands.declare import Answer, Answers, Button, Command, Request, Tasks
from bridge.config import Config
from bridge.qrs.allow import is_task_id
from discovery import CommandButton

log = structlog.get_logger("qlik2mqtt.commands")


def _acknowledge(request: Request) -> Answer:
    request.core.acknowledge("mqtt")
    return None


ACKNOWLEDGE = Command(
    name="acknowledge",
    topic="bridge/acknowledge",
    enabled=lambda config: config.commands.acknowledge,
    handle=_acknowledge,
    button=Button(
        key="acknowledge",
        entity_slug="qlik_sense_acknowledge_failure",
        name="Acknowledge failure",
        payload_press="acknowledge",
        icon="mdi:check-circle-outline",
    ),
)


def forget_request(payload: bytes) -> tuple[str, object]:
    """`forget`'s payload: a host name or slug as plain text (Butler-style), or JSON
    `{"server": "…", "transaction": …}`. Returns (server, transaction)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return "", None
        if isinstance(data, dict):
            server = data.get("server")
            return (server.strip() if isinstance(server, str) else ""), data.get("transaction")
    return text, None


def forget_response(server: str, forgotten: str | None, transaction: object) -> dict[str, object]:
    """The answer on `bridge/response/forget`: ok with the server's slug, or the reason."""
    answer: dict[str, object]
    if forgotten:
        answer = {"status": "ok", "data": {"server": forgotten}}
    elif not server:
        answer = {"status": "error", "error": 'no server named: send a host name or {"server": …}'}
    else:
        answer = {"status": "error", "error": f"no such server: {server}"}
    if transaction is not None:
        answer["transaction"] = transaction
    return answer


def _forget(request: Request) -> Answer:
    server, transaction = forget_request(request.payload)
    forgotten = request.core.forget(server, "mqtt") if server else None
    return forget_response(server, forgotten, transaction)


FORGET = Command(
    name="forget",
    topic="bridge/forget",
    enabled=lambda config: config.commands.forget,
    handle=_forget,
)

TaskRef = tuple[Literal["id", "name"], str]
BAD_TASK_REQUEST = 'bad request: send {"id": "<task id>"} or {"name": "<task name>"}'


def task_start_request(payload: bytes) -> tuple[TaskRef | None, object]:
    """`task/start`'s payload: JSON `{"id": …}` or `{"name": …}` (one of them, non-empty
    text) with an optional `transaction`. Returns (the task, or None: a bad request;
    transaction)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    transaction = data.get("transaction")
    named = [
        (key, value.strip())
        for key in ("id", "name")
        if isinstance(value := data.get(key), str) and value.strip()
    ]
    if len(named) != 1 or any(key in data for key in ("id", "name") if key != named[0][0]):
        return None, transaction
    key, value = named[0]
    return ("id" if key == "id" else "name", value), transaction


def task_start_answer(
    task: TaskRef | None, error: str | None, transaction: object
) -> dict[str, object]:
    """The answer on `bridge/response/task/start`: ok with the task as the request named it,
    or the reason (with the task, when the request named one)."""
    answer: dict[str, object] = (
        {"status": "ok"} if error is None else {"status": "error", "error": error}
    )
    if task is not None:
        answer["data"] = {task[0]: task[1]}
    if transaction is not None:
        answer["transaction"] = transaction
    return answer


async def _started(tasks: Tasks, task: TaskRef, transaction: object) -> Answer:
    reason = await tasks.start(*task)
    return task_start_answer(task, None if reason is None else reason.value, transaction)


def _start_task(request: Request) -> Answer | Awaitable[Answer]:
    task, transaction = task_start_request(request.payload)
    if task is None:
        return task_start_answer(None, BAD_TASK_REQUEST, transaction)
    if request.tasks is None:
        return task_start_answer(task, QRS_OFF, transaction)
    return _started(request.tasks, task, transaction)


TASK_START = Command(
    name="task/start",
    topic="bridge/request/task/start",
    enabled=lambda config: config.qrs.enabled,
    handle=_start_task,
)

NOT_A_TASK_ID = "bad request: not a task id"
QRS_OFF = "QRS is not configured (qrs.enabled)"


def butler_task_ids(payload: bytes) -> list[str]:
    """Butler's `start_task` payload: task ids separated by commas (one is the usual case);
    blanks around them and empty parts are dropped."""
    text = payload.decode("utf-8", errors="replace")
    return [part.strip() for part in text.split(",") if part.strip()]


async def _butler_started(tasks: Tasks, ids: list[str]) -> Answers:
    answers: list[dict[str, object]] = []
    for task_id in ids:  # one after the other: each counts against the rate limit in order
        if not is_task_id(task_id):
            log.warning("butler start_task: not a task id", task_id=task_id[:64])
            answers.append(task_start_answer(("id", task_id), NOT_A_TASK_ID, None))
            continue
        reason = await tasks.start("id", task_id)
        error = None if reason is None else reason.value
        answers.append(task_start_answer(("id", task_id), error, None))
    return answers


def _butler_start_task(request: Request) -> Answers | Awaitable[Answers]:
    ids = butler_task_ids(request.payload)
    if not ids:
        log.warning("butler start_task: no task id in the payload")
        return task_start_answer(None, 'bad request: send task ids ("id1,id2")', None)
    if request.tasks is None:
        return [task_start_answer(("id", task_id), QRS_OFF, None) for task_id in ids]
    return _butler_started(request.tasks, ids)


BUTLER_START_TASK = Command(
    name="task/start",  # Butler answers nothing; the answers go where task/start's go
    topic="start_task",
    root=lambda config: config.butler_compat.base_topic,
    enabled=lambda config: config.butler_compat.enabled and config.qrs.enabled,
    handle=_butler_start_task,
)

COMMANDS: tuple[Command, ...] = (ACKNOWLEDGE, FORGET, TASK_START, BUTLER_START_TASK)
"""Every command, in the order they are subscribed to and their buttons are announced."""


def command_buttons(config: Config) -> tuple[CommandButton, ...]:
    """The Home Assistant buttons of the commands that have one (off: to be removed)."""
    return tuple(
        CommandButton(
            key=command.button.key,
            entity_slug=command.button.entity_slug,
            name=command.button.name,
            command_topic=command.topic_for(config),
            payload_press=command.button.payload_press,
            icon=command.button.icon,
            enabled=command.enabled(config),
        )
        for command in COMMANDS
        if command.button is not None
    )
