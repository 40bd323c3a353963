"""The log-event entities' discovery configs (pure): their templates rendered against real
payloads, states within 255 characters and attributes under Home Assistant's 16 KiB."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import jinja2
import orjson
import pytest

from bridge.core.bounded import MESSAGE_BYTES, TEXT_BYTES, clip_text
from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    SourceFormat,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.log_payloads import log_event_payload
from bridge.core.payloads import event_payload, server_payload, site_payload
from bridge.core.state import BridgeState, StateSettings, acknowledge, apply_event
from discovery import DiscoverySettings, bridge_configs, server_configs
from discovery.configs import LOG_EVENT_TYPES

SETTINGS = DiscoverySettings(
    prefix="homeassistant", base_topic="qlik2mqtt", version="1", support_url="https://x.org"
)
CONFIGS = {
    p["default_entity_id"]: p
    for t, p in bridge_configs(SETTINGS) + server_configs(SETTINGS, "qswin01", "QSWIN01")
    if "device_automation" not in t
}
JINJA = jinja2.Environment(autoescape=False)
HA_MAX_ATTRIBUTE_BYTES = 16_384
HUGE = '€"<\\>&; ' * 8_000  # 64,000 characters, most of them more than a byte


def render(template: str, payload: dict[str, Any]) -> str:
    return JINJA.from_string(template).render(value_json=payload)


def log(level: LogLevel, source: LogSource, message: str, **fields: Any) -> LogEvent:
    return LogEvent(
        source=source,
        level=level,
        server="QSWIN01",
        source_format=SourceFormat.TAGGED,
        message=message,
        **fields,
    )


def logged_state() -> BridgeState:
    state = BridgeState()
    settings = StateSettings(stale_after=None, dedup_window=60, auto_clear_after=None)
    events = [
        log(LogLevel.WARN, LogSource.ENGINE, "slow"),
        log(LogLevel.WARN, LogSource.PROXY, "slow"),
        log(LogLevel.ERROR, LogSource.SCHEDULER, "Reload failed"),
        log(LogLevel.FATAL, LogSource.ENGINE, "Out of memory"),
        log(
            LogLevel.ERROR,
            LogSource.REPOSITORY,
            HUGE,
            subsystem="S" * 5_000,
            log_timestamp="T" * 5_000,
            category="licence",
        ),
    ]
    for now, event in enumerate(events, start=100):
        apply_event(state, event, float(now), settings)
    return state


def attributes(entity_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    rendered = json.loads(render(CONFIGS[entity_id]["json_attributes_template"], payload))
    assert isinstance(rendered, dict)
    assert len(orjson.dumps(rendered)) < HA_MAX_ATTRIBUTE_BYTES
    return rendered


def test_the_server_sensors_follow_the_counts_and_the_last_error() -> None:
    state = logged_state()
    server = server_payload(state.servers["qswin01"])
    value = CONFIGS["sensor.qlik_sense_qswin01_log_warnings"]["value_template"]
    assert render(value, server) == "2"
    errors = CONFIGS["sensor.qlik_sense_qswin01_log_errors"]
    assert render(errors["value_template"], server) == "3"  # errors and fatals
    assert attributes("sensor.qlik_sense_qswin01_log_errors", server) == {
        "errors": 2,
        "fatals": 1,
        "engine": 1,
        "proxy": 0,
        "repository": 1,
        "scheduler": 1,
    }
    last = CONFIGS["sensor.qlik_sense_qswin01_last_log_error"]
    assert render(last["value_template"], server) == HUGE[:255]
    shown = attributes("sensor.qlik_sense_qswin01_last_log_error", server)
    assert shown["category"] == "licence"
    assert (shown["level"], shown["source"]) == ("ERROR", "repository")
    assert shown["subsystem"] == "S" * 253 + "…"  # the state keeps TEXT_BYTES of it
    assert shown["time"] == "1970-01-01T00:01:44.000Z"


def test_the_last_error_sensor_before_any_error() -> None:
    state = BridgeState()
    apply_event(
        state, log(LogLevel.WARN, LogSource.PROXY, "x"), 1.0, StateSettings(None, 60.0, None)
    )
    server = server_payload(state.servers["qswin01"])
    last = CONFIGS["sensor.qlik_sense_qswin01_last_log_error"]
    assert render(last["value_template"], server) == "None"
    assert attributes("sensor.qlik_sense_qswin01_last_log_error", server) == {}


def test_the_event_entity_gets_the_level_and_clipped_texts() -> None:
    entity = CONFIGS["event.qlik_sense_qswin01_log_event"]
    assert entity["event_types"] == list(LOG_EVENT_TYPES)
    assert entity["state_topic"] == "qlik2mqtt/qswin01/event/log"
    for level in LogLevel:
        event = log(
            level,
            LogSource.ENGINE,
            HUGE,
            exception_message=HUGE,
            subsystem="S" * 5_000,
            task_name="T" * 5_000,
            category="out_of_memory",
        )
        rendered = json.loads(render(entity["value_template"], log_event_payload(event, 1.0)))
        if not level.counted:  # DEBUG, INFO: `{}`, which HA ignores (no event type to warn of)
            assert rendered == {}
            continue
        assert rendered["event_type"] == level.event_type
        assert rendered["category"] == "out_of_memory"
        assert rendered["message"] == HUGE[:1000]
        # The event's attributes: what the template gave, and the event types.
        stored = {**rendered, "event_types": entity["event_types"], "icon": entity["icon"]}
        assert len(orjson.dumps(stored)) < HA_MAX_ATTRIBUTE_BYTES


def test_the_site_sensors_and_the_log_error_flag_follow_acknowledge() -> None:
    state = logged_state()
    site = site_payload(state)
    errors = CONFIGS["sensor.qlik_sense_site_log_errors"]
    assert render(errors["value_template"], site) == "3"
    flag = CONFIGS["binary_sensor.qlik_sense_log_error"]
    assert flag["device_class"] == "problem"
    assert render(flag["value_template"], site) == flag["payload_on"]
    assert attributes("binary_sensor.qlik_sense_log_error", site) == {"categories": ["licence"]}
    acknowledge(state)
    site = site_payload(state)
    assert render(flag["value_template"], site) == flag["payload_off"]
    assert render(errors["value_template"], site) == "3"  # the window's counts stay


WORST_CHARACTERS = ["\U0001f600", "\x01", '"']
"""4 bytes in UTF-8; 6 in JSON (`\\u0001`); 2 in JSON (`\\"`)."""
ATTRIBUTE_MARGIN = 2_048
"""Room left under 16 KiB for what Home Assistant adds (friendly name, icon, …)."""


def stored_size(attributes: dict[str, Any], entity: dict[str, Any]) -> int:
    """The bytes Home Assistant's recorder would store: the attributes and its own keys."""
    extra = {"icon": entity.get("icon"), "friendly_name": "Qlik Sense " + "h" * 255 + " x"}
    return len(orjson.dumps({**attributes, **extra}))


