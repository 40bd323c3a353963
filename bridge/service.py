"""`qlik2mqtt run`: wires config, state, MQTT, listeners and extensions, and shuts down cleanly."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bridge.commands.declare import Tasks
from bridge.commands.handling import Commands
from bridge.config import Config
from bridge.core.logcounts import BUCKETS
from bridge.core.path import Bridge
from bridge.core.persistence import StateFileError, load_state
from bridge.core.privacy import Privacy
from bridge.core.state import BridgeState
from bridge.core.stats import Stats
from bridge.core.topics import Topics
from bridge.extensions import Context, Extension, TaskContextSource
from bridge.extensions.alerts import AlertOutputs
from bridge.extensions.bridge_topics import BridgeTopics
from bridge.extensions.butler_compat import ButlerCompat
from bridge.extensions.event_topics import EventTopics
from bridge.extensions.homeassistant import HomeAssistantDiscovery
from bridge.extensions.qix_performance import QixPerformanceTopics
from bridge.extensions.state_topics import StateTopics
from bridge.extensions.task_context import TaskContextTopics
from bridge.extensions.task_topics import TaskTopics
from bridge.inputs.builtin import INPUTS
from bridge.inputs.declare import listening
from bridge.inputs.listener import SourceFilter, open_listener
from bridge.mqtt import MqttLink
from bridge.mqtt.connection import EMBEDDED_HOST, broker_settings
from bridge.mqtt.embedded import (
    BrokerAccess,
    BrokerPortTakenError,
    EmbeddedBroker,
    EmbeddedBrokerError,
    MosquittoMissingError,
    start_embedded_broker,
)
from bridge.ops.health import WRITE_INTERVAL as HEALTH_INTERVAL
from bridge.ops.health import Facts, HealthWriter, RecentErrors, RecentUntracked, health_path
from bridge.runtime.instance import WAIT as LOCK_WAIT
from bridge.runtime.instance import InstanceLock, InstanceRunningError
from bridge.runtime.logs import RateLimiter
from bridge.runtime.saving import StateWriter
from bridge.runtime.supervise import supervised

if TYPE_CHECKING:  # httpx only when QRS is on
    from bridge.qrs.client import QrsClient

log = structlog.get_logger("qlik2mqtt")

SAVE_INTERVAL = 5.0
FLUSH_TIMEOUT = 5.0
BUFFER_DRAIN_PASSES = 200_000


class StartupError(Exception):
    """The bridge cannot start (a port in use, a broker that cannot bind)."""

    exit_code = 1


class ConfigProblemError(StartupError):
    """The configuration cannot work here: it names something that cannot be used (a
    certificate that does not load), or needs what is missing (no mosquitto for the embedded
    broker, or its port taken). Exit code 2 and one line, as for a bad config: the fix is in
    the setup, not in waiting."""

    exit_code = 2


def restore_state(path: Path) -> BridgeState:
    """The saved state; a broken file is moved aside (never lost) and the bridge starts empty."""
    try:
        state = load_state(path)
    except StateFileError as exc:
        aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
        path.replace(aside)
        log.error(
            "state file unusable, moved aside; starting empty", error=str(exc), moved_to=str(aside)
        )
        return BridgeState()
    if state is None:
        return BridgeState()
    log.info(
        "state restored",
        path=str(path),
        servers=len(state.servers),
        sessions=sum(len(server.sessions) for server in state.servers.values()),
    )
    return state


async def run(
    config: Config,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    lock_wait: float = LOCK_WAIT,
) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when `stop` is None); `ready` is set once
    the UDP ports are bound. A bridge still running on the same state file (one shutting
    down) is waited for, up to `lock_wait` seconds (bridge/runtime/instance.py)."""
    stop = stop or _stop_on_signals()
    lock = InstanceLock(config.state_file)
    try:
        if not await lock.acquire(lock_wait, stop):
            return  # stopped while waiting
    except InstanceRunningError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:  # a state folder the disk refuses: the bridge runs, as it would
        log.warning(
            "cannot lock the state file: a second bridge on it would not be held back",
            path=str(lock.path),
            error=exc.strerror or str(exc),
        )
    try:
        await _run_locked(config, stop, ready)
    finally:
        lock.release()  # after the final save: the next bridge reads what this one wrote


