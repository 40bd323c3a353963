"""Discovery payloads (pure): required keys, distinct ids, entity ids, templates that render."""

from __future__ import annotations

import json
import re
from typing import Any

import jinja2
import orjson
import pytest

from bridge.commands.builtin import command_buttons
from bridge.config import Config
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.payloads import server_payload, site_payload
from bridge.core.state import BridgeState, StateSettings, apply_event
from bridge.core.stats import Stats
from bridge.extensions.homeassistant import watched_tasks
from discovery import (
    DiscoverySettings,
    bridge_configs,
    server_configs,
    watched_task_configs,
    watched_task_removals,
)
from discovery.configs import LOG_EVENT_TYPES, TASK_EVENT_TYPES, USER_EVENT_TYPES
from tests.helpers import QRS_NEEDS

SETTINGS = DiscoverySettings(
    prefix="homeassistant",
    base_topic="qlik2mqtt",
    version="1.2.3",
    support_url="https://example.org/qlik2mqtt",
    buttons=command_buttons(Config()),  # the acknowledge button, as the defaults have it
)
ALL = [  # without the removals (an empty config): the retry button, with QRS off
    (topic, payload)
    for topic, payload in bridge_configs(SETTINGS) + server_configs(SETTINGS, "qswin01", "QSWIN01")
    if payload
]
ENTITIES = [(t, p) for t, p in ALL if "device_automation" not in t]
TRIGGERS = [(t, p) for t, p in ALL if "device_automation" in t]
TOPIC = re.compile(
    r"homeassistant/(sensor|binary_sensor|event|button|device_automation)/qlik2mqtt/[a-z0-9_-]+/config"
)
# Home Assistant's templates are Jinja2 with a few extras; these use only built-ins.
JINJA = jinja2.Environment(autoescape=False)


def render(template: str, payload: dict[str, Any]) -> str:
    return JINJA.from_string(template).render(value_json=payload)


def test_every_topic_is_a_per_entity_discovery_topic() -> None:
    assert all(TOPIC.fullmatch(topic) for topic, _ in ALL)
    assert len({topic for topic, _ in ALL}) == len(ALL)


def test_every_entity_has_identity_availability_device_and_origin() -> None:
    for topic, payload in ENTITIES:
        component = topic.split("/")[1]
        assert payload["unique_id"], topic
        assert payload["availability_topic"] == "qlik2mqtt/bridge/state"
        assert payload["device"]["identifiers"], topic
        assert payload["origin"] == {
            "name": "qlik2mqtt",
            "sw_version": "1.2.3",
            "support_url": "https://example.org/qlik2mqtt",
        }
        assert payload["default_entity_id"] == f"{component}.{payload['object_id']}"
        assert re.fullmatch(r"[a-z0-9_]+", payload["object_id"])
        assert payload["name"]
        assert not payload["name"].startswith(payload["device"]["name"])
        json.dumps(payload)
    assert len({p["unique_id"] for _, p in ENTITIES}) == len(ENTITIES)
    assert len({p["default_entity_id"] for _, p in ENTITIES}) == len(ENTITIES)


def test_entity_ids_read_as_documented() -> None:
    ids = {p["default_entity_id"] for _, p in ENTITIES}
    assert {
        "sensor.qlik_sense_qswin01_active_sessions",
        "sensor.qlik_sense_qswin01_active_users",
        "sensor.qlik_sense_qswin01_active_connections",
        "event.qlik_sense_qswin01_user_activity",
        "event.qlik_sense_qswin01_reload_task",
        "sensor.qlik_sense_qswin01_last_failed_task",
        "sensor.qlik_sense_qswin01_last_failed_task_log",
        "sensor.qlik_sense_qswin01_failed_tasks",
        "binary_sensor.qlik_sense_reload_failure",
        "button.qlik_sense_acknowledge_failure",
        "sensor.qlik_sense_site_active_sessions",
        "sensor.qlik_sense_site_active_users",
        "sensor.qlik_sense_site_active_connections",
        "binary_sensor.qlik2mqtt_problem",
        "sensor.qlik2mqtt_events_received",
        "sensor.qlik2mqtt_datagrams_rejected",
        "sensor.qlik2mqtt_outbox_depth",
        "sensor.qlik2mqtt_last_event",
        # log events (issue 16)
        "sensor.qlik_sense_qswin01_log_warnings",
        "sensor.qlik_sense_qswin01_log_errors",
        "sensor.qlik_sense_qswin01_last_log_error",
        "event.qlik_sense_qswin01_log_event",
        "sensor.qlik_sense_site_log_errors",
        "binary_sensor.qlik_sense_log_error",
    } == ids