def longest(cls: type[Any], char: str, **fixed: Any) -> dict[str, Any]:
    """Every text field of `cls` at the longest a datagram carries: 1,024 characters (an XML
    attribute), the message 8,192."""
    texts = {f.name: char * 1_024 for f in fields(cls) if f.type == "str | None"}
    return {**texts, "message": char * 8_192, **fixed}


@pytest.mark.parametrize("char", WORST_CHARACTERS)
def test_log_event_attributes_stay_under_16_kib_in_the_worst_case(char: str) -> None:
    entity = CONFIGS["event.qlik_sense_qswin01_log_event"]
    event = LogEvent(
        **longest(
            LogEvent,
            char,
            source=LogSource.SCHEDULER,
            level=LogLevel.FATAL,
            server="QSWIN01",
            source_format=SourceFormat.XML,
        )
    )
    rendered = json.loads(render(entity["value_template"], log_event_payload(event, 1.0)))
    assert rendered["app_id"] == char * 64
    stored = {**rendered, "event_types": entity["event_types"]}
    assert stored_size(stored, entity) < HA_MAX_ATTRIBUTE_BYTES - ATTRIBUTE_MARGIN

    state = BridgeState()
    apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
    name = "sensor.qlik_sense_qswin01_last_log_error"
    shown = attributes(name, server_payload(state.servers["qswin01"]))
    # What the state keeps (bridge.core.bounded), then what Home Assistant shows of it.
    assert shown["subsystem"] == clip_text(char * 1_024, TEXT_BYTES)[:255]
    assert stored_size(shown, CONFIGS[name]) < HA_MAX_ATTRIBUTE_BYTES - ATTRIBUTE_MARGIN


