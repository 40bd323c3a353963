"""Configuration: pydantic models, YAML loading, environment overrides, readable errors.

Every key may be overridden from the environment as `QLIK2MQTT_<SECTION>__<KEY>`, e.g.
`QLIK2MQTT_MQTT__PASSWORD=…`; values that start with `[` or `{` are read as YAML lists/maps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bridge.core.categories import compile_pattern
from bridge.core.context_filter import Filter
from bridge.core.events import LogLevel, LogSource
from bridge.core.flags import flag_category, is_task_flag, validate_flag
from bridge.core.payloads import USERS_LIST_BYTES
from bridge.core.state import Watch
from bridge.core.task_ids import is_task_id

ENV_PREFIX = "QLIK2MQTT_"
CONFIG_ENV = "QLIK2MQTT_CONFIG"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
SECRET_WORDS = ("password", "token", "secret", "webhook", "salt")
"""A key whose name holds one of these holds a secret: `secret_keys` must list it (the test of
the config model fails otherwise), and its value is never shown."""


def _duration(value: Any) -> Any:
    """Seconds as a number, or text such as `250ms`, `10s`, `5m`, `8h`, `1d`."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected seconds or a duration such as 250ms, 10s, 5m, 8h, 1d")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


def _network(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError("not an IP address or CIDR network") from None  # (got …) follows
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UdpConfig(_Section):
    host: str = "0.0.0.0"
    user_activity_port: Port = 9997
    task_port: Port = 9998
    log_port: Annotated[int, Field(ge=0, le=65535)] = 9996
    """Butler SOS's log events (warnings and errors of every service); 0 turns it off."""
    allowed_sources: list[Network] = []
    max_datagram_bytes: Annotated[int, Field(ge=512, le=65535)] = 65535
    receive_buffer_bytes: Annotated[int, Field(ge=65536)] = 32 * 1024 * 1024


def _topic_part(value: str) -> str:
    if not value or value != value.strip("/") or any(c in value for c in "+#\x00"):
        raise ValueError("must be non-empty, without + # NUL and without a leading/trailing /")
    return value


def _relative_to_config(value: Any, info: ValidationInfo) -> Any:
    """A relative path is read from the config file's folder (the working directory when
    there is no config file), so the bridge and every command find the same files wherever
    they are started."""
    if value is None or not isinstance(value, str | Path):
        return value
    path = Path(value).expanduser()
    base = (info.context or {}).get("base")
    if path.is_absolute() or base is None:
        return path
    return Path(base) / path


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


def _readable_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """A file the bridge can open now: missing or unreadable is a config error at start, not
    a failure at the first request. Only the path is ever shown, never what the file holds.
    Checked only when its section is `enabled` (declared before the files), so a command that
    never uses the file (`status`, `acknowledge`) does not need to read it."""
    if value is None or not info.data.get("enabled", False):
        return value
    _existing_file(value)
    try:
        with value.open("rb") as file:
            file.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    return value


FilePath = Annotated[Path, BeforeValidator(_relative_to_config)]
ReadableFile = Annotated[
    Path | None, BeforeValidator(_relative_to_config), AfterValidator(_readable_file)
]
ExistingFile = Annotated[
    Path | None, BeforeValidator(_relative_to_config), AfterValidator(_existing_file)
]


class TlsConfig(_Section):
    enabled: bool = False
    ca_file: ExistingFile = None
    certfile: ExistingFile = None
    keyfile: ExistingFile = None
    insecure: bool = False

    @model_validator(mode="after")
    def _pairs(self) -> TlsConfig:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile needs certfile (a client certificate and its key)")
        return self


class MqttConfig(_Section):
    host: str | None = None
    port: Port = 1883
    username: str | None = None
    password: SecretStr | None = None
    password_file: ExistingFile = None
    tls: TlsConfig = TlsConfig()
    client_id: str | None = None
    base_topic: str = "qlik2mqtt"
    qos: Literal[0, 1, 2] = 1
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    state_interval: Duration = 0.25
    state_bytes_per_second: Annotated[int, Field(ge=1024)] = 16_384
    """Each retained state topic averages at most this: after a publish of N bytes the topic
    waits N / this before its next (a small payload just `state_interval`)."""
    outbox_max_events: Annotated[int, Field(ge=100)] = 100_000

    _check_base_topic = field_validator("base_topic")(_topic_part)

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        return self

    def secret(self) -> str | None:
        """The broker password, from `password` or the first line of `password_file`."""
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return self.password.get_secret_value() if self.password is not None else None


class HomeAssistantConfig(_Section):
    enabled: bool = True
    discovery_prefix: str = "homeassistant"

    _check_prefix = field_validator("discovery_prefix")(_topic_part)


class ButlerCompatConfig(_Section):
    enabled: bool = False
    base_topic: str = "qliksense"

    _check_base_topic = field_validator("base_topic")(_topic_part)


class StateConfig(_Section):
    users_interval: Duration = 10.0
    """`<server>/users` (every user's name) is published at most this often, and only when
    the users changed: the per-server state carries counts and a bounded preview."""
    users_max_bytes: Annotated[int, Field(ge=1024)] = USERS_LIST_BYTES
    """The most JSON bytes of names on `<server>/users`; `users_left_out` counts the rest."""


class SessionsConfig(_Section):
    stale_after: Duration | None = 8 * 3600.0


_TaskText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class WatchEntryConfig(_Section):
    """A watched task named by both: its id finds it after a rename, its name names the
    entities (`{name: Reload Sales, id: 6e4c…}`). At least one of the two."""

    name: _TaskText | None = None
    id: _TaskText | None = None

    @model_validator(mode="after")
    def _named(self) -> WatchEntryConfig:
        if self.name is None and self.id is None:
            raise ValueError("give the task's name, its id, or both")
        if self.id is not None and not is_task_id(self.id):
            raise ValueError(f"id {self.id!r} is not a task id (a GUID)")
        return self

    def watch(self) -> Watch:
        return Watch(name=self.name, task_id=self.id)


def _watch_entry(value: Any) -> Any:
    """A plain entry is a task id when shaped as one (a GUID), else a task name."""
    if isinstance(value, float):  # YAML reads 2024.10 as 2024.1: the name is lost
        raise ValueError(f"{value!r} is a number: quote the task name")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # YAML reads a task named 2024 as a number
    if isinstance(value, str):
        return {"id": value} if is_task_id(value.strip()) else {"name": value}
    if not isinstance(value, dict):
        raise ValueError("a task name, a task id, or {name: …, id: …}")
    return value


class TaskContextConfig(_Section):
    """What the bridge fetches from QRS for a failed or aborted reload (`event/task_context`,
    issue 26): only when `qrs.enabled`."""

    enabled: bool = True
    """With `qrs.enabled`: fetch each failure's task, app, execution and script log tail."""
    script_log_lines: Annotated[int, Field(ge=0, le=200)] = 20
    script_log_bytes: Annotated[int, Field(ge=256, le=16384)] = 4096
    """The log tail's most UTF-8 bytes (its lines together)."""
    cache_ttl: Duration = 300.0
    """How long a task's and an app's names, tags and custom properties are reused."""
    cache_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Tasks and apps each kept at most (the least recently used go first)."""
    max_requests: Annotated[int, Field(ge=1, le=16)] = 3
    """QRS requests in flight at once, for contexts."""
    min_interval: Duration = 60.0
    """A task's execution and script log are fetched at most once in this interval: a storm
    of one task's failures is one fetch (the others' contexts say `folded`)."""
    retry_after: Duration = 30.0
    """After QRS could not be reached (down, slow, refusing the certificate), contexts say
    `unavailable` at once for this long instead of trying again."""


class TasksConfig(_Section):
    dedup_window: Duration = 60.0
    auto_clear_after: Duration | None = None
    watch: Annotated[
        list[Annotated[WatchEntryConfig, BeforeValidator(_watch_entry)]], Field(max_length=100)
    ] = []
    """Tasks each with its own retained topic and Home Assistant device: a name, an id (a
    GUID), or `{name, id}`."""
    context: TaskContextConfig = TaskContextConfig()

    @field_validator("watch")
    @classmethod
    def _distinct_names(cls, entries: list[WatchEntryConfig]) -> list[WatchEntryConfig]:
        """Each entry names its topic and entity ids: two entries may not name the same."""
        named: dict[str, str] = {}
        for watch in (entry.watch() for entry in entries):
            slug = watch.slug
            if not slug:
                raise ValueError(
                    f"{watch.key!r} has no letter or digit (a-z, 0-9) to name its topic and "
                    "entities: give the task's id too ({name: …, id: …})"
                )
            if slug in named:
                raise ValueError(
                    f"{named[slug]!r} and {watch.key!r} would both be named {slug!r} "
                    "(topics and entity ids): keep one"
                )
            named[slug] = watch.key
        return entries

    def watched(self) -> tuple[Watch, ...]:
        """`watch` as the state matches it."""
        return tuple(entry.watch() for entry in self.watch)


def _regex(value: Any) -> Any:
    """A category pattern, compiled once here (bridge.core.categories.compile_pattern: with
    `re.IGNORECASE` only if it may name a capital): a bad one is a config error naming its key,
    with Python's reason."""
    if not isinstance(value, str):
        return value
    try:
        return compile_pattern(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def _level_name(value: Any) -> Any:
    """A log level's name in any case."""
    return value.strip().upper() if isinstance(value, str) else value


def _one_or_many(value: Any) -> Any:
    """`level: ERROR` or `level: [ERROR, FATAL]`; names in any case."""
    return [_level_name(item) for item in (value if isinstance(value, list) else [value])]


def _sources(value: Any) -> Any:
    return [item.lower() if isinstance(item, str) else item for item in _one_or_many(value)]


CATEGORY_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class CategoryRuleConfig(_Section):
    """One rule of `log_events.categories`: first match wins."""

    name: Annotated[str, Field(pattern=CATEGORY_NAME)]
    """Lower case, digits and _ (it is used in `when: log_category:<name>`)."""
    pattern: Annotated[re.Pattern[str], BeforeValidator(_regex)]
    """Searched (`re.search`) in the message's first 4,096 characters, lowered (with
    `re.IGNORECASE` if the pattern names a capital)."""
    level: Annotated[list[LogLevel] | None, BeforeValidator(_one_or_many)] = None
    source: Annotated[list[LogSource] | None, BeforeValidator(_sources)] = None


DEFAULT_CATEGORIES = [
    CategoryRuleConfig.model_validate(rule)
    for rule in (
        {"name": "licence", "pattern": r"licen[cs]e|access pass"},
        {"name": "out_of_memory", "pattern": r"out of memory|outofmemory|memory (limit|quota)"},
        {
            "name": "reload",
            "source": ["scheduler", "engine"],
            "pattern": r"reload|finishedfail|task [^\n]{0,120}fail",
        },
        {
            "name": "connectivity",
            "pattern": (
                r"connection (refused|reset|closed|lost|failed)|could not connect|"
                r"unable to connect|timed out|unreachable|not responding"
            ),
        },
    )
]
"""The rules shipped in config.example.yaml (the same): `categories: []` turns them off."""


def _app_ids(value: Any) -> Any:
    """App ids as compared: stripped, lower case (a GUID in any case)."""
    if isinstance(value, list):
        return [item.strip().lower() if isinstance(item, str) else item for item in value]
    return value


class QixPerformanceConfig(_Section):
    """Butler SOS's QIX performance lines (`/qseow-qix-perf/`): published when enabled, with
    Butler SOS's monitor's filters by app and a minimum process time."""

    enabled: bool = False
    """Publish them on `<base>/<server>/event/qix_performance` (always counted as received)."""
    app_ids: Annotated[list[str], BeforeValidator(_app_ids)] = []
    """Only these apps (empty: every app)."""
    exclude_app_ids: Annotated[list[str], BeforeValidator(_app_ids)] = []
    """Never these apps."""
    min_process_time: Annotated[float, Field(ge=0)] = 0.0
    """Milliseconds: requests that took less are not published (one without a process time
    neither, when this is above 0)."""


class LogEventsConfig(_Section):
    window: Annotated[float, BeforeValidator(_duration), Field(ge=60, le=7 * 86400)] = 3600.0
    """The rolling window of the published warning, error and fatal counts."""
    categories: list[CategoryRuleConfig] = DEFAULT_CATEGORIES
    """Ordered rules naming a log event's `category`; first match wins."""
    qix_performance: QixPerformanceConfig = QixPerformanceConfig()


class LimitsConfig(_Section):
    """Caps on what datagrams can create, far above any real site: a stray sender or a
    misconfigured appender cannot grow memory or bury Home Assistant in devices."""

    max_servers: Annotated[int, Field(ge=1)] = 100
    max_sessions_per_server: Annotated[int, Field(ge=1)] = 100_000
    max_tasks_per_server: Annotated[int, Field(ge=1)] = 10_000


def _on_off_keys(value: Any) -> Any:
    """YAML 1.1 reads the keys `on:` and `off:` as booleans; name them again (recursively)."""
    if isinstance(value, dict):
        return {
            ("on" if key else "off") if isinstance(key, bool) else key: _on_off_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_on_off_keys(item) for item in value]
    return value


def _payload(value: Any) -> str | dict[str, Any]:
    """Text, or a JSON object. YAML 1.1 reads an unquoted ON/OFF as a boolean: that means the
    text ON/OFF here (Tasmota's commands)."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and all(isinstance(key, str | bool) for key in value):
        fixed: dict[str, Any] = _on_off_keys(value)
        return fixed
    raise ValueError("must be text or a JSON object")


Payload = Annotated[str | dict[str, Any], PlainValidator(_payload)]


def _command_topic(value: str) -> str:
    if not value or any(c in value for c in "+#\x00"):
        raise ValueError("must be a topic without + # or NUL")
    return value


class BlinkConfig(_Section):
    seconds: Duration = 30.0
    interval: Annotated[float, BeforeValidator(_duration), Field(gt=0)] = 1.0


def _values(value: Any) -> Any:
    """`{AlertTeam: Finance}` or `{AlertTeam: [Finance, Controlling]}`."""
    if isinstance(value, dict):
        return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
    return value


class AlertFilterConfig(_Section):
    """Which failures an alert output or a Slack route is for (issue 26), by their context
    from QRS: every criterion given must hold, any listed value will do, case ignored."""

    tags: list[Annotated[str, Field(min_length=1)]] = []
    """A tag of the task or of its app."""
    custom_properties: Annotated[
        dict[str, list[Annotated[str, Field(min_length=1)]]], BeforeValidator(_values)
    ] = {}
    """Each named custom property (of the task or its app) has one of the values."""
    streams: list[Annotated[str, Field(min_length=1)]] = []
    apps: list[Annotated[str, Field(min_length=1)]] = []
    """App names or ids (read from the event itself when no context came)."""
    without_context: Literal["alert", "skip"] = "alert"
    """What a failure without its context (QRS off, down, slow) does."""

    def rule(self) -> Filter:
        return Filter.of(
            self.tags, self.custom_properties, self.streams, self.apps, self.without_context
        )


class AlertOutputConfig(_Section):
    name: str | None = None
    topic: Annotated[str, AfterValidator(_command_topic)]
    on: Payload
    off: Payload
    retain: bool = False
    qos: Literal[0, 1, 2] = 1
    when: Annotated[str, AfterValidator(validate_flag)] = "reload_failure"
    blink: BlinkConfig | None = None
    filter: AlertFilterConfig | None = None
    """Only the failures (or aborts) that pass turn the output on (`when` a task flag)."""

    @model_validator(mode="after")
    def _task_filter(self) -> AlertOutputConfig:
        if self.filter is not None and not is_task_flag(self.when):
            raise ValueError(
                "filter applies to the task flags (reload_failure, any_task_aborted, "
                f"server:<host>), not {self.when}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _on_off_keys(value)


class AlertsConfig(_Section):
    outputs: list[AlertOutputConfig] = []
    context_wait: Annotated[float, BeforeValidator(_duration), Field(ge=0, le=60)] = 3.0
    """How long an output with a `filter` waits for the failure's QRS context."""


TemplateCheck = Callable[[Path], object]
"""Raises ValueError (with the reason) when a template file cannot be used."""


def _checked_template(value: Path | None, info: ValidationInfo) -> Path | None:
    """A message template file, checked by the `check_template` `load_config` was given (the
    Slack package compiles it): a broken one is a config error naming its key. This module
    knows nothing of templates' language."""
    check = (info.context or {}).get("check_template")
    if value is not None and check is not None:
        check(value)
    return value


class SlackKindConfig(_Section):
    enabled: bool
    channel: str | None = None
    webhook_url: SecretStr | None = None
    template: Annotated[
        Path | None, BeforeValidator(_relative_to_config), AfterValidator(_checked_template)
    ] = None


class RouteFilterConfig(AlertFilterConfig):
    """A route's filter: without a failure's context it takes nothing by default (`skip`), so
    a QRS that is down or slow sends no failure to the first route's channel: it stays with
    the kind's own destination."""

    without_context: Literal["alert", "skip"] = "skip"


class SlackRouteConfig(_Section):
    """Failures that pass `filter` go to this channel (with `slack.token`) or webhook instead
    of the kind's own (issue 26); the first route that matches takes the message."""

    filter: RouteFilterConfig
    channel: str | None = None
    webhook_url: SecretStr | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> SlackRouteConfig:
        if self.channel is None and self.webhook_url is None:
            raise ValueError("a route needs a channel (with slack.token) or a webhook_url")
        return self


class SlackTaskEventsConfig(SlackKindConfig):
    enabled: bool = True
    min_interval: Duration = 300.0
    include_successes: bool = False
    filter: AlertFilterConfig | None = None
    """Only the failures that pass are posted to the kind's own channel (successes always)."""
    routes: Annotated[list[SlackRouteConfig], Field(max_length=50)] = []


class SlackUserActivityConfig(SlackKindConfig):
    enabled: bool = False


class SlackLogEventsConfig(SlackKindConfig):
    """Qlik Sense's warnings and errors (the log port): off by default."""

    enabled: bool = False
    min_level: Annotated[LogLevel, BeforeValidator(_level_name)] = LogLevel.ERROR
    min_interval: Duration = 300.0
    """The same error again within this interval is folded into one later message."""


class SlackConfig(_Section):
    enabled: bool = False
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    base_url: str | None = None
    timeout: Annotated[float, BeforeValidator(_duration), Field(gt=0, le=120)] = 10.0
    context_wait: Annotated[float, BeforeValidator(_duration), Field(ge=0, le=60)] = 3.0
    """How long a failure's message waits for its QRS context (`tasks.context`) before it is
    posted without it."""
    task_events: SlackTaskEventsConfig = SlackTaskEventsConfig()
    user_activity: SlackUserActivityConfig = SlackUserActivityConfig()
    log_events: SlackLogEventsConfig = SlackLogEventsConfig()

    @model_validator(mode="after")
    def _reachable(self) -> SlackConfig:
        """Each kind that is on needs a webhook (its own or the global one) or token + channel."""
        if not self.enabled:
            return self
        for name, kind in (
            ("task_events", self.task_events),
            ("user_activity", self.user_activity),
            ("log_events", self.log_events),
        ):
            if not kind.enabled or kind.webhook_url or self.webhook_url:
                continue
            if self.token is None or not kind.channel:
                raise ValueError(
                    f"{name} is on but has nowhere to post: set slack.{name}.webhook_url, "
                    f"slack.webhook_url, or slack.token with slack.{name}.channel"
                )
        for index, route in enumerate(self.task_events.routes):
            if route.webhook_url is None and self.token is None:
                raise ValueError(
                    f"task_events.routes[{index}] names a channel without slack.token: set "
                    "slack.token, or the route's webhook_url"
                )
        return self


class QlikConfig(_Section):
    base_url: str | None = None
    """The site's address (https://qlik.corp.example), for links in messages."""


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _host_name(value: str | None) -> str | None:
    """A host name or an IP address, nothing more: no scheme, port, path or spaces."""
    if value is None:
        return value
    try:
        ip_address(value)
    except ValueError:
        pass
    else:
        if "%" not in value:  # an IPv6 scope (fe80::1%eth0) does not go into a URL
            return value
    labels = value.removesuffix(".").split(".")
    if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("must be a host name or an IP address only (no scheme, port or path)")
    return value


class QrsConfig(_Section):
    """The Qlik Sense Repository Service, to start reload tasks (`task/start`)."""

    enabled: bool = False
    host: Annotated[str | None, AfterValidator(_host_name)] = None
    """The central node's name: `port` has its own key, the scheme is always https."""
    port: Port = 4242
    client_cert: ReadableFile = None
    client_key: ReadableFile = None
    root_cert: ReadableFile = None
    verify: bool = True
    user_directory: str = "INTERNAL"
    user_id: str = "sa_repository"
    timeout: Annotated[float, BeforeValidator(_duration), Field(gt=0, le=300)] = 10.0
    allowed_tasks: list[Annotated[str, Field(min_length=1)]] = []
    max_starts_per_minute: Annotated[int, Field(ge=1, le=1000)] = 5

    @model_validator(mode="after")
    def _complete(self) -> QrsConfig:
        if not self.enabled:
            return self
        missing = [
            key
            for key, value in (
                ("host", self.host),
                ("client_cert", self.client_cert),
                ("client_key", self.client_key),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"enabled needs {', '.join(f'qrs.{key}' for key in missing)}")
        return self


class CommandsConfig(_Section):
    acknowledge: bool = True
    forget: bool = True


class PrivacyConfig(_Section):
    user_ids: Literal["plain", "hashed", "omitted"] = "plain"
    salt: SecretStr | None = None


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"


class Config(_Section):
    udp: UdpConfig = UdpConfig()
    mqtt: MqttConfig = MqttConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    butler_compat: ButlerCompatConfig = ButlerCompatConfig()
    state: StateConfig = StateConfig()
    sessions: SessionsConfig = SessionsConfig()
    tasks: TasksConfig = TasksConfig()
    log_events: LogEventsConfig = LogEventsConfig()
    limits: LimitsConfig = LimitsConfig()
    state_file: Annotated[FilePath, Field(validate_default=True)] = Path("data/state.json")
    stats_interval: Annotated[float, BeforeValidator(_duration), Field(gt=0)] = 10.0
    alerts: AlertsConfig = AlertsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    commands: CommandsConfig = CommandsConfig()
    slack: SlackConfig = SlackConfig()
    qlik: QlikConfig = QlikConfig()
    qrs: QrsConfig = QrsConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _known_categories(self) -> Config:
        """`when: log_category:<name>` names a category of `log_events.categories`."""
        names = {rule.name for rule in self.log_events.categories}
        problems = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error",
                    f"unknown category {category!r}: log_events.categories names "
                    f"{', '.join(sorted(names)) or 'none'}",
                ),
                loc=("alerts", "outputs", index, "when"),
                input=output.when,
            )
            for index, output in enumerate(self.alerts.outputs)
            if (category := flag_category(output.when)) is not None and category not in names
        ]
        if problems:
            raise ValidationError.from_exception_data("Config", problems)
        return self

    @model_validator(mode="after")
    def _no_anonymous_door(self) -> Config:
        """Starting reload tasks needs a trusted reason: datagrams from the listed Qlik Sense
        nodes (or any, said explicitly), and no embedded broker anyone on the host may use (it
        takes credentials when they are set, so they must be)."""
        mqtt = self.mqtt
        anonymous = mqtt.username is None or (mqtt.password is None and mqtt.password_file is None)
        if self.qrs.enabled and not self.udp.allowed_sources:
            raise _problem(
                ("udp", "allowed_sources"),
                "is empty (every sender) while qrs.enabled: whoever can send one UDP datagram "
                "could choose what the Retry button starts; list the Qlik Sense nodes "
                "(udp.allowed_sources: [10.20.0.11, 10.20.0.12]), or write 0.0.0.0/0 (and "
                "::/0) to accept any sender knowingly",
                [],
            )
        if self.qrs.enabled and mqtt.host is None and anonymous:
            raise _problem(
                ("qrs", "enabled"),
                "with the embedded broker (no mqtt.host) QRS needs mqtt.username and "
                "mqtt.password (or mqtt.password_file): without them the broker takes anyone "
                "on this host, and anyone could start reload tasks",
                True,
            )
        return self