def test_server_device_hangs_off_the_bridge() -> None:
    server = dict(server_configs(SETTINGS, "qswin01", "QSWIN01"))
    device = next(iter(server.values()))["device"]
    assert device["identifiers"] == ["qlik2mqtt_qswin01"]
    assert device["via_device"] == "qlik2mqtt_bridge"
    assert device["name"] == "Qlik Sense QSWIN01"
    bridge = next(iter(dict(bridge_configs(SETTINGS)).values()))["device"]
    assert bridge["identifiers"] == ["qlik2mqtt_bridge"]
    assert bridge["sw_version"] == "1.2.3"


def test_event_entities_list_every_event_type_the_topic_carries() -> None:
    events = {p["default_entity_id"]: p for t, p in ENTITIES if t.split("/")[1] == "event"}
    user = events["event.qlik_sense_qswin01_user_activity"]
    task = events["event.qlik_sense_qswin01_reload_task"]
    assert user["event_types"] == list(USER_EVENT_TYPES)
    assert user["state_topic"] == "qlik2mqtt/qswin01/event/user"
    assert set(task["event_types"]) == {e.value for e in TaskEventType}
    assert task["state_topic"] == "qlik2mqtt/qswin01/event/task"


def test_a_device_trigger_per_event_type() -> None:
    pairs = {(p["type"], p["subtype"]) for _, p in TRIGGERS}
    expected = (
        {(e, "user_activity") for e in USER_EVENT_TYPES}
        | {(e, "reload_task") for e in TASK_EVENT_TYPES}
        | {(e, "log_event") for e in LOG_EVENT_TYPES}
    )
    assert pairs == expected
    for _, payload in TRIGGERS:
        assert payload["automation_type"] == "trigger"
        assert payload["device"]["identifiers"] == ["qlik2mqtt_qswin01"]
        matched = render(payload["value_template"], {"event_type": payload["type"]})
        assert matched == payload["payload"]


def test_the_flag_and_the_button() -> None:
    by_id = {p["default_entity_id"]: p for _, p in ENTITIES}
    flag = by_id["binary_sensor.qlik_sense_reload_failure"]
    assert (flag["device_class"], flag["state_topic"]) == ("problem", "qlik2mqtt/site")
    assert render(flag["value_template"], {"reload_failure": "ON"}) == flag["payload_on"]
    button = by_id["button.qlik_sense_acknowledge_failure"]
    assert button["command_topic"] == "qlik2mqtt/bridge/acknowledge"


QRS_ON = Config.model_validate(
    {
        **QRS_NEEDS,
        "qrs": {"enabled": True, "host": "qs", "client_cert": __file__, "client_key": __file__},
    }
)


def test_the_retry_button_is_there_with_qrs_and_available_only_with_a_task_to_retry() -> None:
    off = dict(bridge_configs(SETTINGS))
    topic = "homeassistant/button/qlik2mqtt/retry_failed_reload/config"
    assert off[topic] == {}  # QRS off: an earlier button is removed
    settings = DiscoverySettings(
        "homeassistant", "qlik2mqtt", "1.2.3", "https://example.org", command_buttons(QRS_ON)
    )
    button = dict(bridge_configs(settings))[topic]
    assert button["default_entity_id"] == "button.qlik_sense_retry_failed_reload"
    assert button["name"] == "Retry failed reload"
    assert button["command_topic"] == "qlik2mqtt/bridge/request/task/retry"
    assert "availability_topic" not in button  # HA refuses both forms together
    assert button["availability_mode"] == "all"
    bridge, retry = button["availability"]
    assert bridge == {"topic": "qlik2mqtt/bridge/state"}
    assert retry["topic"] == button["json_attributes_topic"] == "qlik2mqtt/site/retry"
    assert render(retry["value_template"], {"task_id": "6e4c"}) == "online"
    assert render(retry["value_template"], {"task_id": None}) == "offline"