def worst_failure(char: str) -> BridgeState:
    """A state whose last failed task has every field at its longest, in `char`."""
    event = TaskEvent(
        **longest(
            TaskEvent,
            char,
            event_type=TaskEventType.TASK_FAILED,
            server="QSWIN01",
            source_format=SourceFormat.XML,
        )
    )
    state = BridgeState()
    apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
    return state


@pytest.mark.parametrize("char", WORST_CHARACTERS)
def test_last_failed_task_attributes_stay_under_16_kib_in_the_worst_case(char: str) -> None:
    state = worst_failure(char)
    name = "sensor.qlik_sense_qswin01_last_failed_task"
    shown = attributes(name, server_payload(state.servers["qswin01"]))
    assert shown["task_name"] == clip_text(char * 1_024, TEXT_BYTES)[:200]
    assert shown["message"] == clip_text(char * 8_192, MESSAGE_BYTES)[:800]
    assert stored_size(shown, CONFIGS[name]) < HA_MAX_ATTRIBUTE_BYTES - ATTRIBUTE_MARGIN


@pytest.mark.parametrize("char", WORST_CHARACTERS)
def test_user_and_task_event_attributes_stay_under_16_kib_in_the_worst_case(char: str) -> None:
    user = UserEvent(
        **longest(
            UserEvent,
            char,
            event_type=UserEventType.SESSION_START,
            server="QSWIN01",
            source_format=SourceFormat.XML,
        )
    )
    task = TaskEvent(
        **longest(
            TaskEvent,
            char,
            event_type=TaskEventType.TASK_FAILED,
            server="QSWIN01",
            source_format=SourceFormat.XML,
        )
    )
    pairs: list[tuple[str, UserEvent | TaskEvent]] = [
        ("user_activity", user),
        ("reload_task", task),
    ]
    for key, event in pairs:
        entity = CONFIGS[f"event.qlik_sense_qswin01_{key}"]
        rendered = json.loads(render(entity["value_template"], event_payload(event, 1.0)))
        assert rendered["event_type"] == event.event_type.value
        assert rendered["message"] == char * 800
        stored = {**rendered, "event_types": entity["event_types"]}
        assert stored_size(stored, entity) < HA_MAX_ATTRIBUTE_BYTES - ATTRIBUTE_MARGIN


def test_the_clipped_attributes_read_no_missing_key() -> None:
    """Home Assistant warns ("Template variable warning") about a key a payload lacks, as a
    task event without `session_id`: the templates read keys with `get`."""
    strict = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    task = TaskEvent(
        event_type=TaskEventType.TASK_FAILED, server="QSWIN01", source_format=SourceFormat.XML
    )
    state = BridgeState()
    apply_event(state, task, 1.0, StateSettings(None, 60.0, None))
    server = server_payload(state.servers["qswin01"])
    assert "session_id" not in server["last_failed_task"]
    for name, template, payload in [
        ("event.qlik_sense_qswin01_reload_task", "value_template", event_payload(task, 1.0)),
        ("sensor.qlik_sense_qswin01_last_failed_task", "json_attributes_template", server),
    ]:
        shown = json.loads(strict.from_string(CONFIGS[name][template]).render(value_json=payload))
        assert shown["session_id"] is None, name
