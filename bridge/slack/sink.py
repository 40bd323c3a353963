"""The Slack sink: failed and aborted reloads (and, if wanted, successes and user activity)
as Slack messages, without spam and without ever blocking the MQTT path.

A bounded queue sits between the pipeline and Slack; one worker task takes messages from it in
order, and each post runs in a short-lived daemon thread, so neither the event loop nor the
process's exit ever waits on Slack. Each channel gets at most one message a second; a task
that fails again within `task_events.min_interval` is folded into one later message ("4
failures since…"), and so is the same log error within `log_events.min_interval` (with a cap
on distinct log errors per interval); 429 and `ratelimited` wait for Retry-After; timeouts,
5xx and network errors retry with backoff and give up after a bound; anything else fails that
message only.

Nothing is lost without a trace: a message that is not posted is counted (`slack_failed`,
or `slack_dropped` when the queue is full or the bridge stops first) and logged, rate-limited.
The worker runs under the bridge's supervisor (bridge.runtime.supervise): if it ends anyway
it is logged, counted (`task_restarts`, as `slack`) and restarted with backoff. Exceptions that
are not Slack's answers (in the sink, or raised by the client) are
also counted in `extension_errors`, as `slack_sink.deliver` and `slack_sink.post`.
At stop, folded failures still waiting for their summary are posted then, within a grace
period.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import replace
from typing import Any

import structlog

from bridge.core.context_filter import passes
from bridge.core.events import Event, LogEvent, LogLevel, TaskEvent, TaskEventType, UserEvent
from bridge.core.state import slug_of, task_key, with_known_task
from bridge.core.task_context import awaits_its_task, failure_of, private, summary
from bridge.extensions import Context, Extension
from bridge.runtime.logs import RateLimiter
from bridge.runtime.supervise import supervised
from bridge.slack.client import Outcome, SlackPoster, ignored_channels
from bridge.slack.layout import SlackLayout
from bridge.slack.messages import Kind, SlackMessage, kind_of

log = structlog.get_logger("qlik2mqtt.slack")

QUEUE_MAX = 1000
MAX_ATTEMPTS = 5
BACKOFF_FIRST = 1.0
MAX_RETRY_AFTER = 300.0
CHANNEL_GAP = 1.0
"""Slack allows about one message a second per channel."""
STOP_GRACE = 3.0
"""At stop, how long what is queued (and the folded summaries) may take to post."""
LOG_INTERVAL = 10.0
"""At most one log line per kind of trouble and target in this many seconds."""
REMEMBERED_POSTS = 10_000
"""Task posts remembered for folding before the ones older than min_interval are dropped."""
MAX_HANGING_POSTS = 4
"""Posts past their deadline whose threads still wait on Slack; beyond this, none is started."""
LOG_MESSAGES_PER_INTERVAL = 20
"""Distinct log errors posted one by one within `log_events.min_interval`; past it, the rest
is folded into one message per server ("37 more log events…") at the end of the interval."""
FOLD_KEY_CHARS = 300
"""The part of a message that tells two errors apart (keys stay small in memory)."""
DISTINCT_COUNTED = 1000
"""Different messages counted per category summary (past it, the count says this many)."""
_LEVEL_RANK = {level: rank for rank, level in enumerate(LogLevel)}  # DEBUG … FATAL
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
        self._current: tuple[Kind, SlackMessage] | None = None
        """The message the worker is delivering (taken from the queue, not yet done)."""
        self._last_post: dict[str, float] = {}
        self._folded: dict[str, tuple[int, Event, float]] = {}
        self._distinct: dict[str, set[str]] = {}
        """A category's folded log events: their different messages (first FOLD_KEY_CHARS)."""
        self._log_posts: deque[float] = deque()
        """When each of the last distinct log errors was posted (for the per-interval cap)."""
        self._summary_due: dict[str, asyncio.TimerHandle] = {}
        self._next_allowed: dict[str, float] = {}
        self._posting: set[threading.Thread] = set()
        self._waiting: set[asyncio.Task[None]] = set()
        """Failures' messages waiting for their QRS context (at most `context_wait`)."""
        task_events = self._config.task_events
        self._routes = [route.filter.rule() for route in task_events.routes]
        self._filter = task_events.filter.rule() if task_events.filter is not None else None
        self._filtered = any(rule.needs_context for rule in self._routes) or (
            self._filter is not None and self._filter.needs_context
        )
        """Whether a failure's message waits for its context to be filtered or routed."""
        self._log_limit = RateLimiter(LOG_INTERVAL, context.clock)
        self._layout = SlackLayout(self._config, context.config.qlik.base_url, context.privacy)
        # A post may take the client's timeout for its connect and again for its answer;
        # past this the worker stops waiting for it (the thread ends on its own).
        self._post_deadline = 2.0 * self.poster.timeout + 1.0

    def start(self) -> None:
        for line in ignored_channels(self._config):
            log.warning(line)
        self._worker = asyncio.create_task(
            supervised("slack", self._work, self.context.stats), name="slack"
        )

    async def stop(self) -> None:
        """Post the folded summaries now, give the queue STOP_GRACE to drain, then count and log
        what is left as dropped: never lost without a word, never a hang on Slack."""
        waiting = list(self._waiting)
        for task in waiting:
            task.cancel()  # each posts now, without the context it waited for
        await asyncio.gather(*waiting, return_exceptions=True)
        for key, handle in list(self._summary_due.items()):
            handle.cancel()
            self._summary(key)
        # A worker that ended just now is restarted within the grace and drains the queue too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), STOP_GRACE)
        left = self._queue.qsize() + int(self._current is not None)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if left:
            self.context.stats.slack_dropped += left
            log.warning("Slack messages not posted before shutdown", count=left, waited=STOP_GRACE)

    def on_event(self, event: Event, received_at: float) -> None:
        if isinstance(event, LogEvent):
            self._on_log(event, received_at)
            return
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
        key = (
            f"{task_key(slug_of(self.context.state, event.server), event)}|{event.event_type.value}"
        )
        last = self._last_post.get(key)
        if (
            event.event_type in _FOLDED_TYPES
            and last is not None
            and received_at - last < settings.min_interval
        ):
            self._fold(key, event, received_at, last + settings.min_interval)
            return
        self._remember_post(key, received_at, settings.min_interval)
        self._post_task(event, received_at)

    # A failure's context from QRS (issue 26): waited for up to `context_wait`, never longer.

    def _post_task(self, event: TaskEvent, received_at: float) -> None:
        source = self.context.task_contexts
        named = with_known_task(self.context.state, event)
        if source is not None and self._filtered and awaits_its_task(named):
            # The engine's line of a task not known yet: no context can be had for it, and
            # the scheduler's line of the same failure is filtered and routed with its own.
            log.debug("engine line left to the scheduler's for the filters", app=event.app_id)
            return
        failure = failure_of(named)
        if failure is None:  # a success: no context, no filter
            self._enqueue("task_events", self._layout.message(event, received_at))
            return
        future = source.context_for(failure) if source is not None else None
        if (
            future is None
            or future.done()
            or self._config.context_wait <= 0
            or len(self._waiting) >= QUEUE_MAX
        ):
            self._post_with_context(event, received_at, future)
            return
        waiting = asyncio.create_task(self._after_context(event, received_at, future))
        self._waiting.add(waiting)
        waiting.add_done_callback(self._waiting.discard)

    async def _after_context(
        self, event: TaskEvent, received_at: float, future: asyncio.Future[dict[str, Any]]
    ) -> None:
        """Posts when the context is here, or `context_wait` has passed, or the bridge stops."""
        try:
            await asyncio.wait_for(asyncio.shield(future), self._config.context_wait)
        except (TimeoutError, asyncio.CancelledError):
            pass  # posted without it: never later than context_wait
        except Exception:
            self.failed("context")
        self._post_with_context(event, received_at, future)

    def _post_with_context(
        self,
        event: TaskEvent,
        received_at: float,
        future: asyncio.Future[dict[str, Any]] | None,
        folded: int = 0,
    ) -> None:
        """The message with the context as far as it came, where the filters send it."""
        full = _result(future)
        shown = None
        if future is not None:
            shown = self._shown(event, full)
        route = self._destination(event, full)
        if route is False:
            log.debug("failure filtered out of Slack", task=event.task_name)
            return
        message = self._layout.message(event, received_at, folded, context=shown)
        if route is not True:
            message = replace(message, route=route)
        self._enqueue("task_events", message)

    def _destination(self, event: TaskEvent, context: dict[str, Any] | None) -> int | bool:
        """The first route whose filter passes (its index); else True (the kind's own
        destination) when the kind's filter passes or there is none; else False."""
        for index, rule in enumerate(self._routes):
            if passes(rule, event, context):
                return index
        return self._filter is None or passes(self._filter, event, context)

    def _shown(self, event: TaskEvent, full: dict[str, Any] | None) -> dict[str, Any]:
        if full is None:
            self.context.stats.task_contexts["late_for_slack"] += 1
            return {"status": "waiting", "reason": f"{self._config.context_wait:g} s"}
        privacy = self.context.privacy
        return summary(private(full, privacy, privacy.user_part(event.user)))

    def _on_log(self, event: LogEvent, received_at: float) -> None:
        """A log event at or above `min_level`: the first of its kind is posted; the same error
        again within `min_interval` is folded into one message at the end of the interval.
        The same error: the same server, service and level, and the same category, or (without
        one) the same logger and message. Past `LOG_MESSAGES_PER_INTERVAL` distinct errors in
        an interval, the rest of the server's are folded into one message."""
        settings = self._config.log_events
        if not settings.enabled or _LEVEL_RANK[event.level] < _LEVEL_RANK[settings.min_level]:
            return
        slug = slug_of(self.context.state, event.server)
        what = (
            f"category:{event.category}"
            if event.category is not None
            else f"{event.subsystem}|{(event.message or '')[:FOLD_KEY_CHARS]}"
        )
        key = f"log|{slug}|{event.source.value}|{event.level.value}|{what}"
        interval = settings.min_interval
        last = self._last_post.get(key)
        if last is not None and received_at - last < interval:
            self._fold(key, event, received_at, last + interval)
            if event.category is not None:
                messages = self._distinct.setdefault(key, set())
                if len(messages) < DISTINCT_COUNTED:
                    messages.add((event.message or "")[:FOLD_KEY_CHARS])
            return
        posts = self._log_posts
        while posts and received_at - posts[0] >= interval:
            posts.popleft()
        if len(posts) >= LOG_MESSAGES_PER_INTERVAL:
            self._fold(f"log|{slug}|overflow", event, received_at, posts[0] + interval)
            return
        posts.append(received_at)
        self._remember_post(key, received_at, interval)
        self._enqueue("log_events", self._layout.message(event, received_at))

    def _fold(self, key: str, event: Event, received_at: float, due: float) -> None:
        """Count `event` into `key`'s next summary, posted at `due` (clock time)."""
        count = self._folded.get(key, (0, event, received_at))[0] + 1
        if count == 1:
            loop = asyncio.get_running_loop()
            self._summary_due[key] = loop.call_later(
                max(0.0, due - received_at), self.guarded("summary", self._summary), key
            )
        self._folded[key] = (count, event, received_at)

    def _remember_post(self, key: str, at: float, interval: float) -> None:
        self._last_post[key] = at
        if len(self._last_post) > REMEMBERED_POSTS:
            self._forget_posts_before(at - interval)

    def _forget_posts_before(self, cutoff: float) -> None:
        """Posts older than their min_interval fold nothing any more: forgotten, so the memory
        of posts stays bounded however many tasks (and distinct errors) a site has. (The
        shorter of the two intervals is safe for both: a key forgotten early posts again.)"""
        for key in [key for key, at in self._last_post.items() if at < cutoff]:
            if key not in self._folded:
                del self._last_post[key]

    def _summary(self, key: str) -> None:
        """The end of a quiet interval: one message for the events `key` folded."""
        self._summary_due.pop(key, None)
        folded = self._folded.pop(key, None)
        if folded is None:
            return
        count, event, received_at = folded
        overflow = key.endswith("|overflow")
        if not overflow:
            self._last_post[key] = self.context.clock()
        messages = self._distinct.pop(key, None)
        distinct = None if messages is None else len(messages)
        source = self.context.task_contexts
        failure = (
            failure_of(with_known_task(self.context.state, event))
            if isinstance(event, TaskEvent)
            else None
        )
        if isinstance(event, TaskEvent) and failure is not None:
            # The last folded failure's context as far as it came (no wait), and its route.
            future = source.context_for(failure) if source is not None else None
            self._post_with_context(event, received_at, future, count)
            return
        message = self._layout.message(event, received_at, count, overflow, distinct)
        self._enqueue(kind_of(event), message)

    def _enqueue(self, kind: Kind, message: SlackMessage) -> None:
        try:
            self._queue.put_nowait((kind, message))
        except asyncio.QueueFull:
            self.context.stats.slack_dropped += 1
            held_back = self._log_limit.allow("dropped")
            if held_back is not None:
                log.warning("Slack queue full: message dropped", held_back=held_back)

    # The worker.

    async def _work(self) -> None:
        while True:
            self._current = kind, message = await self._queue.get()
            try:
                await self._deliver(kind, message)
            except Exception as exc:  # a fault in the sink itself: this message only
                self.context.stats.slack_failed += 1
                self._count_error("deliver")
                self._warn(
                    f"fault:{type(exc).__name__}",
                    "Slack message not delivered: fault in the Slack sink",
                    target=self.poster.target(kind, message.route),
                    reason=f"{type(exc).__name__}: {exc}"[:300],
                    text=message.text[:200],
                )
            finally:
                self._current = None
                self._queue.task_done()

    async def _deliver(self, kind: Kind, message: SlackMessage) -> None:
        target = self.poster.target(kind, message.route)
        delay = BACKOFF_FIRST
        outcome = Outcome(False, "not tried")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._pace(target)
            outcome = await self._post(kind, message)
            if outcome.unexpected:
                self._count_error("post")
            if outcome.ok:
                self.context.stats.slack_sent += 1
                return
            if not outcome.retryable or attempt == MAX_ATTEMPTS:
                break
            wait = delay
            if outcome.retry_after is not None:
                wait = min(outcome.retry_after, MAX_RETRY_AFTER)
            else:
                delay *= 2
            self._warn(
                f"retry:{target}",
                "Slack post failed: trying again",
                target=target,
                reason=outcome.detail,
                attempt=attempt,
                retry_in=wait,
            )
            await asyncio.sleep(wait)
        self.context.stats.slack_failed += 1
        self._warn(
            f"{'unexpected' if outcome.unexpected else 'failed'}:{target}",
            "Slack message not delivered",
            target=target,
            reason=outcome.detail,
            attempts=attempt,
            text=message.text[:200],
        )

    async def _post(self, kind: Kind, message: SlackMessage) -> Outcome:
        """One post in a daemon thread of its own: a Slack that never answers holds up neither
        the event loop nor the process's exit, and the worker waits `_post_deadline` at most."""
        self._posting = {thread for thread in self._posting if thread.is_alive()}
        if len(self._posting) >= MAX_HANGING_POSTS:
            return Outcome(False, "earlier posts are still waiting for Slack", retryable=True)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outcome] = loop.create_future()

        def settle(outcome: Outcome) -> None:
            if not answer.done():
                answer.set_result(outcome)

        def run() -> None:
            try:
                outcome = self.poster.post(kind, message)
            except BaseException as exc:  # post() should not raise; if it does, say what
                outcome = Outcome(False, f"{type(exc).__name__} in the Slack client", None)
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(settle, outcome)

        thread = threading.Thread(target=run, name="slack-post", daemon=True)
        self._posting.add(thread)
        thread.start()
        try:
            return await asyncio.wait_for(answer, self._post_deadline)
        except TimeoutError:
            detail = f"timed out (no answer within {self._post_deadline:.0f} s)"
            return Outcome(False, detail, retryable=True)

    async def _pace(self, target: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        allowed = self._next_allowed.get(target, now)
        if allowed > now:
            await asyncio.sleep(allowed - now)
        self._next_allowed[target] = max(now, allowed) + CHANNEL_GAP

    def _count_error(self, where: str) -> None:
        """In `extension_errors` (`slack_sink.deliver`, `slack_sink.post`), beside the message
        counters: a fault, not Slack saying no."""
        self.context.stats.extension_errors[f"{self.name}.{where}"] += 1

    def _warn(self, key: str, event: str, **fields: object) -> None:
        """A warning, at most one per `key` in LOG_INTERVAL; the next says how many were held."""
        held_back = self._log_limit.allow(key)
        if held_back is not None:
            log.warning(event, held_back=held_back, **fields)


def _result(future: asyncio.Future[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The context if it has arrived."""
    if future is None or not future.done() or future.cancelled():
        return None
    return future.result()
