"""The extension that takes commands: it subscribes to each enabled command's topics (its own
and its aliases), runs its handler (guarded, as every extension hook) and publishes the
answer, if any, on `<base>/bridge/response/<name>`.

A command runs once, when it is sent. One that arrives retained (the broker kept it: someone
published it with the retain flag) is not run: it would run again at every reconnect and every
restart. It is counted (`commands_retained_ignored`) and logged once per topic, with the
command that clears it from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence

import structlog

from bridge.commands.builtin import COMMANDS
from bridge.commands.declare import REFUSAL_LOG_INTERVAL, Answers, Command, Core, Request, Tasks
from bridge.core.payloads import encode
from bridge.extensions import Context, Extension
from bridge.runtime.logs import RateLimiter

log = structlog.get_logger("qlik2mqtt.commands")


class Commands(Extension):
    def __init__(
        self,
        context: Context,
        core: Core,
        commands: Sequence[Command] = COMMANDS,
        tasks: Tasks | None = None,
    ) -> None:
        super().__init__(context)
        self._core = core  # the core's own acknowledge/forget: not an extension's business
        self._tasks = tasks  # Qlik Sense's repository (qrs.enabled): `task/start`
        self._by_topic = {
            topic: command
            for command in commands
            if command.enabled(context.config)
            for topic in command.topics_for(context.config)
        }
        self._retained_logged: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._refusals = RateLimiter(REFUSAL_LOG_INTERVAL, time.monotonic)

    def subscriptions(self) -> tuple[str, ...]:
        return tuple(self._by_topic)

    def on_retained(self, topic: str, payload: bytes) -> None:
        """Never run: see the module docstring."""
        if topic in self._by_topic:
            self._ignore_retained(topic)

    def on_message(self, topic: str, payload: bytes) -> None:
        command = self._by_topic.get(topic)
        if command is None:
            return
        if not payload:
            # An empty message is how a retained command is cleared (`mosquitto_pub -r -n`, as
            # the warning about one says): the broker hands it on live, and it is no command.
            log.debug("an empty message on a command topic: not a command", topic=topic)
            return
        request = Request(
            payload,
            self._core,
            self.context.config,
            self._tasks,
            self.context.state,
            self._refusals,
        )
        answer = command.handle(request)
        if isinstance(answer, Awaitable):
            task = asyncio.ensure_future(self._answer_later(command, answer))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            self._answer(command, answer)

    def _ignore_retained(self, topic: str) -> None:
        stats = self.context.stats
        stats.commands_retained_ignored += 1
        if topic in self._retained_logged:
            return
        self._retained_logged.add(topic)
        log.warning(
            "a retained command is never run (it would run again at every reconnect); "
            "clear it from the broker",
            topic=topic,
            clear=f"mosquitto_pub -r -n -t '{topic}'",
            ignored_total=stats.commands_retained_ignored,
        )

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks is not None:
            await self._tasks.aclose()

    async def _answer_later(self, command: Command, answer: Awaitable[Answers]) -> None:
        try:
            self._answer(command, await answer)
        except Exception:  # the handler's fault: logged, counted, and the bridge goes on
            self.failed(command.name)

    def _answer(self, command: Command, answers: Answers) -> None:
        topic = self.context.topics.response(command.name)
        for answer in answers if isinstance(answers, list) else (answers,):
            if answer is not None:
                self.context.link.publish_now(topic, encode(answer), retain=False)
