"""The discovery configs, one builder per entity kind, all through `_entity` for the shared keys.

Per-entity discovery topics (`<prefix>/<component>/<node_id>/<object_id>/config`) work from Home
Assistant 2024.3 on. Entity ids are suggested twice: `default_entity_id` (HA >= 2025.10) and
`object_id` (older releases); each release ignores the key it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bridge.core.topics import Topics

USER_EVENT_TYPES = ("session_start", "session_stop", "connection_open", "connection_close")
TASK_EVENT_TYPES = (
    "task_failed",
    "task_aborted",
    "task_succeeded",
    "distribute_finished",
    "engine_reload_failed",
)
LOG_EVENT_TYPES = ("log_warning", "log_error", "log_fatal")
_ALERT_LOG_EVENT = f"(value_json if value_json.event_type in {list(LOG_EVENT_TYPES)} else none)"
"""The log event on `event/log` when it is a warning or an error (the entity's event types)."""
_NOT_ENTITY_ID = re.compile(r"[^a-z0-9_]+")

DiscoveryMessage = tuple[str, dict[str, Any]]
"""(config topic, payload); an empty payload (`{}`) means: remove this config."""


@dataclass(frozen=True, slots=True)
class CommandButton:
    """A button on the bridge device that publishes a command (declared with the command)."""

    key: str
    entity_slug: str
    name: str
    command_topic: str
    payload_press: str
    icon: str
    enabled: bool = True
    """False: the command is switched off, and a button announced earlier is removed."""
    available_when: tuple[str, str] | None = None
    """(topic, template giving `online`/`offline`): also needed for the button to be available;
    the topic's JSON is its attributes (the retry button: which task it would start)."""


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    prefix: str
    base_topic: str
    version: str
    support_url: str
    buttons: tuple[CommandButton, ...] = ()
    """The commands' buttons, after the failure flag (the acknowledge button, …)."""

    @property
    def node_id(self) -> str:
        """Names this bridge in discovery topics and unique ids (from the base topic)."""
        return _NOT_ENTITY_ID.sub("_", self.base_topic.lower()).strip("_") or "qlik2mqtt"

    @property
    def bridge_identifier(self) -> str:
        return f"{self.node_id}_bridge"

    @property
    def topics(self) -> Topics:
        """The bridge's own topics, which the entities read."""
        return Topics(self.base_topic)

    @property
    def availability_topic(self) -> str:
        return self.topics.bridge_state

    @property
    def status_topic(self) -> str:
        """Home Assistant's birth/will topic: `online` after HA (re)started."""
        return f"{self.prefix}/status"


def _entity_slug(text: str) -> str:
    return _NOT_ENTITY_ID.sub("_", text.lower()).strip("_")


def _origin(settings: DiscoverySettings) -> dict[str, str]:
    return {
        "name": "qlik2mqtt",
        "sw_version": settings.version,
        "support_url": settings.support_url,
    }


def _entity(
    settings: DiscoverySettings,
    device: dict[str, Any],
    component: str,
    unique_key: str,
    entity_slug: str,
    name: str,
    config: dict[str, Any],
) -> DiscoveryMessage:
    object_id = _entity_slug(entity_slug)
    payload: dict[str, Any] = {
        "name": name,
        "unique_id": f"{settings.node_id}_{unique_key}",
        "object_id": object_id,
        "default_entity_id": f"{component}.{object_id}",
        "availability_topic": settings.availability_topic,
        "device": device,
        "origin": _origin(settings),
        **config,
    }
    topic = f"{settings.prefix}/{component}/{settings.node_id}/{unique_key}/config"
    return topic, payload


def _server_device(settings: DiscoverySettings, slug: str, host: str) -> dict[str, Any]:
    return {
        "identifiers": [f"{settings.node_id}_{slug}"],
        "name": f"Qlik Sense {host}",
        "manufacturer": "Qlik",
        "model": "Qlik Sense Enterprise node",
        "via_device": settings.bridge_identifier,
    }


def _bridge_device(settings: DiscoverySettings) -> dict[str, Any]:
    return {
        "identifiers": [settings.bridge_identifier],
        "name": "qlik2mqtt",
        "manufacturer": "qlik2mqtt",
        "model": "Qlik Sense to MQTT bridge",
        "sw_version": settings.version,
    }


# Attributes that carry an event's text: every one clipped, so that the worst case (every
# field at its longest, every character 6 bytes in JSON: a control character as \u0001) stays
# under Home Assistant's 16,384 bytes of attributes with room for its own keys.

_ID = 64
_TASK_ATTRIBUTES = {
    "event_type": _ID,
    "server": 255,
    "task_name": 200,
    "app_name": 200,
    "user": 128,
    "task_id": _ID,
    "app_id": _ID,
    "execution_id": _ID,
    "session_id": _ID,
    "log_timestamp": _ID,
    "log_level": 16,
    "message": 800,
    "timestamp": _ID,
}
_USER_ATTRIBUTES = {
    "event_type": _ID,
    "server": 255,
    "user_directory": 128,
    "user_id": 128,
    "origin": 255,
    "context": 255,
    "message": 800,
    "log_timestamp": _ID,
    "timestamp": _ID,
}
_LOG_EVENT_ATTRIBUTES = {
    "event_type": 16,
    "level": 16,
    "source": 16,
    "category": _ID,
    "subsystem": 255,
    "message": 1000,
    "exception_message": 500,
    "task_name": 200,
    "app_id": _ID,
    "log_timestamp": _ID,
}
_LAST_ERROR_ATTRIBUTES = {
    "level": 16,
    "source": 16,
    "subsystem": 255,
    "time": _ID,
    "log_timestamp": _ID,
    "category": _ID,
}


_CONTEXT_ATTRIBUTES = {"app_owner": 100, "stream": 100}
"""What the last failed task's attributes add from its QRS context (issue 26): the rest, and
the log tail, are on the `Last failed task log` sensor, which has 16 KiB of its own."""
_CONTEXT_LOG_ATTRIBUTES = {
    "status": 16,
    "reason": 200,
    "app_owner": 128,
    "stream": 128,
    "task_tags": 200,
    "app_tags": 200,
    "custom_properties": 300,
    "execution_status": 16,
    "executing_node": 64,
    "execution_id": _ID,
    "log_tail": 800,
}
_LAST_CONTEXT = "(value_json.last_failed_task or {}).get('context')"


def _last_failed_attributes() -> str:
    """The last failed task's event attributes and, once it arrived, its context's owner and
    stream (`c`), each text clipped."""
    keys = ", ".join(
        [
            f"'{key}': (o.get('{key}') or '')[:{limit}] or None"
            for key, limit in _TASK_ATTRIBUTES.items()
        ]
        + [
            f"'{key}': (c.get('{key}') or '')[:{limit}] or None"
            for key, limit in _CONTEXT_ATTRIBUTES.items()
        ]
    )
    return (
        "{% set o = value_json.last_failed_task or {} %}{% set c = o.get('context') or {} %}"
        f"{{{{ {{{keys}}} | tojson if o else '{{}}' }}}}"
    )


def _clipped_attributes(source: str, limits: dict[str, int]) -> str:
    """A template giving `source`'s keys in `limits` as a JSON object, each text clipped to its
    limit (a missing or empty one null: read with `get`, since Home Assistant warns about a
    missing key); `{}` when `source` is null."""
    keys = ", ".join(
        f"'{key}': (o.get('{key}') or '')[:{limit}] or None" for key, limit in limits.items()
    )
    return f"{{% set o = {source} or {{}} %}}{{{{ {{{keys}}} | tojson if o else '{{}}' }}}}"


def server_configs(settings: DiscoverySettings, slug: str, host: str) -> list[DiscoveryMessage]:
    """Every entity and device trigger of one Qlik Sense server (slug: topic-safe name)."""
    device = _server_device(settings, slug, host)
    topics = settings.topics
    state_topic = topics.server(slug)
    user_topic = topics.user_event(slug)
    task_topic = topics.task_event(slug)
    prefix = f"qlik_sense_{slug}"

    def sensor(key: str, name: str, icon: str, **config: Any) -> DiscoveryMessage:
        return _entity(
            settings,
            device,
            "sensor",
            f"{slug}_{key}",
            f"{prefix}_{key}",
            name,
            {"state_topic": state_topic, "icon": icon, **config},
        )

    def counter(key: str, name: str, icon: str, unit: str, **config: Any) -> DiscoveryMessage:
        return sensor(
            key,
            name,
            icon,
            value_template=f"{{{{ value_json.{key} }}}}",
            state_class="measurement",
            unit_of_measurement=unit,
            **config,
        )

    def event(
        key: str, name: str, icon: str, topic: str, types: tuple[str, ...], shown: dict[str, int]
    ) -> DiscoveryMessage:
        return _entity(
            settings,
            device,
            "event",
            f"{slug}_{key}",
            f"{prefix}_{key}",
            name,
            {
                "state_topic": topic,
                "event_types": list(types),
                "icon": icon,
                # The event's keys become its attributes: every text clipped, under 16 KiB.
                "value_template": _clipped_attributes("value_json", shown),
            },
        )

    messages = [
        counter(
            "active_sessions",
            "Active sessions",
            "mdi:account-multiple",
            "sessions",
            json_attributes_topic=state_topic,
            # A bounded list: HA stores at most 16 KiB of attributes. The full list is on
            # `<server>/users`, which no entity reads (50,000 names are ~1 MB).
            json_attributes_template=(
                "{{ {'users': value_json.users_preview, "
                "'user_count': value_json.active_users, "
                "'users_truncated': value_json.users_truncated} | tojson }}"
            ),
        ),
        counter("active_users", "Active users", "mdi:account-group", "users"),
        counter("active_connections", "Active connections", "mdi:lan-connect", "connections"),
        event(
            "user_activity",
            "User activity",
            "mdi:account-switch",
            user_topic,
            USER_EVENT_TYPES,
            _USER_ATTRIBUTES,
        ),
        event(
            "reload_task",
            "Reload task",
            "mdi:database-refresh",
            task_topic,
            TASK_EVENT_TYPES,
            _TASK_ATTRIBUTES,
        ),
        sensor(
            "last_failed_task",
            "Last failed task",
            "mdi:alert-circle-outline",
            value_template=(
                "{{ value_json.last_failed_task.task_name[:255] "
                "if value_json.last_failed_task and value_json.last_failed_task.task_name "
                "else None }}"
            ),
            json_attributes_topic=state_topic,
            json_attributes_template=_last_failed_attributes(),
        ),
        sensor(
            "last_failed_task_log",
            "Last failed task log",
            "mdi:text-box-search-outline",
            # The context's status (complete, partial, folded, unavailable); its app, owner,
            # stream, tags, custom properties and the script log's tail as attributes.
            value_template=f"{{{{ ({_LAST_CONTEXT} or {{}}).get('status') or None }}}}",
            json_attributes_topic=state_topic,
            json_attributes_template=_clipped_attributes(_LAST_CONTEXT, _CONTEXT_LOG_ATTRIBUTES),
        ),
        sensor(
            "failed_tasks",
            "Failed tasks",
            "mdi:counter",
            value_template="{{ value_json.failed_tasks }}",
            state_class="total_increasing",
        ),
    ]
    for event_type in USER_EVENT_TYPES:
        messages.append(_trigger(settings, device, slug, user_topic, event_type, "user_activity"))
    for event_type in TASK_EVENT_TYPES:
        messages.append(_trigger(settings, device, slug, task_topic, event_type, "reload_task"))
    messages.extend(_server_log_configs(settings, device, slug))
    return messages


# Log events (issue 16): their own block, so other entities are added beside them, not in them.

_LAST_ERROR = "value_json.log_events.last_error"
_ERRORS = "(value_json.log_events.{0}errors + value_json.log_events.{0}fatals)"


def _server_log_configs(
    settings: DiscoverySettings, device: dict[str, Any], slug: str
) -> list[DiscoveryMessage]:
    """A server's log events: warnings and errors in the window, the last error, an event
    entity of the three levels, and a device trigger per level. Every text that comes from a
    datagram is clipped in the templates: a state holds 255 characters, attributes 16 KiB."""
    state_topic = settings.topics.server(slug)
    log_topic = settings.topics.log_event(slug)
    prefix = f"qlik_sense_{slug}"

    def entity(component: str, key: str, name: str, **config: Any) -> DiscoveryMessage:
        return _entity(
            settings, device, component, f"{slug}_{key}", f"{prefix}_{key}", name, config
        )

    per_source = ", ".join(
        f"'{source}': {_ERRORS.format(f'sources.{source}.')}"
        for source in ("engine", "proxy", "repository", "scheduler")
    )
    messages = [
        entity(
            "sensor",
            "log_warnings",
            "Log warnings",
            state_topic=state_topic,
            value_template="{{ value_json.log_events.warnings }}",
            state_class="measurement",
            unit_of_measurement="warnings",
            icon="mdi:alert-outline",
        ),
        entity(
            "sensor",
            "log_errors",
            "Log errors",
            state_topic=state_topic,
            value_template=f"{{{{ {_ERRORS.format('')} }}}}",
            state_class="measurement",
            unit_of_measurement="errors",
            icon="mdi:alert-octagon-outline",
            json_attributes_topic=state_topic,
            json_attributes_template=(
                "{{ {'errors': value_json.log_events.errors, "
                f"'fatals': value_json.log_events.fatals, {per_source}}} | tojson }}}}"
            ),
        ),
        entity(
            "sensor",
            "last_log_error",
            "Last log error",
            state_topic=state_topic,
            value_template=(
                f"{{{{ {_LAST_ERROR}.message[:255] "
                f"if {_LAST_ERROR} and {_LAST_ERROR}.message else None }}}}"
            ),
            icon="mdi:alert-circle-outline",
            json_attributes_topic=state_topic,
            json_attributes_template=_clipped_attributes(_LAST_ERROR, _LAST_ERROR_ATTRIBUTES),
        ),
        entity(
            "event",
            "log_event",
            "Log event",
            state_topic=log_topic,
            event_types=list(LOG_EVENT_TYPES),
            icon="mdi:text-box-alert-outline",
            # The event's keys become its attributes: every text clipped, under 16 KiB. A DEBUG
            # or INFO event (`log_debug`, `log_info`) renders `{}`, which HA ignores.
            value_template=_clipped_attributes(_ALERT_LOG_EVENT, _LOG_EVENT_ATTRIBUTES),
        ),
    ]
    for event_type in LOG_EVENT_TYPES:
        messages.append(_trigger(settings, device, slug, log_topic, event_type, "log_event"))
    return messages


def _site_log_configs(
    settings: DiscoverySettings, device: dict[str, Any]
) -> list[DiscoveryMessage]:
    """The site's log events: errors in the window on every server, and whether an error
    arrived since the last acknowledge (what `when: log_error` lamps follow)."""
    site_topic = settings.topics.site
    return [
        _entity(
            settings,
            device,
            "sensor",
            "site_log_errors",
            "qlik_sense_site_log_errors",
            "Site log errors",
            {
                "state_topic": site_topic,
                "value_template": f"{{{{ {_ERRORS.format('')} }}}}",
                "state_class": "measurement",
                "unit_of_measurement": "errors",
                "icon": "mdi:alert-octagon-outline",
            },
        ),
        _entity(
            settings,
            device,
            "binary_sensor",
            "log_error",
            "qlik_sense_log_error",
            "Log error",
            {
                "state_topic": site_topic,
                "value_template": (
                    "{{ 'ON' if value_json.log_events.unacknowledged.error else 'OFF' }}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "problem",
                "json_attributes_topic": site_topic,
                "json_attributes_template": (
                    "{{ {'categories': value_json.log_events.unacknowledged.categories} | tojson }}"
                ),
            },
        ),
    ]


def _trigger(
    settings: DiscoverySettings,
    device: dict[str, Any],
    slug: str,
    topic: str,
    event_type: str,
    subtype: str,
) -> DiscoveryMessage:
    """A device trigger: automations in the UI ("when Qlik Sense X: task_failed …")."""
    payload = {
        "automation_type": "trigger",
        "topic": topic,
        "type": event_type,
        "subtype": subtype,
        "payload": event_type,
        "value_template": "{{ value_json.event_type }}",
        "device": device,
        "origin": _origin(settings),
    }
    key = f"{slug}_{event_type}"
    return f"{settings.prefix}/device_automation/{settings.node_id}/{key}/config", payload


def bridge_configs(settings: DiscoverySettings) -> list[DiscoveryMessage]:
    """The bridge device: failure flag, the commands' buttons, site and diagnostic sensors."""
    device = _bridge_device(settings)
    site_topic = settings.topics.site
    stats_topic = settings.topics.bridge_stats
    problems = "value_json.problems | default([])"

    def entity(component: str, key: str, slug: str, name: str, **config: Any) -> DiscoveryMessage:
        return _entity(settings, device, component, key, slug, name, config)

    def site_counter(key: str, name: str, icon: str, unit: str) -> DiscoveryMessage:
        return entity(
            "sensor",
            f"site_{key}",
            f"qlik_sense_site_{key}",
            f"Site {name.lower()}",
            state_topic=site_topic,
            value_template=f"{{{{ value_json.{key} }}}}",
            state_class="measurement",
            unit_of_measurement=unit,
            icon=icon,
        )

    def diagnostic(key: str, name: str, icon: str, **config: Any) -> DiscoveryMessage:
        return entity(
            "sensor",
            key,
            f"qlik2mqtt_{key}",
            name,
            entity_category="diagnostic",
            icon=icon,
            **config,
        )

    configs = [
        entity(
            "binary_sensor",
            "reload_failure",
            "qlik_sense_reload_failure",
            "Reload failure",
            state_topic=site_topic,
            value_template="{{ value_json.reload_failure }}",
            payload_on="ON",
            payload_off="OFF",
            device_class="problem",
            json_attributes_topic=site_topic,
            json_attributes_template=_last_failed_attributes(),
        ),
        site_counter("active_sessions", "Active sessions", "mdi:account-multiple", "sessions"),
        site_counter("active_users", "Active users", "mdi:account-group", "users"),
        site_counter("active_connections", "Active connections", "mdi:lan-connect", "connections"),
        entity(
            "binary_sensor",
            "problem",
            "qlik2mqtt_problem",
            "Bridge problem",
            state_topic=stats_topic,
            value_template=f"{{{{ 'ON' if ({problems}) else 'OFF' }}}}",
            payload_on="ON",
            payload_off="OFF",
            device_class="problem",
            entity_category="diagnostic",
            json_attributes_topic=stats_topic,
            json_attributes_template=f"{{{{ {{'problems': {problems}}} | tojson }}}}",
        ),
        diagnostic(
            "events_received",
            "Events received",
            "mdi:email-receive-outline",
            state_topic=stats_topic,
            value_template="{{ value_json.events }}",
            state_class="total_increasing",
        ),
        diagnostic(
            "datagrams_rejected",
            "Datagrams rejected",
            "mdi:email-remove-outline",
            state_topic=stats_topic,
            value_template="{{ value_json.rejected_total }}",
            state_class="total_increasing",
            json_attributes_topic=stats_topic,
            json_attributes_template="{{ value_json.rejected | tojson }}",
        ),
        diagnostic(
            "outbox_depth",
            "Outbox depth",
            "mdi:tray-full",
            state_topic=stats_topic,
            value_template="{{ value_json.outbox_depth }}",
            state_class="measurement",
        ),
        diagnostic(
            # Its own topic, published only once there was an event: a timestamp sensor
            # warns about anything that is not a time, and HA 2024.3 reads "None" as such.
            "last_event",
            "Last event",
            "mdi:clock-outline",
            state_topic=settings.topics.site_last_event,
            device_class="timestamp",
        ),
    ]
    configs.extend(_site_log_configs(settings, device))
    for index, button in enumerate(settings.buttons, start=1):
        config = entity(
            "button",
            button.key,
            button.entity_slug,
            button.name,
            command_topic=button.command_topic,
            payload_press=button.payload_press,
            icon=button.icon,
        )
        if button.available_when is not None:
            config = _also_available_when(config, settings, *button.available_when)
        # With its command switched off, an earlier button is removed (empty config).
        configs.insert(index, config if button.enabled else (config[0], {}))
    return configs


def _also_available_when(
    message: DiscoveryMessage, settings: DiscoverySettings, topic: str, template: str
) -> DiscoveryMessage:
    """An entity available only while the bridge is online and `topic` says `online` too."""
    config_topic, payload = message
    payload = {key: value for key, value in payload.items() if key != "availability_topic"}
    payload["availability"] = [
        {"topic": settings.availability_topic},
        {"topic": topic, "value_template": template},
    ]
    payload["availability_mode"] = "all"
    payload["json_attributes_topic"] = topic
    return config_topic, payload


@dataclass(frozen=True, slots=True)
class WatchedTask:
    """A task in `tasks.watch`: its own device with its last outcome and a Start button."""

    entry: str
    """The task's name as configured, else its id: the device's name."""
    slug: str
    """Names its topics and entity ids (`reload_sales`)."""
    start_payload: str | None
    """The `task/start` request its Start button sends; None: no button (QRS is off)."""


def watched_task_configs(settings: DiscoverySettings, task: WatchedTask) -> list[DiscoveryMessage]:
    """A watched task's device: its last outcome, the time of it, and its Start button (an
    empty config, removing it, without QRS)."""
    device = {
        "identifiers": [f"{settings.node_id}_task_{task.slug}"],
        "name": f"Qlik Sense task {task.entry}",
        "manufacturer": "Qlik",
        "model": "Reload task",
        "via_device": settings.bridge_identifier,
    }
    state_topic = settings.topics.watched_task(task.slug)
    prefix = f"qlik_sense_task_{task.slug}"

    def entity(component: str, key: str, name: str, **config: Any) -> DiscoveryMessage:
        unique_key = f"task_{task.slug}_{key}"
        return _entity(settings, device, component, unique_key, f"{prefix}_{key}", name, config)

    start = entity(
        "button",
        "start",
        "Start",
        command_topic=f"{settings.base_topic}/bridge/request/task/start",
        payload_press=task.start_payload or "",
        icon="mdi:play-circle-outline",
    )
    return [
        entity(
            "sensor",
            "last_outcome",
            "Last outcome",
            state_topic=state_topic,
            value_template="{{ value_json.outcome or 'unknown' }}",
            json_attributes_topic=state_topic,
            icon="mdi:database-check-outline",
        ),
        entity(
            # Its own topic, published only once there was an outcome (see last_event).
            "sensor",
            "last_outcome_at",
            "Last outcome at",
            state_topic=settings.topics.watched_task_at(task.slug),
            device_class="timestamp",
        ),
        start if task.start_payload is not None else (start[0], {}),
    ]


def watched_task_removals(settings: DiscoverySettings, slug: str) -> list[DiscoveryMessage]:
    """Empty configs for a task no longer watched: Home Assistant removes its device."""
    return _removals(watched_task_configs(settings, WatchedTask(slug, slug, None)))


def server_removals(settings: DiscoverySettings, slug: str) -> list[DiscoveryMessage]:
    """Empty configs for a forgotten server: Home Assistant removes its device."""
    return _removals(server_configs(settings, slug, slug))


def _removals(configs: list[DiscoveryMessage]) -> list[DiscoveryMessage]:
    return [(topic, {}) for topic, _ in configs]