async def _run_locked(config: Config, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
    started_at = time.time()
    broker: EmbeddedBroker | None = None
    if config.mqtt.host is None:
        broker = await _start_embedded_broker(config)
    try:
        wired = wire(config, restore_state(config.state_file), started_at, broker is not None)
    except BaseException:
        if broker is not None:
            await broker.stop()
        raise
    bridge, link, extensions, topics = wired.bridge, wired.link, wired.extensions, wired.topics

    transports: list[asyncio.DatagramTransport] = []
    background: list[asyncio.Task[None]] = []
    writer = StateWriter(config.state_file)
    facts = FactsNow(link, transports, listen_ports(config), bridge)
    # Computed again at each connect, before the extensions publish: the first `bridge/stats`
    # of a connection must not carry the problems of the moment before (not connected).
    wired.connect_hooks.append(facts.refresh_problems)
    try:
        sources = SourceFilter(config.udp.allowed_sources)
        if sources.allows_all and config.udp.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "listening beyond loopback with no udp.allowed_sources: any host can send events",
                host=config.udp.host,
            )
        for port, udp_input in listening(INPUTS, config.udp):
            try:
                transports.append(
                    await open_listener(
                        config.udp.host,
                        port,
                        sources,
                        bridge.datagram_handler(udp_input.parse),
                        bridge.handle_refused_source,
                        config.udp.receive_buffer_bytes,
                    )
                )
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on UDP {config.udp.host}:{port}: {exc.strerror or exc}"
                ) from None
        # Everything built so far (modules, config, restored state) lives as long as the
        # bridge: out of the collector's sight, its full collections stop walking it.
        gc.collect()
        gc.freeze()
        bridge.catch_up()
        # Listening before connecting: `online` on the broker then means datagrams are read.
        link.start()
        if ready is not None:
            ready.set()
        stats = bridge.stats
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            "state-save": partial(_save_forever, bridge, writer),
            "session-expiry": partial(_expire_forever, bridge, config),
            "health-report": partial(_report_health, config.state_file, facts),
        }
        if config.tasks.auto_clear_after is not None:
            jobs["auto-clear"] = partial(_auto_clear_forever, bridge, config.tasks.auto_clear_after)
        if broker is not None:
            jobs["embedded-broker"] = broker.keep_running
        for name, job in jobs.items():
            background.append(asyncio.create_task(supervised(name, job, stats), name=name))
        await stop.wait()
        log.info("shutting down")
    finally:
        await _read_what_is_buffered(bridge)
        for transport in transports:
            transport.close()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        # Last built, first stopped: the bridge's own topics (built first) publish the final
        # counters after the sinks have said what they could not deliver.
        for extension in reversed(extensions):
            try:
                await extension.stop()
            except Exception:  # its fault must not cost the others their stop, or the events
                bridge.guard.failed(extension.name, "stop")
        left = await link.close(FLUSH_TIMEOUT, final=(topics.bridge_state, b"offline"))
        if left:
            log.warning("broker did not take every event: kept for the next start", count=left)
        try:  # waits for a periodic save still writing: this one lands last
            await writer.save(bridge.state, pause=0)  # no datagrams left to make room for
        except Exception as exc:
            log.error("cannot save state at shutdown", path=str(config.state_file), error=str(exc))
        if broker is not None:
            await broker.stop()
        gc.unfreeze()  # run() may be called again in this process (tests do)
        log.info("stopped")


