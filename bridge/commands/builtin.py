"""The commands the bridge takes today: acknowledge the failure flag, forget a server, start
a reload task (ours, and Butler's `start_task`).

To add one (`task/start`, say): declare a `Command` here (its topic, the config that enables
it, its button if Home Assistant should show one, its handler) and add it to `COMMANDS`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

import structlog

from bridge.commands.declare import Answer, Answers, Button, Command, Request, Tasks
from bridge.config import Config
from bridge.core.retry import retry_target
from bridge.core.state import TaskRecord
from bridge.core.task_ids import is_task_id
from bridge.qrs.allow import TaskKey
from bridge.qrs.reasons import NOT_STARTED, Reason
from discovery import CommandButton

log = structlog.get_logger("qlik2mqtt.commands")


def _log_refusal(request: Request, event: str, **fields: object) -> None:
    """A refusal, logged at most once a `REFUSAL_LOG_INTERVAL` per kind (per `Commands`)."""
    held_back = request.refusals.allow(event)
    if held_back is not None:
        log.warning(event, held_back=held_back or None, **fields)


def reply(
    error: str | None, data: dict[str, object] | None, transaction: object
) -> dict[str, object]:
    """An answer on `bridge/response/<name>`: ok, or the error; the data the request is about,
    if any; the caller's transaction, if it sent one."""
    answer: dict[str, object] = (
        {"status": "ok"} if error is None else {"status": "error", "error": error}
    )
    if data is not None:
        answer["data"] = data
    if transaction is not None:
        answer["transaction"] = transaction
    return answer


def _acknowledge(request: Request) -> Answer:
    """Any payload acknowledges (the button sends `acknowledge`); a JSON object's
    `transaction` comes back with the answer."""
    request.core.acknowledge("mqtt")
    return reply(None, None, _transaction(request.payload))


