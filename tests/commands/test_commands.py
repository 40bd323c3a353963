"""The commands extension alone: declarations, subscriptions, handlers and answers, against the
in-memory link (tests/fakes.py). End to end through mosquitto: test_admin_commands and
test_homeassistant."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable

from structlog.testing import capture_logs

from bridge.commands.builtin import (
    COMMANDS,
    TASK_RETRY,
    TASK_START,
    butler_task_ids,
    command_buttons,
    task_start_request,
)
from bridge.commands.declare import Answer, Command, Request
from bridge.commands.handling import Commands
from bridge.config import Config
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.retry import retry_target
from bridge.core.state import (
    BridgeState,
    StateSettings,
    apply_event,
    retry_gone,
    retry_started,
    retry_unstarted,
)
from bridge.qrs.allow import TaskKey
from bridge.qrs.reasons import Reason
from tests.fakes import FakeLink, fake_context
from tests.helpers import QRS_NEEDS


class FakeCore:
    """Records what a handler asks; the retry calls also change `state` as the core would."""

    def __init__(self, servers: tuple[str, ...] = (), state: BridgeState | None = None) -> None:
        self.servers = set(servers)
        self.state = state or BridgeState()
        self.calls: list[tuple[str, ...]] = []

    def acknowledge(self, source: str) -> None:
        self.calls.append(("acknowledge", source))

    def forget(self, server: str, source: str) -> str | None:
        self.calls.append(("forget", server, source))
        slug = server.lower()
        return slug if slug in self.servers else None

    def retry_started(self, task_id: str) -> float | None:
        self.calls.append(("retry_started", task_id))
        return 2.0 if retry_started(self.state, task_id, 2.0).any else None

    def retry_gone(self, task_id: str) -> None:
        self.calls.append(("retry_gone", task_id))
        retry_gone(self.state, task_id)

    def retry_unstarted(self, task_id: str, started_at: float) -> None:
        self.calls.append(("retry_unstarted", task_id))
        retry_unstarted(self.state, task_id, started_at)


def commands(config: Config | None = None, core: FakeCore | None = None) -> Commands:
    return Commands(fake_context(config, FakeLink()), core or FakeCore())


def answers(extension: Commands) -> list[tuple[str, dict[str, object]]]:
    link = extension.context.link
    assert isinstance(link, FakeLink)
    return [(m.topic, json.loads(m.payload)) for m in link.published]


def test_each_enabled_command_is_subscribed_to_with_its_aliases() -> None:
    assert commands().subscriptions() == (
        "qlik2mqtt/bridge/request/acknowledge",
        "qlik2mqtt/bridge/acknowledge",
        "qlik2mqtt/bridge/request/forget",
        "qlik2mqtt/bridge/forget",
    )
    config = Config.model_validate({"commands": {"forget": False}, "mqtt": {"base_topic": "q"}})
    assert commands(config).subscriptions() == (
        "q/bridge/request/acknowledge",
        "q/bridge/acknowledge",
    )


def test_acknowledge_asks_the_core_and_answers_on_either_topic() -> None:
    core = FakeCore()
    extension = commands(core=core)
    extension.on_message("qlik2mqtt/bridge/acknowledge", b"anything")
    extension.on_message("qlik2mqtt/bridge/request/acknowledge", b'{"transaction": "t-1"}')
    assert core.calls == [("acknowledge", "mqtt"), ("acknowledge", "mqtt")]
    assert answers(extension) == [
        ("qlik2mqtt/bridge/response/acknowledge", {"status": "ok"}),
        ("qlik2mqtt/bridge/response/acknowledge", {"status": "ok", "transaction": "t-1"}),
    ]


def test_a_retained_command_is_never_run_counted_and_logged_once_per_topic() -> None:
    core = FakeCore(servers=("qsprod02",))
    extension = commands(core=core)
    with capture_logs() as logs:
        for _ in range(2):  # as at two reconnects
            extension.on_retained("qlik2mqtt/bridge/acknowledge", b"acknowledge")
            extension.on_retained("qlik2mqtt/bridge/request/forget", b"QSPROD02")
        extension.on_retained("qlik2mqtt/not/a/command", b"x")
    assert core.calls == []
    assert answers(extension) == []
    assert extension.context.stats.commands_retained_ignored == 4
    assert [(entry["topic"], entry["clear"]) for entry in logs] == [
        (
            "qlik2mqtt/bridge/acknowledge",
            "mosquitto_pub -r -n -t 'qlik2mqtt/bridge/acknowledge'",
        ),
        (
            "qlik2mqtt/bridge/request/forget",
            "mosquitto_pub -r -n -t 'qlik2mqtt/bridge/request/forget'",
        ),
    ]


def test_forget_answers_with_the_slug_or_the_reason_and_the_transaction() -> None:
    core = FakeCore(servers=("qsprod02",))
    extension = commands(core=core)
    extension.on_message(
        "qlik2mqtt/bridge/request/forget", b'{"server": "QSPROD02", "transaction": 7}'
    )
    extension.on_message("qlik2mqtt/bridge/forget", b"qsgone")
    extension.on_message("qlik2mqtt/bridge/forget", b" ")  # (an empty message is no command)
    extension.on_message("qlik2mqtt/bridge/forget", b"")
    assert answers(extension) == [
        (
            "qlik2mqtt/bridge/response/forget",
            {"status": "ok", "data": {"server": "qsprod02"}, "transaction": 7},
        ),
        (
            "qlik2mqtt/bridge/response/forget",
            {"status": "error", "error": "no such server: qsgone"},
        ),
        (
            "qlik2mqtt/bridge/response/forget",
            {"status": "error", "error": 'no server named: send a host name or {"server": …}'},
        ),
    ]
    assert core.calls == [("forget", "QSPROD02", "mqtt"), ("forget", "qsgone", "mqtt")]


def test_a_command_that_is_off_is_ignored() -> None:
    core = FakeCore()
    extension = commands(Config.model_validate({"commands": {"acknowledge": False}}), core)
    extension.on_message("qlik2mqtt/bridge/acknowledge", b"acknowledge")
    assert core.calls == []


def test_buttons_come_from_the_declarations() -> None:
    buttons = command_buttons(Config.model_validate({"commands": {"acknowledge": False}}))
    assert [(b.key, b.command_topic, b.enabled, b.available_when) for b in buttons] == [
        ("acknowledge", "qlik2mqtt/bridge/acknowledge", False, None),
        (
            "retry_failed_reload",
            "qlik2mqtt/bridge/request/task/retry",
            False,  # qrs.enabled is off
            ("qlik2mqtt/site/retry", "{{ 'online' if value_json.task_id else 'offline' }}"),
        ),
    ]
    assert [command.name for command in COMMANDS] == [
        "acknowledge",
        "forget",
        "task/start",
        "task/retry",
        "task/start",  # Butler's start_task, answered where ours is
    ]


async def test_a_slow_handler_answers_later_without_holding_the_loop() -> None:
    """How `task/start` (a call to Qlik Sense) fits: one more declaration, an async handler."""
    release = asyncio.Event()

    async def start(request: Request) -> Answer:
        await release.wait()
        return {"status": "ok", "data": json.loads(request.payload)}

    task_start = Command(
        name="task/start", topic="bridge/request/task/start", enabled=lambda _: True, handle=start
    )
    link = FakeLink()
    extension = Commands(fake_context(link=link), FakeCore(), (*COMMANDS, task_start))
    extension.on_message("qlik2mqtt/bridge/request/task/start", b'{"id": "abc"}')
    assert answers(extension) == []  # on_message returned at once
    release.set()
    await asyncio.wait_for(link.arrived.wait(), 5.0)
    assert answers(extension) == [
        ("qlik2mqtt/bridge/response/task/start", {"status": "ok", "data": {"id": "abc"}})
    ]
    await extension.stop()


def test_task_start_is_taken_only_when_qrs_is_on() -> None:
    assert "qlik2mqtt/bridge/request/task/start" not in commands().subscriptions()
    config = Config.model_validate(
        {
            **QRS_NEEDS,
            "qrs": {"enabled": True, "host": "qs", "client_cert": __file__, "client_key": __file__},
        }
    )
    assert "qlik2mqtt/bridge/request/task/start" in commands(config).subscriptions()


def test_a_task_start_request_names_one_task_by_id_or_by_name() -> None:
    assert task_start_request(b'{"id": " 6e4c ", "transaction": 3}') == (("id", "6e4c"), 3)
    assert task_start_request(b'{"name": "Reload Sales"}') == (("name", "Reload Sales"), None)
    for bad in (
        b'{"id": "a", "name": "b", "transaction": "t"}',
        b'{"id": "", "transaction": "t"}',
        b'{"id": 7, "transaction": "t"}',
        b'{"task": "a", "transaction": "t"}',
    ):
        assert task_start_request(bad) == (None, "t"), bad
    for bad in (b"6e4c", b"[1]", b"{"):
        assert task_start_request(bad) == (None, None), bad


QRS_ON = {"enabled": True, "host": "qs", "client_cert": __file__, "client_key": __file__}


def test_butlers_start_task_is_under_butlers_topic_and_needs_both_switches() -> None:
    butler = {"enabled": True, "base_topic": "qs"}
    both = Config.model_validate({**QRS_NEEDS, "qrs": QRS_ON, "butler_compat": butler})
    assert "qs/start_task" in commands(both).subscriptions()
    for one in ({**QRS_NEEDS, "qrs": QRS_ON}, {"butler_compat": butler}):
        assert not any(
            topic.endswith("/start_task")
            for topic in commands(Config.model_validate(one)).subscriptions()
        )


def test_butlers_payload_is_task_ids_separated_by_commas() -> None:
    assert butler_task_ids(b"6e4c") == ["6e4c"]
    assert butler_task_ids(b" a , b,,c \n") == ["a", "b", "c"]
    assert butler_task_ids(b" , ") == []


def test_a_butler_message_with_too_many_ids_starts_none() -> None:
    butler = {"enabled": True}
    extension = commands(
        Config.model_validate({**QRS_NEEDS, "qrs": QRS_ON, "butler_compat": butler})
    )
    ids = ",".join(f"6e4c8b3a-21f0-4f5e-9d7a-{n:012d}" for n in range(101))
    extension.on_message("qliksense/start_task", ids.encode())
    assert answers(extension) == [
        (
            "qlik2mqtt/bridge/response/task/start",
            {"status": "error", "error": "bad request: more than 100 task ids"},
        )
    ]


class FakeTasks:
    """Qlik Sense as the handlers see it: every task allowed, each start answered `reason`
    (once `answering` is set, when one is given)."""

    def __init__(
        self, reason: Reason | None = None, answering: asyncio.Event | None = None
    ) -> None:
        self.reason = reason
        self.answering = answering
        self.asked = asyncio.Event()
        self.started: list[tuple[str, str]] = []

    def allowed(self, key: TaskKey, value: str) -> bool:
        return True

    async def start(self, key: TaskKey, value: str) -> Reason | None:
        self.started.append((key, value))
        self.asked.set()
        if self.answering is not None:
            await self.answering.wait()
        return self.reason

    async def confirm(self, task_id: str, name: str | None) -> Reason | None:
        return None  # QRS knows every task as the failure named it (tests/test_task_retry.py)

    async def aclose(self) -> None:
        pass


def failed_state(task_id: str) -> BridgeState:
    state = BridgeState()
    failed = TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        task_name="Reload Sales",
        task_id=task_id,
        execution_id="e1",
    )
    apply_event(state, failed, 1.0, StateSettings(None, 60.0, None))
    return state


async def test_a_retry_is_pending_from_the_press_and_undone_only_by_a_refusal() -> None:
    task_id = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
    started, gone, unstarted = (
        ("retry_started", task_id),
        ("retry_gone", task_id),
        ("retry_unstarted", task_id),
    )
    for reason, calls, candidate in (
        (None, [started], False),  # started: not offered again until its outcome
        (Reason.NOT_FOUND, [started, gone], False),  # deleted in the QMC: dropped
        (Reason.TIMEOUT, [started], False),  # it may yet start: stays pending
        (Reason.UNREACHABLE, [started], False),  # perhaps closed after reading it: pending
        (Reason.QRS_ERROR, [started], False),  # a 5xx may come after the start: pending
        (Reason.RATE_LIMITED, [started, unstarted], True),  # refused: offered again
        (Reason.CERTIFICATE_REFUSED, [started, unstarted], True),  # never read: again
    ):
        core, tasks = FakeCore(state=failed_state(task_id)), FakeTasks(reason)
        answer = TASK_RETRY.handle(Request(b"retry", core, Config(), tasks, core.state))
        assert isinstance(answer, Awaitable)
        await answer
        assert core.calls == calls, reason
        offered = retry_target(core.state, lambda _: True) is not None
        assert offered is candidate, reason


async def test_a_second_press_while_qrs_answers_the_first_starts_nothing() -> None:
    task_id = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
    core = FakeCore(state=failed_state(task_id))
    tasks = FakeTasks(answering=asyncio.Event())
    first = TASK_RETRY.handle(Request(b"retry", core, Config(), tasks, core.state))
    assert isinstance(first, Awaitable)
    pending = asyncio.ensure_future(first)
    await tasks.asked.wait()  # the first start is at QRS, unanswered
    second = TASK_RETRY.handle(Request(b"retry", core, Config(), tasks, core.state))
    assert isinstance(second, dict)
    assert second["error"] == "no failed task to retry"
    assert tasks.answering is not None
    tasks.answering.set()
    answer = await pending
    assert isinstance(answer, dict)
    assert answer["status"] == "ok"
    assert tasks.started == [("id", task_id)]


def test_an_id_that_is_no_task_id_is_a_bad_request_not_a_refusal() -> None:
    tasks = FakeTasks()
    request = Request(b'{"id": "abc", "transaction": 1}', FakeCore(), Config(), tasks)
    assert TASK_START.handle(request) == {
        "status": "error",
        "error": "bad request: not a task id",
        "data": {"id": "abc"},
        "transaction": 1,
    }
    assert tasks.started == []


def test_each_commands_extension_limits_its_own_refusal_logs() -> None:
    config = Config.model_validate({**QRS_NEEDS, "qrs": QRS_ON})
    with capture_logs() as logs:
        for _ in range(2):  # two bridges in one process (tests do): each logs its first
            extension = Commands(fake_context(config, FakeLink()), FakeCore(), tasks=FakeTasks())
            extension.on_message("qlik2mqtt/bridge/request/task/retry", b"retry")
            extension.on_message("qlik2mqtt/bridge/request/task/retry", b"retry")
    refusals = [entry for entry in logs if entry["event"] == "retry: no failed task to retry"]
    assert len(refusals) == 2