def busy_state() -> BridgeState:
    state = BridgeState()
    settings = StateSettings(stale_after=None, dedup_window=60, auto_clear_after=None)
    for who in ("anna", "jöran"):
        apply_event(
            state,
            UserEvent(
                event_type=UserEventType.SESSION_START,
                server="QSWIN01",
                source_format=SourceFormat.XML,
                user_directory="CORP",
                user_id=who,
            ),
            100.0,
            settings,
        )
    apply_event(
        state,
        TaskEvent(
            event_type=TaskEventType.TASK_FAILED,
            server="QSWIN01",
            source_format=SourceFormat.XML,
            task_name="Reload " + "x" * 400,
            app_name="A",
        ),
        101.0,
        settings,
    )
    return state


@pytest.mark.parametrize("busy", [True, False])
def test_value_templates_render_against_real_payloads(busy: bool) -> None:
    state = busy_state() if busy else BridgeState()
    payloads = {
        "qlik2mqtt/site": site_payload(state),
        "qlik2mqtt/bridge/stats": Stats(events=3).as_payload(outbox_depth=0),
        "qlik2mqtt/qswin01": server_payload(state.servers["qswin01"]) if busy else None,
    }
    rendered = {}
    for _, config in ENTITIES:
        payload = payloads.get(config.get("state_topic", ""))
        if payload is None or "value_template" not in config:
            continue
        value = render(config["value_template"], payload)
        rendered[config["default_entity_id"]] = value
        if "json_attributes_template" in config:
            assert isinstance(json.loads(render(config["json_attributes_template"], payload)), dict)
    assert rendered["binary_sensor.qlik_sense_reload_failure"] == ("ON" if busy else "OFF")
    assert rendered["sensor.qlik2mqtt_events_received"] == "3"
    if busy:
        assert rendered["sensor.qlik_sense_qswin01_active_sessions"] == "2"
        assert rendered["sensor.qlik_sense_qswin01_failed_tasks"] == "1"
        last = rendered["sensor.qlik_sense_qswin01_last_failed_task"]
        # The retained state keeps a name's first 256 bytes (bridge.core.bounded): within Home
        # Assistant's 255 characters, and marked clipped.
        assert last == "Reload " + "x" * 246 + "…"


HA_MAX_ATTRIBUTE_BYTES = 16_384
"""Home Assistant's recorder stores no attributes past this (MAX_STATE_ATTRS_BYTES), and warns."""


