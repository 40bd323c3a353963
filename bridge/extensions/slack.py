"""The Slack sink: failed and aborted reloads (and, if wanted, successes and user activity)
as Slack messages, without spam and without ever blocking the MQTT path.

A bounded queue sits between the pipeline and Slack; one worker posts from a thread. Each
channel gets at most one message a second; a task that fails again within
`task_events.min_interval` is folded into one later message ("4 failures since…"); 429 waits
for Retry-After, 5xx and network errors retry with backoff and give up after a bound.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from bridge.events import Event, TaskEvent, TaskEventType, UserEvent
from bridge.extensions import Context, Extension
from bridge.logs import RateLimiter
from bridge.slack_client import Kind, SlackPoster
from bridge.slack_layout import SlackLayout
from bridge.slack_messages import SlackMessage
from bridge.state import task_key
from bridge.topics import server_slug

log = structlog.get_logger("qlik2mqtt.slack")

QUEUE_MAX = 1000
MAX_ATTEMPTS = 5
BACKOFF_FIRST = 1.0
MAX_RETRY_AFTER = 300.0
CHANNEL_GAP = 1.0
"""Slack allows about one message a second per channel."""
STOP_GRACE = 3.0
_FOLDED_TYPES = frozenset(
    {
        TaskEventType.TASK_FAILED,
        TaskEventType.ENGINE_RELOAD_FAILED,
        TaskEventType.TASK_ABORTED,
    }
)


class SlackSink(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._config = context.config.slack
        self.poster = SlackPoster(self._config)
        self._queue: asyncio.Queue[tuple[Kind, SlackMessage]] = asyncio.Queue(QUEUE_MAX)
        self._worker: asyncio.Task[None] | None = None
        self._last_post: dict[str, float] = {}
        self._folded: dict[str, tuple[int, TaskEvent, float]] = {}
        self._next_allowed: dict[str, float] = {}
        self._drop_log = RateLimiter(10.0, context.clock)
        self._layout = SlackLayout(self._config, context.config.qlik.base_url, context.privacy)

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="slack")

    async def stop(self) -> None:
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), STOP_GRACE)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

    def on_event(self, event: Event, received_at: float) -> None:
        if isinstance(event, UserEvent):
            if self._config.user_activity.enabled:
                self._enqueue("user_activity", self._layout.message(event, received_at))
            return
        settings = self._config.task_events
        wanted = event.event_type in _FOLDED_TYPES or (
            settings.include_successes and event.event_type is TaskEventType.TASK_SUCCEEDED
        )
        if not settings.enabled or not wanted:
            return
        key = f"{task_key(server_slug(event.server), event)}|{event.event_type.value}"
        last = self._last_post.get(key)
        if (
            event.event_type in _FOLDED_TYPES
            and last is not None
            and received_at - last < settings.min_interval
        ):
            count = self._folded.get(key, (0, event, received_at))[0] + 1
            if count == 1:
                loop = asyncio.get_running_loop()
                loop.call_later(last + settings.min_interval - received_at, self._summary, key)
            self._folded[key] = (count, event, received_at)
            return
        self._last_post[key] = received_at
        self._enqueue("task_events", self._layout.message(event, received_at))

    def _summary(self, key: str) -> None:
        """The end of a task's quiet interval: one message for the failures it folded."""
        folded = self._folded.pop(key, None)
        if folded is None:
            return
        count, event, received_at = folded
        self._last_post[key] = self.context.clock()
        self._enqueue("task_events", self._layout.message(event, received_at, count))

    def _enqueue(self, kind: Kind, message: SlackMessage) -> None:
        try:
            self._queue.put_nowait((kind, message))
        except asyncio.QueueFull:
            self.context.stats.slack_dropped += 1
            suppressed = self._drop_log.allow("dropped")
            if suppressed is not None:
                log.warning("Slack queue full: message dropped", held_back=suppressed)

    async def _work(self) -> None:
        while True:
            kind, message = await self._queue.get()
            try:
                await self._deliver(kind, message)
            finally:
                self._queue.task_done()

    async def _deliver(self, kind: Kind, message: SlackMessage) -> None:
        target = self.poster.target(kind)
        delay = BACKOFF_FIRST
        outcome = None
        for _ in range(MAX_ATTEMPTS):
            await self._pace(target)
            outcome = await asyncio.to_thread(self.poster.post, kind, message)
            if outcome.ok:
                self.context.stats.slack_sent += 1
                return
            if not outcome.retryable:
                break
            if outcome.retry_after is not None:
                await asyncio.sleep(min(outcome.retry_after, MAX_RETRY_AFTER))
            else:
                await asyncio.sleep(delay)
                delay *= 2
        self.context.stats.slack_failed += 1
        log.warning(
            "Slack message not delivered",
            target=target,
            reason=outcome.detail if outcome else "?",
            text=message.text[:200],
        )

    async def _pace(self, target: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        allowed = self._next_allowed.get(target, now)
        if allowed > now:
            await asyncio.sleep(allowed - now)
        self._next_allowed[target] = max(now, allowed) + CHANNEL_GAP
