"""A failure's context as the outputs show it (issue 26): `event/task_context`, the summary
kept with the last failed task, and its Home Assistant attributes (under 16 KiB however long
every text QRS sends)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest

from bridge.config import Config
from bridge.core.bounded import MESSAGE_BYTES, TEXT_BYTES, clip_text
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.payloads import server_payload, site_payload
from bridge.core.privacy import Privacy
from bridge.core.state import BridgeState, Change, StateSettings, apply_event
from bridge.core.task_context import Failure, failure_of, private, summary
from bridge.extensions.alerts import AlertOutputs
from bridge.extensions.task_context import TaskContextTopics
from tests.extensions.test_discovery_log_events import (
    ATTRIBUTE_MARGIN,
    CONFIGS,
    HA_MAX_ATTRIBUTE_BYTES,
    WORST_CHARACTERS,
    render,
    stored_size,
    worst_failure,
)
from tests.fakes import FakeLink, fake_context

LAST = "sensor.qlik_sense_qswin01_last_failed_task"
LOG = "sensor.qlik_sense_qswin01_last_failed_task_log"
FLAG = "binary_sensor.qlik_sense_reload_failure"


def a_context(char: str = "x", length: int = 10, lines: int = 20) -> dict[str, Any]:
    text = char * length
    return {
        "server": "QSWIN01",
        "event_type": "task_failed",
        "task_id": "t-1",
        "execution_id": "e-1",
        "status": "complete",
        "reason": None,
        "task": {
            "name": "Reload Sales",
            "tags": [text] * 30,
            "custom_properties": {text: [text] * 30},
        },
        "app": {
            "id": "a-1",
            "name": text,
            "owner": {"name": text, "user_directory": text, "user_id": text, "id": "u"},
            "stream": text,
            "stream_id": "s",
            "published": True,
            "publish_time": None,
            "tags": [text] * 30,
            "custom_properties": {},
        },
        "execution": {
            "id": "r-1",
            "status": "FinishedFail",
            "start_time": None,
            "stop_time": None,
            "duration_ms": 42000,
            "node": text,
            "details": [],
        },
        "script_log": {"lines": [text] * lines, "truncated": True, "source": "scriptlogfile"},
        "folded_into": None,
    }


def failed(**fields: Any) -> TaskEvent:
    values: dict[str, Any] = {
        "event_type": TaskEventType.TASK_FAILED,
        "server": "QSWIN01",
        "source_format": SourceFormat.TAGGED,
        "task_name": "Reload Sales",
        "task_id": "t-1",
        "execution_id": "e-1",
        **fields,
    }
    return TaskEvent(**values)


class Source:
    """A `TaskContextSource` whose futures the test settles."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.closed = False

    def context_for(self, failure: Failure) -> asyncio.Future[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return self.futures.setdefault(failure.key, loop.create_future())

    def known(self, failure: Failure) -> dict[str, Any] | None:
        return None

    async def aclose(self) -> None:
        self.closed = True


async def test_the_context_is_published_and_kept_with_the_last_failed_task() -> None:
    state = BridgeState()
    extension, link, source, changes = topics_for(state)
    event = failed()
    apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
    extension.on_event(event, 1.0)
    assert link.queued == []  # nothing waits for QRS: the context comes when it comes
    source.futures["e-1"].set_result(a_context())
    await asyncio.sleep(0)  # the done callback runs on the loop
    (message,) = link.queued
    assert message.topic == "qlik2mqtt/qswin01/event/task_context"
    published = json.loads(message.payload)
    assert published["task"]["tags"][0] == "x" * 10
    assert published["execution_id"] == "e-1"
    assert published["task_name"] == "Reload Sales"
    kept = site_payload(state)["last_failed_task"]["context"]
    assert kept == server_payload(state.servers["qswin01"])["last_failed_task"]["context"]
    assert kept["app_owner"] == "xxxxxxxxxx (xxxxxxxxxx\\xxxxxxxxxx)"
    assert kept["log_tail"].endswith("x" * 10)
    assert changes == [Change(servers=frozenset({"qswin01"}), site=True)]
    await extension.stop()
    assert source.closed


async def test_a_context_of_an_older_failure_changes_no_state() -> None:
    state = BridgeState()
    extension, link, source, changes = topics_for(state)
    first, second = failed(), failed(task_id="t-2", execution_id="e-2", task_name="Other")
    for event in (first, second):
        apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
        extension.on_event(event, 1.0)
    source.futures["e-1"].set_result(a_context())
    await asyncio.sleep(0)
    assert len(link.queued) == 1  # published on its topic all the same
    assert "context" not in site_payload(state)["last_failed_task"]
    assert changes == []


def topics_for(
    state: BridgeState,
) -> tuple[TaskContextTopics, FakeLink, Source, list[Change]]:
    """The extension on `state`, with a link, a context source and the changes it reports."""
    link = FakeLink()
    changes: list[Change] = []
    context = fake_context(link=link, state=state)
    source = Source()
    extension = TaskContextTopics(
        type(context)(**{**_fields(context), "changed": changes.append}), source
    )
    return extension, link, source, changes


def _fields(context: Any) -> dict[str, Any]:
    return {name: getattr(context, name) for name in context.__dataclass_fields__}


def test_successes_ask_no_context() -> None:
    assert failure_of(failed(event_type=TaskEventType.TASK_SUCCEEDED)) is None
    aborted = failure_of(failed(event_type=TaskEventType.TASK_ABORTED))
    assert aborted is not None
    assert aborted.key == "e-1"


def test_the_owner_follows_privacy() -> None:
    context = a_context()
    context["app"]["owner"]["user_id"] = "anna"
    context["script_log"]["lines"] = ["Reload by CORP\\svc_reload for anna", "ok"]
    context["execution"]["details"] = [{"type": "error", "message": "anna's app", "at": None}]
    hidden = private(context, Privacy("omitted"), "svc_reload")
    assert hidden["app"]["owner"]["name"] is None
    assert hidden["app"]["owner"]["user_id"] is None
    assert hidden["script_log"]["lines"][0] == "Reload by CORP\\[user] for [user]"
    assert hidden["execution"]["details"][0]["message"] == "[user]'s app"
    assert context["script_log"]["lines"][0].endswith("anna")  # the original is untouched
    assert private(context) is context


@pytest.mark.parametrize("char", WORST_CHARACTERS)
def test_context_attributes_stay_under_16_kib_in_the_worst_case(char: str) -> None:
    state = worst_failure(char)
    assert state.last_failed_task is not None
    state.last_failed_task.context = summary(a_context(char, 1_024, 200))
    server = server_payload(state.servers["qswin01"])
    for name, payload in ((LAST, server), (LOG, server), (FLAG, site_payload(state))):
        shown = json.loads(render(CONFIGS[name]["json_attributes_template"], payload))
        assert stored_size(shown, CONFIGS[name]) < HA_MAX_ATTRIBUTE_BYTES - ATTRIBUTE_MARGIN, name
    log = json.loads(render(CONFIGS[LOG]["json_attributes_template"], server))
    assert log["log_tail"].endswith(char * 10)  # a log's end is what is kept of it
    # What the state keeps (bridge.core.bounded), then what Home Assistant shows of it.
    stream = char * 199 + "…"  # the summary keeps 200 characters (bridge.core.task_context)
    assert log["stream"] == clip_text(stream, TEXT_BYTES)[:128]
    assert render(CONFIGS[LOG]["value_template"], server) == "complete"
    last = json.loads(render(CONFIGS[LAST]["json_attributes_template"], server))
    assert last["stream"] == clip_text(stream, TEXT_BYTES)[:100]
    assert last["message"] == clip_text(char * 8_192, MESSAGE_BYTES)[:800]
    assert len(orjson.dumps(server["last_failed_task"]["context"])) < HA_MAX_ATTRIBUTE_BYTES


def test_without_a_context_the_attributes_read_none() -> None:
    state = BridgeState()
    apply_event(state, failed(), 1.0, StateSettings(None, 60.0, None))
    server = server_payload(state.servers["qswin01"])
    last = json.loads(render(CONFIGS[LAST]["json_attributes_template"], server))
    assert last["task_name"] == "Reload Sales"
    assert last["app_owner"] is None
    assert json.loads(render(CONFIGS[LOG]["json_attributes_template"], server)) == {}
    assert render(CONFIGS[LOG]["value_template"], server) == "None"


@pytest.mark.parametrize(("tag", "shown"), [("x" * 10, b"ON"), ("Nightly", b"OFF")])
async def test_a_filtered_lamp_decides_again_after_a_restart(tag: str, shown: bytes) -> None:
    """The restored state has an unacknowledged failure: the filtered lamp asks for its
    context at start and, once decided, says ON if it passes, OFF if not, and nothing before
    (a retained lamp went OFF at the connect, then ON: a flicker)."""
    state = BridgeState()
    apply_event(state, failed(), 1.0, StateSettings(None, 60.0, None))  # as restored
    config = Config.model_validate(
        {
            "alerts": {
                "outputs": [{"topic": "lamp", "on": "ON", "off": "OFF", "filter": {"tags": [tag]}}]
            }
        }
    )
    link = FakeLink()
    source = Source()
    context = fake_context(config=config, link=link, state=state)
    outputs = AlertOutputs(type(context)(**{**_fields(context), "task_contexts": source}))
    outputs.start()
    outputs.on_connect()
    assert link.payloads("lamp") == []  # not yet decided: left as it was (no OFF flicker)
    source.futures["e-1"].set_result(a_context())
    for _ in range(5):
        await asyncio.sleep(0)
    assert link.payloads("lamp") == [shown]
    await outputs.stop()
