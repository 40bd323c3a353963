"""The extension that takes commands: it subscribes to each enabled command's topic, runs its
handler (guarded, as every extension hook) and publishes the answer, if any, on
`<base>/bridge/response/<name>`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence

from bridge.commands.builtin import COMMANDS
from bridge.commands.declare import REFUSAL_LOG_INTERVAL, Answers, Command, Core, Request, Tasks
from bridge.core.payloads import encode
from bridge.extensions import Context, Extension
from bridge.runtime.logs import RateLimiter


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
            command.topic_for(context.config): command
            for command in commands
            if command.enabled(context.config)
        }
        self._pending: set[asyncio.Task[None]] = set()
        self._refusals = RateLimiter(REFUSAL_LOG_INTERVAL, time.monotonic)

    def subscriptions(self) -> tuple[str, ...]:
        return tuple(self._by_topic)

    def on_message(self, topic: str, payload: bytes) -> None:
        command = self._by_topic.get(topic)
        if command is None:
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