def _problem(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """One problem found across sections, reported at the key `loc` names."""
    detail = InitErrorDetails(
        type=PydanticCustomError("value_error", message), loc=loc, input=value
    )
    return ValidationError.from_exception_data("Config", [detail])


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    check_template: TemplateCheck | None = None,
) -> Config:
    """Read YAML (if any), apply environment overrides, validate. Raises ConfigError.
    `check_template` checks each configured message template (see `bridge.cli`)."""
    raw: dict[str, Any] = _read_yaml(path) if path is not None else {}
    sources = _apply_env(raw, os.environ if environ is None else environ)
    base = path.resolve().parent if path is not None else Path.cwd()
    try:
        return Config.model_validate(raw, context={"base": base, "check_template": check_template})
    except ValidationError as exc:
        raise ConfigError([_describe(error, sources) for error in exc.errors()]) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read: {reason}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}{where}: invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, not {_kind(data)}"])
    return data


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge QLIK2MQTT_A__B=value into raw; return {'a.b': 'QLIK2MQTT_A__B'} for messages."""
    sources: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = _env_value(value)
        sources[".".join(path)] = name
    return sources


def _env_value(value: str) -> Any:
    if value.lstrip().startswith(("[", "{")):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _describe(error: Any, sources: Mapping[str, str]) -> str:
    key = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    ).lstrip(".")
    key = key or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.yaml)"
    origin = next(
        (f" (from {env})" for path, env in sources.items() if _from_env(key, path, error)), ""
    )
    shown = ""
    value = error.get("input")
    if error["type"] != "extra_forbidden" and isinstance(value, str | int | float):
        shown = " (got ***)" if is_secret_key(key) else f" (got {value!r})"
    return f"{key}: {message}{shown}{origin}"


def secret_keys(model: type[BaseModel] = Config, prefix: str = "") -> set[str]:
    """The dotted keys of `model` that hold a secret (a `SecretStr`), nested sections included
    (a list's items as `key[]`)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        for kind, suffix in _kinds(field.annotation, ""):
            if kind is SecretStr:
                found.add(key + suffix)
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= secret_keys(kind, f"{key}{suffix}.")
    return found


def _kinds(annotation: Any, suffix: str) -> list[tuple[Any, str]]:
    """The classes an annotation can hold, each with `[]` per list it is inside."""
    origin = get_origin(annotation)
    if origin is None:
        return [(annotation, suffix)]
    inner = suffix + "[]" if origin is list else suffix
    return [kind for arg in get_args(annotation) for kind in _kinds(arg, inner)]


def is_secret_key(key: str) -> bool:
    """Whether an error's key (`slack.task_events.webhook_url`, `mqtt.password`) holds a
    secret: by the model, and by its name should a key be misspelt or new."""
    plain = re.sub(r"\[\d+\]", "[]", key)
    return plain in _SECRET_KEYS or any(word in key for word in SECRET_WORDS)


def _from_env(key: str, path: str, error: Any) -> bool:
    """Whether the problem at `key` comes from the variable that set `path`: the key is that
    path or inside it, or — an unknown key — the variable created it (QLIK2MQTT_MQQT__HOST
    makes the unknown section `mqqt`)."""
    if key == path or key.startswith((f"{path}.", f"{path}[")):
        return True
    return error["type"] == "extra_forbidden" and path.startswith(f"{key}.")


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


_SECRET_KEYS = secret_keys()