def embedded_access(config: Config) -> BrokerAccess | None:
    """The one user the embedded broker takes, when `mqtt.username` and a password are set
    (else it is anonymous): the bridge's topics, Home Assistant's, Butler's and the alert
    outputs' (a lamp's `cmnd/…/POWER`: without it the broker drops the publish unsaid)."""
    password = config.mqtt.secret()
    if config.mqtt.username is None or password is None:
        return None
    topics = (
        config.mqtt.base_topic,
        config.homeassistant.discovery_prefix,
        config.butler_compat.base_topic,
    )
    lamps = tuple(output.topic for output in config.alerts.outputs)  # alert outputs' topics
    return BrokerAccess(
        config.mqtt.username, password, (*(f"{t}/#" for t in topics), *dict.fromkeys(lamps))
    )


async def _start_embedded_broker(config: Config) -> EmbeddedBroker:
    address = f"{EMBEDDED_HOST}:{config.mqtt.port}"
    try:
        broker = await start_embedded_broker(
            EMBEDDED_HOST,
            config.mqtt.port,
            config.state_file.parent / "mosquitto",
            embedded_access(config),
        )
    except (MosquittoMissingError, BrokerPortTakenError) as exc:
        raise ConfigProblemError(str(exc)) from None
    except (EmbeddedBrokerError, OSError) as exc:
        raise StartupError(
            f"cannot start the embedded MQTT broker on {address}: {exc} "
            "(set mqtt.host to use an existing broker)"
        ) from None
    log.info(
        "no mqtt.host configured: started the embedded MQTT broker (mosquitto)",
        address=address,
        pid=broker.pid,
    )
    return broker


@dataclass(frozen=True, slots=True)
class Wired:
    """The bridge's parts, connected to each other and not yet to the network."""

    bridge: Bridge
    link: MqttLink
    extensions: list[Extension]
    topics: Topics
    connect_hooks: list[Callable[[], object]]
    """Run at each MQTT (re)connect before the extensions' `on_connect`."""


def wire(config: Config, state: BridgeState, started_at: float, embedded_broker: bool) -> Wired:
    """The core, the MQTT link (not started) and the extensions (started), as `run` uses them;
    the benchmark of the hot path uses the same."""
    topics = Topics(config.mqtt.base_topic)
    stats = Stats()
    bridge = Bridge(config, state, stats, clock=time.time, monotonic=time.monotonic)
    extensions: list[Extension] = []
    connect_hooks: list[Callable[[], object]] = []

    def on_connect() -> None:
        for hook in connect_hooks:
            bridge.guard.call("bridge", "on_connect", hook)
        for extension in extensions:
            bridge.guard.call(extension.name, "on_connect", extension.on_connect)

    subscribers: dict[str, list[Extension]] = {}
    # topic → the extensions that subscribed to it (subscriptions are fixed at start)

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        for extension in subscribers.get(topic, ()):
            if retained:
                call = partial(extension.on_retained, topic, payload)
            else:
                call = partial(extension.on_message, topic, payload)
            bridge.guard.call(extension.name, call.func.__name__, call)

    link = MqttLink(
        broker_settings(config, will_topic=topics.bridge_state),
        stats,
        on_connect=on_connect,
        on_message=on_message,
    )
    context = Context(
        config=config,
        topics=topics,
        link=link,
        state=state,
        stats=stats,
        clock=time.time,
        started_at=started_at,
        embedded_broker=embedded_broker,
        privacy=_privacy(config),
        guard=bridge.guard,
        task_contexts=_task_contexts(config, stats),
        changed=bridge.changed,
    )
    extensions.extend(_build_extensions(context))
    tasks = _task_starter(config, stats) if config.qrs.enabled else None
    extensions.append(Commands(context, bridge, tasks=tasks))
    for extension in extensions:
        for topic in extension.subscriptions():
            subscribers.setdefault(topic, []).append(extension)
            link.subscribe(topic)
    bridge.attach(extensions)
    for extension in extensions:
        bridge.guard.call(extension.name, "start", extension.start)
    return Wired(bridge, link, extensions, topics, connect_hooks)