def sessions_attributes(names: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The server payload of these (directory, user) sessions, and the attributes Home
    Assistant's active-sessions sensor would store from it (its own keys included)."""
    state = BridgeState()
    for directory, who in names:
        event = UserEvent(
            event_type=UserEventType.SESSION_START,
            server="QSWIN01",
            source_format=SourceFormat.XML,
            user_directory=directory,
            user_id=who,
        )
        apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
    payload = server_payload(state.servers["qswin01"])
    sensor = next(p for _, p in ENTITIES if p["unique_id"] == "qlik2mqtt_qswin01_active_sessions")
    attributes = json.loads(render(sensor["json_attributes_template"], payload))
    stored = {
        **attributes,
        "state_class": sensor["state_class"],
        "unit_of_measurement": sensor["unit_of_measurement"],
        "icon": sensor["icon"],
        "friendly_name": "Qlik Sense QSWIN01 Active sessions",
    }
    return payload, stored


@pytest.mark.parametrize("length", [8, 250, 20_000])
def test_the_sessions_sensor_attributes_stay_under_16_kib_with_5000_users(length: int) -> None:
    """Long names with characters that take more than a byte each (`€`, `\\`, `"`)."""
    names = [("DOMÄNE", f'{number:05}"€' + "ü" * length) for number in range(5_000)]
    payload, stored = sessions_attributes(names)
    assert len(orjson.dumps(stored)) < HA_MAX_ATTRIBUTE_BYTES
    assert "users" not in payload  # the full list is on <server>/users, which no entity reads
    assert stored["user_count"] == 5_000
    assert stored["users_truncated"] is True
    shown = stored["users"]
    assert shown == payload["users_preview"] == sorted(shown)
    everyone = {f"DOMÄNE\\{who}" for _, who in names}
    assert set(shown) <= everyone
    if length < 1_000:
        assert len(shown) > 10
    else:
        assert shown == []  # one name alone would not fit: none, and the count still says


def test_a_small_site_shows_every_user() -> None:
    payload, stored = sessions_attributes([("CORP", "anna"), ("CORP", "bob")])
    assert stored["users"] == ["CORP\\anna", "CORP\\bob"] == payload["users_preview"]
    assert stored["user_count"] == 2
    assert stored["users_truncated"] is False


def test_a_watched_task_has_its_device_with_outcome_time_and_start() -> None:
    watch = {"tasks": {"watch": ["Reload Sales; daily", "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"]}}
    by_name, by_id = watched_tasks(
        Config.model_validate({**watch, **QRS_NEEDS, "qrs": QRS_ON.qrs.model_dump()})
    )
    configs = {p["default_entity_id"]: p for _, p in watched_task_configs(SETTINGS, by_name)}
    assert set(configs) == {
        "sensor.qlik_sense_task_reload_sales_daily_last_outcome",
        "sensor.qlik_sense_task_reload_sales_daily_last_outcome_at",
        "button.qlik_sense_task_reload_sales_daily_start",
    }
    outcome = configs["sensor.qlik_sense_task_reload_sales_daily_last_outcome"]
    assert outcome["device"]["name"] == "Qlik Sense task Reload Sales; daily"
    assert outcome["device"]["via_device"] == "qlik2mqtt_bridge"
    assert outcome["state_topic"] == "qlik2mqtt/tasks/reload_sales_daily"
    assert render(outcome["value_template"], {"outcome": None}) == "unknown"
    assert render(outcome["value_template"], {"outcome": "failed"}) == "failed"
    at = configs["sensor.qlik_sense_task_reload_sales_daily_last_outcome_at"]
    assert at["device_class"] == "timestamp"
    assert at["state_topic"] == "qlik2mqtt/tasks/reload_sales_daily/last_outcome_at"
    start = configs["button.qlik_sense_task_reload_sales_daily_start"]
    assert start["command_topic"] == "qlik2mqtt/bridge/request/task/start"
    assert json.loads(start["payload_press"]) == {"name": "Reload Sales; daily"}
    start_by_id = watched_task_configs(SETTINGS, by_id)[2][1]
    assert json.loads(start_by_id["payload_press"]) == {"id": by_id.entry}
    both = {"tasks": {"watch": [{"name": "Reload Sales", "id": by_id.entry}]}}
    (named_by_id,) = watched_tasks(
        Config.model_validate({**both, **QRS_NEEDS, "qrs": QRS_ON.qrs.model_dump()})
    )
    assert (named_by_id.entry, named_by_id.slug) == ("Reload Sales", "reload_sales")
    start_named = watched_task_configs(SETTINGS, named_by_id)[2][1]  # by id: survives a rename
    assert json.loads(start_named["payload_press"]) == {"id": by_id.entry}
    (no_qrs, _) = watched_tasks(Config.model_validate(watch))
    assert watched_task_configs(SETTINGS, no_qrs)[2][1] == {}  # no QRS: no Start button
    removals = watched_task_removals(SETTINGS, by_name.slug)
    assert [topic for topic, _ in removals] == [
        t for t, _ in watched_task_configs(SETTINGS, by_name)
    ]
    assert all(payload == {} for _, payload in removals)


def test_no_entity_reads_the_user_list() -> None:
    """`<server>/users` holds every name (~1 MB at 50,000 users): no entity may subscribe."""
    topics = {
        value
        for _, payload in ALL
        for key, value in payload.items()
        if key.endswith("_topic") and isinstance(value, str)
    }
    assert "qlik2mqtt/qswin01" in topics  # the state topic is read, as the check needs
    assert not {topic for topic in topics if topic.endswith("/users")}