ACKNOWLEDGE = Command(
    name="acknowledge",
    topic="bridge/request/acknowledge",
    aliases=("bridge/acknowledge",),
    enabled=lambda config: config.commands.acknowledge,
    handle=_acknowledge,
    button=Button(
        key="acknowledge",
        entity_slug="qlik_sense_acknowledge_failure",
        name="Acknowledge failure",
        payload_press="acknowledge",
        icon="mdi:check-circle-outline",
        # The button keeps the topic it always pressed: a broker ACL that lets Home
        # Assistant write `bridge/acknowledge` (docs/qrs.md's) must not silence it.
        topic="bridge/acknowledge",
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
    if forgotten:
        return reply(None, {"server": forgotten}, transaction)
    if not server:
        return reply('no server named: send a host name or {"server": …}', None, transaction)
    return reply(f"no such server: {server}", None, transaction)


def _forget(request: Request) -> Answer:
    server, transaction = forget_request(request.payload)
    forgotten = request.core.forget(server, "mqtt") if server else None
    return forget_response(server, forgotten, transaction)


FORGET = Command(
    name="forget",
    topic="bridge/request/forget",
    aliases=("bridge/forget",),
    enabled=lambda config: config.commands.forget,
    handle=_forget,
)

TaskRef = tuple[TaskKey, str]
TASK_KEYS: tuple[TaskKey, ...] = ("id", "name")
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
        for key in TASK_KEYS
        if isinstance(value := data.get(key), str) and value.strip()
    ]
    if len(named) != 1 or any(key in data for key in TASK_KEYS if key != named[0][0]):
        return None, transaction
    return named[0], transaction


def task_start_answer(
    task: TaskRef | None, error: str | None, transaction: object
) -> dict[str, object]:
    """The answer on `bridge/response/task/start`: ok with the task as the request named it,
    or the reason (with the task, when the request named one)."""
    return reply(error, None if task is None else {task[0]: task[1]}, transaction)


async def _started(tasks: Tasks, task: TaskRef, transaction: object) -> Answer:
    reason = await tasks.start(*task)
    return task_start_answer(task, None if reason is None else reason.value, transaction)


def _start_task(request: Request) -> Answer | Awaitable[Answer]:
    task, transaction = task_start_request(request.payload)
    if task is None:
        return task_start_answer(None, BAD_TASK_REQUEST, transaction)
    if task[0] == "id" and not is_task_id(task[1]):
        _log_refusal(request, "task/start: not a task id", task_id=task[1][:64])
        return task_start_answer(("id", task[1][:64]), NOT_A_TASK_ID, transaction)
    if request.tasks is None:
        return task_start_answer(task, QRS_OFF, transaction)
    return _started(request.tasks, task, transaction)


TASK_START = Command(
    name="task/start",
    topic="bridge/request/task/start",
    enabled=lambda config: config.qrs.enabled,
    handle=_start_task,
)

NOTHING_TO_RETRY = "no failed task to retry"
RETRY_AVAILABLE = "{{ 'online' if value_json.task_id else 'offline' }}"


def _transaction(payload: bytes) -> object:
    """The `transaction` of a JSON object payload; None for anything else (the button's)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data.get("transaction") if isinstance(data, dict) else None


def retry_answer(record: TaskRecord | None, error: str | None, transaction: object) -> Answer:
    """The answer on `bridge/response/task/retry`: the task it started (or tried to), or why
    there was none."""
    if record is None:
        return reply(error, None, transaction)
    event = record.event
    data: dict[str, object] = {"id": event.task_id, "name": event.task_name, "server": event.server}
    return reply(error, data, transaction)


async def _retried(
    request: Request,
    tasks: Tasks,
    record: TaskRecord,
    started_at: float | None,
    transaction: object,
) -> Answer:
    task_id = record.event.task_id
    assert task_id is not None  # retry_target takes only those
    # The candidate came from a datagram: started only once QRS confirms the task it names.
    unconfirmed = await tasks.confirm(task_id, record.event.task_name)
    if unconfirmed is not None:
        if unconfirmed in (Reason.NOT_FOUND, Reason.NOT_THE_FAILED_TASK):
            request.core.retry_gone(task_id)  # no such task (forged, or deleted): the next
        elif started_at is not None:
            request.core.retry_unstarted(task_id, started_at)  # nothing was started
        return retry_answer(record, unconfirmed.value, transaction)
    reason = await tasks.start("id", task_id)
    if reason is Reason.NOT_FOUND:
        request.core.retry_gone(task_id)  # deleted in the QMC: the button offers the next
    elif reason in NOT_STARTED and started_at is not None:
        request.core.retry_unstarted(task_id, started_at)  # refused: offered again
    # Any other failure may have started the task: the retry stays pending for it.
    return retry_answer(record, None if reason is None else reason.value, transaction)


def _retry(request: Request) -> Answer | Awaitable[Answer]:
    transaction = _transaction(request.payload)
    tasks = request.tasks
    if tasks is None or request.state is None:
        return retry_answer(None, QRS_OFF, transaction)
    record = retry_target(request.state, lambda task_id: tasks.allowed("id", task_id))
    if record is None:
        _log_refusal(request, "retry: no failed task to retry")
        return retry_answer(None, NOTHING_TO_RETRY, transaction)
    assert record.event.task_id is not None  # retry_target takes only those
    # Pending from now, not from QRS's answer: a second press while QRS answers the first
    # (a double click, the retry automation and a person) finds nothing to start twice.
    started_at = request.core.retry_started(record.event.task_id)
    return _retried(request, tasks, record, started_at, transaction)


TASK_RETRY = Command(
    name="task/retry",
    topic="bridge/request/task/retry",
    enabled=lambda config: config.qrs.enabled,
    handle=_retry,
    button=Button(
        key="retry_failed_reload",
        entity_slug="qlik_sense_retry_failed_reload",
        name="Retry failed reload",
        payload_press="retry",
        icon="mdi:restart",
        available_when=("site/retry", RETRY_AVAILABLE),
    ),
)

MAX_BUTLER_IDS = 100
"""Task ids one `start_task` message may name; past it, none is started."""
TOO_MANY_IDS = f"bad request: more than {MAX_BUTLER_IDS} task ids"
NOT_A_TASK_ID = "bad request: not a task id"
QRS_OFF = "QRS is not configured (qrs.enabled)"


def butler_task_ids(payload: bytes) -> list[str]:
    """Butler's `start_task` payload: task ids separated by commas (one is the usual case);
    blanks around them and empty parts are dropped."""
    text = payload.decode("utf-8", errors="replace")
    return [part.strip() for part in text.split(",") if part.strip()]


async def _butler_started(request: Request, tasks: Tasks, ids: list[str]) -> Answers:
    answers: list[dict[str, object]] = []
    for task_id in ids:  # one after the other: each counts against the rate limit in order
        if not is_task_id(task_id):
            _log_refusal(request, "butler start_task: not a task id", task_id=task_id[:64])
            answers.append(task_start_answer(("id", task_id[:64]), NOT_A_TASK_ID, None))
            continue
        reason = await tasks.start("id", task_id)
        error = None if reason is None else reason.value
        answers.append(task_start_answer(("id", task_id), error, None))
    return answers


def _butler_start_task(request: Request) -> Answers | Awaitable[Answers]:
    ids = butler_task_ids(request.payload)
    if not ids:
        _log_refusal(request, "butler start_task: no task id in the payload")
        return task_start_answer(None, 'bad request: send task ids ("id1,id2")', None)
    if len(ids) > MAX_BUTLER_IDS:
        _log_refusal(request, "butler start_task: too many task ids", count=len(ids))
        return task_start_answer(None, TOO_MANY_IDS, None)
    if request.tasks is None:
        return [task_start_answer(("id", task_id[:64]), QRS_OFF, None) for task_id in ids]
    return _butler_started(request, request.tasks, ids)


BUTLER_START_TASK = Command(
    name="task/start",  # Butler answers nothing; the answers go where task/start's go
    topic="start_task",
    root=lambda config: config.butler_compat.base_topic,
    enabled=lambda config: config.butler_compat.enabled and config.qrs.enabled,
    handle=_butler_start_task,
)

COMMANDS: tuple[Command, ...] = (ACKNOWLEDGE, FORGET, TASK_START, TASK_RETRY, BUTLER_START_TASK)
"""Every command, in the order they are subscribed to and their buttons are announced."""


def command_buttons(config: Config) -> tuple[CommandButton, ...]:
    """The Home Assistant buttons of the commands that have one (off: to be removed)."""
    return tuple(
        CommandButton(
            key=command.button.key,
            entity_slug=command.button.entity_slug,
            name=command.button.name,
            command_topic=_button_topic(command, command.button, config),
            payload_press=command.button.payload_press,
            icon=command.button.icon,
            enabled=command.enabled(config),
            available_when=_available_when(command.button, config),
        )
        for command in COMMANDS
        if command.button is not None
    )


def _button_topic(command: Command, button: Button, config: Config) -> str:
    if button.topic is None:
        return command.topic_for(config)
    return f"{command.root(config)}/{button.topic}"


def _available_when(button: Button, config: Config) -> tuple[str, str] | None:
    if button.available_when is None:
        return None
    topic, template = button.available_when
    return f"{config.mqtt.base_topic}/{topic}", template