def _task_starter(config: Config, stats: Stats) -> Tasks:
    """QRS, for `task/start` (httpx only when it is on)."""
    from bridge.qrs.starter import TaskStarter

    qrs = config.qrs
    client = _qrs_client(config)
    if not qrs.verify:
        log.warning(
            "qrs.verify is false: the QRS certificate and host name are not checked, anyone "
            "in the path can take the requests; for testing only"
        )
    if not qrs.allowed_tasks:
        log.warning("qrs.allowed_tasks is empty: every task start will be refused")
    log.info(
        "starting tasks through QRS",
        host=qrs.host,
        port=qrs.port,
        max_starts_per_minute=qrs.max_starts_per_minute,
    )
    return TaskStarter(qrs, client, stats, time.monotonic)


def _qrs_client(config: Config) -> QrsClient:
    """A QRS client with `qrs:`'s certificates; a certificate problem is a config error. Task
    starts and failures' contexts each get one: a storm of contexts never queues a start behind
    its connections."""
    from bridge.qrs.client import QrsClient
    from bridge.qrs.tls import CertificateError, client_context

    try:
        return QrsClient(config.qrs, client_context(config.qrs))
    except CertificateError as exc:
        raise ConfigProblemError(f"config error: {exc}") from None


def _task_contexts(config: Config, stats: Stats) -> TaskContextSource | None:
    """Failures' contexts from QRS (issue 26), through a client like `task/start`'s: the same
    certificates, xrfkey and user. None unless `qrs.enabled` and `tasks.context.enabled`."""
    if not (config.qrs.enabled and config.tasks.context.enabled):
        task_events = config.slack.task_events
        if (
            any(output.filter is not None for output in config.alerts.outputs)
            or task_events.filter is not None
            or task_events.routes
        ):
            log.warning(
                "alert filters need a failure's context from QRS (qrs.enabled and "
                "tasks.context.enabled): each filter's without_context decides alone"
            )
        return None
    from bridge.qrs.context import TaskContexts

    return TaskContexts(config.tasks.context, _qrs_client(config), stats, time.monotonic)


def _privacy(config: Config) -> Privacy:
    if config.privacy.user_ids == "hashed" and config.privacy.salt is None:
        log.warning(
            "privacy.user_ids is hashed but privacy.salt is not set: anyone can hash a list of "
            "known user names and compare; set a secret salt"
        )
    return configured_privacy(config)


def configured_privacy(config: Config) -> Privacy:
    """`privacy:` as the payload builders apply it."""
    salt = config.privacy.salt
    return Privacy(config.privacy.user_ids, salt.get_secret_value() if salt is not None else "")


async def _read_what_is_buffered(bridge: Bridge) -> None:
    """Before the sockets close, let the loop read the datagrams the kernel already holds:
    each loop pass reads more, and three passes without a new one mean the buffers are empty."""
    quiet = 0
    for _ in range(BUFFER_DRAIN_PASSES):
        seen = bridge.stats.datagrams
        await asyncio.sleep(0)
        quiet = quiet + 1 if bridge.stats.datagrams == seen else 0
        if quiet >= 3:
            return


def _build_extensions(context: Context) -> list[Extension]:
    extensions: list[Extension] = [
        BridgeTopics(context),
        EventTopics(context),
        StateTopics(context),
    ]
    if context.config.log_events.qix_performance.enabled:
        extensions.append(QixPerformanceTopics(context))
    if context.task_contexts is not None:  # before the sinks: their contexts are on the way
        extensions.append(TaskContextTopics(context, context.task_contexts))
    if context.config.slack.enabled:
        from bridge.slack.sink import SlackSink  # slack_sdk only when Slack is used

        extensions.append(SlackSink(context))
    if context.config.alerts.outputs:
        extensions.append(AlertOutputs(context))
    if context.config.homeassistant.enabled:
        extensions.append(HomeAssistantDiscovery(context))
    if context.config.butler_compat.enabled:
        extensions.append(ButlerCompat(context))
    if context.config.qrs.enabled or context.config.tasks.watch or context.state.watched_slugs:
        extensions.append(TaskTopics(context))  # (watched once: its topics are cleared)
    return extensions


