"""The core path: datagram → parse → state → extensions. Synchronous and cheap per datagram."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import structlog

from bridge.config import Config
from bridge.core.categories import Categories, CategoryRule
from bridge.core.events import Event, LogEvent, QixPerfEvent, Rejected, RejectReason
from bridge.core.state import (
    BridgeState,
    Cap,
    Change,
    StateSettings,
    acknowledge,
    apply_event,
    auto_clear,
    expire,
    find_server,
    forget_server,
    remember_watched,
    retry_gone,
    retry_started,
    retry_unstarted,
)
from bridge.core.stats import Stats
from bridge.core.topics import server_slug
from bridge.extensions import Extension
from bridge.inputs.declare import Parser
from bridge.inputs.parse import parse_datagram
from bridge.runtime.guard import Guard
from bridge.runtime.logs import RateLimiter

log = structlog.get_logger("qlik2mqtt.core")

REJECT_LOG_INTERVAL = 10.0
UNTRACKED_LOG_INTERVAL = 60.0
"""Seconds between two log lines of one cap's untracked events."""


class Bridge:
    def __init__(
        self,
        config: Config,
        state: BridgeState,
        stats: Stats,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self._max_bytes = config.udp.max_datagram_bytes
        self._settings = StateSettings(
            stale_after=config.sessions.stale_after,
            dedup_window=config.tasks.dedup_window,
            auto_clear_after=config.tasks.auto_clear_after,
            max_servers=config.limits.max_servers,
            max_sessions_per_server=config.limits.max_sessions_per_server,
            max_tasks_per_server=config.limits.max_tasks_per_server,
            log_window=config.log_events.window,
            watch=config.tasks.watched(),
        )
        self.categories = categories_of(config)
        self.state = state
        self.stats = stats
        self._clock = clock
        self._reject_log = RateLimiter(REJECT_LOG_INTERVAL, monotonic)
        self._untracked_log = RateLimiter(UNTRACKED_LOG_INTERVAL, monotonic)
        self.guard = Guard(stats, monotonic)
        self._extensions: Sequence[Extension] = ()
        self._on_event: list[tuple[str, Callable[[Event, float], None]]] = []
        self._on_change: list[tuple[str, Callable[[Change], None]]] = []
        self._saved_revision = state.revision
        self._on_qix: list[tuple[str, Callable[[QixPerfEvent, float], None]]] = []
        self.state_saved = True
        """False while saving the state file fails (a full or read-only disk)."""
        self._handle_any = self.datagram_handler(parse_datagram)
        # Dirty when a watched task is new: saved soon, so a task unwatched before any outcome
        # is still known.
        remember_watched(state, self._settings.watch)

    @property
    def dirty(self) -> bool:
        """True when the state changed since it was last saved: its revision moved (every
        change the core makes adds one, and so does one an extension makes through
        `bridge.core.state`, as `drop_watched`)."""
        return self.state.revision != self._saved_revision

    @dirty.setter
    def dirty(self, value: bool) -> None:
        """False: the state as it is now is being saved; True: save it again (a save failed)."""
        self._saved_revision = -1 if value else self.state.revision

    def attach(self, extensions: Sequence[Extension]) -> None:
        self._extensions = extensions
        # Per event, only the extensions that do something with it are called.
        self._on_event = [(e.name, e.on_event) for e in extensions if _overrides(e, "on_event")]
        self._on_change = [(e.name, e.on_change) for e in extensions if _overrides(e, "on_change")]
        self._on_qix = [
            (e.name, e.on_qix_performance)
            for e in extensions
            if _overrides(e, "on_qix_performance")
        ]

    def handle_datagram(self, data: bytes, source: str) -> None:
        """A datagram in any format (tests and the benchmark): as an input would hand it."""
        self._handle_any(data, source)

    def datagram_handler(self, parse: Parser) -> Callable[[bytes, str], None]:
        """The listener's handler for one input: each datagram counted, parsed by the input's
        parser, and its event (or its refusal, counted by reason) handled as any other."""
        max_bytes = self._max_bytes
        stats = self.stats
        reject = self.reject
        handle_event = self.handle_event
        handle_qix = self.handle_qix_performance

        def handle(data: bytes, source: str) -> None:
            stats.datagrams += 1
            result = parse(data, max_bytes)
            if isinstance(result, Rejected):
                reject(result, source)
            elif isinstance(result, QixPerfEvent):
                handle_qix(result)
            else:
                handle_event(result)

        return handle

    def handle_refused_source(self, source: str) -> None:
        self.stats.datagrams += 1
        self.reject(
            Rejected(reason=RejectReason.SOURCE_NOT_ALLOWED, detail="not in udp.allowed_sources"),
            source,
        )

    def reject(self, rejected: Rejected, source: str) -> None:
        self.stats.reject(rejected.reason)
        suppressed = self._reject_log.allow(rejected.reason.value)
        if suppressed is not None:
            log.warning(
                "datagram refused",
                reason=rejected.reason.value,
                detail=rejected.detail,
                source=source,
                similar_suppressed=suppressed,
            )

    def handle_event(self, event: Event) -> None:
        now = self._clock()
        if type(event) is LogEvent:
            if self.categories:
                event.category = self.categories.of(event)
            if event.fields_uncertain:
                self.stats.uncertain_fields += 1
        change = apply_event(self.state, event, now, self._settings)
        if change.untracked is not None:  # a cap of `limits:`: published, not tracked
            self._untracked(change.untracked, event)
        self.stats.events += 1
        if change.publish_event:
            for name, on_event in self._on_event:
                try:
                    on_event(event, now)
                except Exception:  # one extension's fault never skips the others
                    self.guard.failed(name, "on_event")
        else:
            self.stats.duplicates += 1
        self._changed(change)

    def _untracked(self, cap: Cap, event: Event) -> None:
        self.stats.untracked[cap.value] += 1
        suppressed = self._untracked_log.allow(cap.value)
        if suppressed is not None:
            log.warning(
                f"{cap.setting} reached: events are published, not tracked",
                host=event.server[:64],
                untracked=self.stats.untracked[cap.value],
                similar_suppressed=suppressed,
            )

    def handle_qix_performance(self, event: QixPerfEvent) -> None:
        """A QIX performance line: counted by host, then to the extensions that take them
        (`log_events.qix_performance`). It changes no state."""
        self.stats.qix_received(event.server)
        if not self._on_qix:
            return
        now = self._clock()
        for name, on_qix in self._on_qix:
            try:
                on_qix(event, now)
            except Exception:
                self.guard.failed(name, "on_qix_performance")

    def acknowledge(self, source: str) -> None:
        change = acknowledge(self.state)
        log.info(
            "reload failure acknowledged",
            via=source,
            was_on=change.flag_changed,
            log_flags_cleared=sorted(change.servers),
        )
        self._changed(change)

    def forget(self, server: str, source: str) -> str | None:
        """Forget a server (its host name or slug): state, retained topics, HA entities.
        Returns its slug, or None when there was no such server."""
        slug = find_server(self.state, server) or server_slug(server)
        change = forget_server(self.state, slug)
        if not change.any:
            log.warning("forget: no such server", server=server, via=source)
            return None
        log.info("server forgotten", server=slug, via=source)
        for extension in self._extensions:
            self.guard.call(extension.name, "on_forget", partial(extension.on_forget, slug))
        self._changed(change)
        return slug

    def retry_started(self, task_id: str) -> float | None:
        """The retry button is starting this task: not offered again until its next outcome.
        The mark, or None when it is no candidate."""
        now = self._clock()
        change = retry_started(self.state, task_id, now)
        self._changed(change)
        return now if change.any else None

    def retry_unstarted(self, task_id: str, started_at: float) -> None:
        """QRS refused the start marked `started_at`: a candidate again."""
        self._changed(retry_unstarted(self.state, task_id, started_at))

    def retry_gone(self, task_id: str) -> None:
        """QRS knows no such task: no longer a retry candidate."""
        if (change := retry_gone(self.state, task_id)).any:
            log.info("retry: QRS knows no such task, no longer offered", task_id=task_id)
        self._changed(change)

    def changed(self, change: Change) -> None:
        """What an extension changed in what the state topics show, not in the state's saved
        part (a failure's context from QRS arrived): the extensions' `on_change`."""
        for name, on_change in self._on_change:
            try:
                on_change(change)
            except Exception:
                self.guard.failed(name, "on_change")

    def catch_up(self) -> None:
        """At start, before the first connect: what lapsed while the bridge was down leaves
        the restored state (stale sessions, failures past `auto_clear_after`, log events past
        the window), so the first connect does not publish hours-old counts. No extension is
        told: the connect publishes the state as it is."""
        if self._expire("while stopped: stale sessions expired or flag auto-cleared").any:
            self.state.revision += 1

    def expire(self) -> None:
        change = self._expire("stale sessions expired or flag auto-cleared")
        if change.any and not (change.expired or change.auto_cleared):
            # only log events leaving the window: every minute, not news
            log.debug("log-event counts left the window", servers=sorted(change.servers))
        self._changed(change)

    def auto_clear(self) -> None:
        """Failures and aborts older than `tasks.auto_clear_after` leave the flags (often:
        cheap, unlike `expire`)."""
        change = auto_clear(self.state, self._clock(), self._settings)
        if change.auto_cleared:
            log.info("flag auto-cleared", servers=sorted(change.servers))
        self._changed(change)

    def _expire(self, news: str) -> Change:
        """What lapsed by now leaves the state; expired sessions or an auto-cleared flag are
        logged as `news`."""
        change = expire(self.state, self._clock(), self._settings)
        if change.expired or change.auto_cleared:
            log.info(
                news,
                servers=sorted(change.expired),
                flag_auto_cleared=change.auto_cleared,
            )
        return change

    def _changed(self, change: Change) -> None:
        """A change of the state's saved part: the extensions told, the next save due."""
        if not change.any:
            return
        self.state.revision += 1
        self.changed(change)


def categories_of(config: Config) -> Categories:
    """`log_events.categories` (patterns compiled by the config), grouped for `Categories.of`."""
    return Categories(
        CategoryRule(
            name=rule.name,
            pattern=rule.pattern,
            levels=frozenset(rule.level) if rule.level else None,
            sources=frozenset(rule.source) if rule.source else None,
        )
        for rule in config.log_events.categories
    )


def _overrides(extension: Extension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(Extension, hook)