async def _save_forever(bridge: Bridge, writer: StateWriter) -> None:
    """Save state every few seconds when it changed; the write happens off the event loop."""
    save_log = RateLimiter(60.0, time.monotonic)
    while True:
        await asyncio.sleep(SAVE_INTERVAL)
        if bridge.dirty:
            bridge.dirty = False
            try:  # taken now, encoded in steps of the loop, written in a thread
                await writer.save(bridge.state)
            except OSError as exc:
                bridge.dirty = True
                bridge.stats.state_save_errors += 1
                bridge.state_saved = False
                if save_log.allow("state") is not None:
                    log.error(
                        "cannot save state; kept in memory, retrying",
                        path=str(writer.path),
                        error=str(exc),
                    )
            else:
                bridge.state_saved = True


async def _expire_forever(bridge: Bridge, config: Config) -> None:
    every = min(60.0, config.log_events.window / BUCKETS)  # a window's counts fall in time
    if config.sessions.stale_after:
        every = min(every, max(1.0, config.sessions.stale_after / 4))
    while True:
        await asyncio.sleep(every)
        bridge.expire()


async def _auto_clear_forever(bridge: Bridge, after: float) -> None:
    """`tasks.auto_clear_after` honoured within a tenth of its value, or a second (the session
    expiry runs once a minute or so: `auto_clear_after: 5s` cleared after up to a minute)."""
    every = min(60.0, max(1.0, after / 10))
    while True:
        await asyncio.sleep(every)
        bridge.auto_clear()


def listen_ports(config: Config) -> list[int]:
    """The UDP ports the inputs listen on, each once."""
    return [port for port, _ in listening(INPUTS, config.udp)]


class FactsNow:
    """What the health report says at a moment; `bridge/stats`' problems come from it too."""

    def __init__(
        self,
        link: MqttLink,
        transports: list[asyncio.DatagramTransport],
        ports: list[int],
        bridge: Bridge,
    ) -> None:
        self._link = link
        self._transports = transports
        self._ports = ports
        self._bridge = bridge
        self._errors_lately = RecentErrors(time.time())  # the extensions' start errors count
        self._untracked_lately = RecentUntracked(time.time())

    def facts(self, now: float) -> Facts:
        link, bridge = self._link, self._bridge
        return Facts(
            mqtt_connected=link.connected,
            mqtt_alive=link.alive,
            udp_ports=[
                port
                for port, transport in zip(self._ports, self._transports, strict=True)
                if not transport.is_closing()
            ],
            udp_expected=len(self._ports),
            undelivered_for=int(link.waiting_for()),
            outbox_disk_ok=link.disk_ok,
            state_saved=bridge.state_saved,
            extension_errors_lately=self._errors_lately.count(bridge.stats, now),
            commands_retained_ignored=bridge.stats.commands_retained_ignored,
            untracked_lately=self._untracked_lately.count(bridge.stats, now),
        )

    def refresh_problems(self) -> Facts:
        """The facts now, and `bridge/stats`' problems set from them."""
        facts = self.facts(time.time())
        self._bridge.stats.problems = facts.problems()
        return facts


async def _report_health(state_file: Path, facts_now: FactsNow) -> None:
    """Every HEALTH_INTERVAL, and within a second of a change in what it reports."""
    writer = HealthWriter(health_path(state_file))
    write_log = RateLimiter(60.0, time.monotonic)
    reported: Facts | None = None
    last_write = 0.0
    try:
        while True:
            now = time.time()
            facts = facts_now.refresh_problems()
            if facts != reported or now - last_write >= HEALTH_INTERVAL:
                try:
                    writer.write(facts, now)
                    reported, last_write = facts, now
                except OSError as exc:
                    if write_log.allow("health") is not None:
                        log.error(
                            "cannot write the health file", path=str(writer.path), error=str(exc)
                        )
            await asyncio.sleep(1.0)
    finally:
        writer.remove()  # stopped: not healthy


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
