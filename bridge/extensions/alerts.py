"""Alert outputs: MQTT command topics (a Tasmota plug, a WLED strip, a zigbee2mqtt bulb) that
follow a flag — ON while a reload failure (or a log error, or a log event of a category) is
unacknowledged, OFF once it is.

Every output is set at connect (so a lamp left on by a crash is corrected), on every change of
its flag, and optionally blinks for a while after each new failure before it stays on.

An output with a `filter` (issue 26) follows only the failures that pass it: each new failure
waits for its QRS context up to `alerts.context_wait` (never the other outputs, nor the
event), then counts for the output if it passes (without context: `without_context`). The
output is on while one of its flag's tasks passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import structlog

from bridge.config import AlertOutputConfig
from bridge.core.context_filter import passes
from bridge.core.events import Event, LogEvent, TaskEvent
from bridge.core.flags import RELOAD_FAILURE, SERVER_PREFIX, flag_is_on, flagged_tasks, raises
from bridge.core.reloads import TASK, V1, identity_of
from bridge.core.state import BridgeState, Change, reload_identity, with_known_task
from bridge.core.task_context import awaits_its_task, failure_of
from bridge.extensions import Context, Extension

log = structlog.get_logger("qlik2mqtt.alerts")


class AlertOutputs(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._outputs = context.config.alerts.outputs
        self._shown: dict[int, bool | None] = dict.fromkeys(range(len(self._outputs)))
        self._blinking: dict[int, asyncio.Task[None]] = {}
        self._rules = {
            index: output.filter.rule()
            for index, output in enumerate(self._outputs)
            if output.filter is not None
        }
        self._passed: dict[int, set[str]] = {index: set() for index in self._rules}
        """A filtered output's task keys that passed (only those in its flag count)."""
        self._deciding: set[asyncio.Task[None]] = set()
        self._restoring: Counter[int] = Counter()
        """Per filtered output, the restored failures still being decided at start: until
        they are, a connect leaves the (retained) output as it was, no OFF-then-ON flicker."""

    async def stop(self) -> None:
        for deciding in list(self._deciding):
            deciding.cancel()
        await asyncio.gather(*self._deciding, return_exceptions=True)
        tasks = list(self._blinking.values())
        for task in tasks:
            task.cancel()  # each leaves its output as its flag says
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def start(self) -> None:
        """A filtered output decides again for the unacknowledged failures the restored state
        still knows (the retry candidates and the last failed task): their contexts are not
        kept across a restart."""
        if not self._rules:
            return
        state = self.context.state
        records = [*state.retryable.values(), state.last_failed_task]
        events = {id(r.event): r.event for r in records if r is not None}.values()
        for index, output in enumerate(self._outputs):
            if index not in self._rules:
                continue
            flagged = set(flagged_tasks(state, output.when))
            flagged_reloads = _identities(state, flagged)
            for event in events:
                if reload_identity(state, event) in flagged_reloads:
                    self._restoring[index] += 1
                    self._decide(index, event, restoring=True)

    def on_connect(self) -> None:
        for index in range(len(self._outputs)):
            if index not in self._blinking and not self._restoring[index]:
                self._set(index, self._wanted(index), force=True)

    def on_event(self, event: Event, received_at: float) -> None:
        for index, output in enumerate(self._outputs):
            if index in self._rules and isinstance(event, TaskEvent):
                # A filter judges the reload, whichever node's line names what it reads (the
                # engine's line comes from the node that ran it, the scheduler's may not).
                when = RELOAD_FAILURE if output.when.startswith(SERVER_PREFIX) else output.when
                if raises(self.context.state, when, event):
                    self._decide(index, event)
                continue
            if output.blink is None or not raises(self.context.state, output.when, event):
                continue
            if isinstance(event, LogEvent) and index in self._blinking:
                continue  # a burst of log errors blinks once, not once per error
            self._start_blink(index, output)

    def on_change(self, change: Change) -> None:
        for index in range(len(self._outputs)):
            wanted = self._wanted(index)
            blinking = self._blinking.get(index)
            if blinking is None:
                self._set(index, wanted)
            elif not wanted and change.untracked is None:
                blinking.cancel()  # acknowledged while blinking: it ends with the output off
                # (an untracked host's failure flags nothing: its blink runs its course)

    def _wanted(self, index: int) -> bool:
        when = self._outputs[index].when
        passed = self._passed.get(index)
        if passed is None:
            return flag_is_on(self.context.state, when)
        if not passed:
            return False  # nothing that passed is kept: no flag to look through
        state = self.context.state
        joins = state.reloads.joins
        now = {joins.get(identity) or identity for identity in passed}  # joined since
        kept = now & _identities(state, flagged_tasks(state, when))
        passed.clear()  # acknowledged, succeeded or expired: forgotten here too
        passed.update(kept)
        return bool(kept)

    def _decide(self, index: int, event: TaskEvent, restoring: bool = False) -> None:
        """Whether this failure counts for the filtered output: now if its context is here
        (or needs none, or QRS is off), else when it comes, `alerts.context_wait` at most.
        `restoring`: one of the restored failures `start` decides again."""
        rule = self._rules[index]
        named = with_known_task(self.context.state, event)
        source = self.context.task_contexts
        if source is not None and rule.needs_context and awaits_its_task(named):
            if restoring:
                self._restored(index)
            return  # the engine's line of a task not known yet: the scheduler's line decides
        failure = failure_of(named)
        future = None
        if source is not None and failure is not None and rule.needs_context:
            future = source.context_for(failure)
        wait = self.context.config.alerts.context_wait
        if future is None or future.done() or wait <= 0:
            self._decided(index, event, future)
            if restoring:
                self._restored(index)
            return
        deciding = asyncio.create_task(self._after_context(index, event, future, wait, restoring))
        self._deciding.add(deciding)
        deciding.add_done_callback(self._deciding.discard)

    async def _after_context(
        self,
        index: int,
        event: TaskEvent,
        future: asyncio.Future[dict[str, Any]],
        wait: float,
        restoring: bool,
    ) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            pass  # decided without it: `without_context`
        except asyncio.CancelledError:
            return  # stopping: the output stays as it is
        except Exception:
            self.failed("context")
        try:
            self._decided(index, event, future)
            if restoring:
                self._restored(index)
        except Exception:
            self.failed("decide")

    def _restored(self, index: int) -> None:
        """One restored failure decided: when the last is, the output says what is true."""
        self._restoring[index] -= 1
        if self._restoring[index] <= 0:
            del self._restoring[index]
            if index not in self._blinking:
                self._set(index, self._wanted(index))  # unless a decision just said it

    def _decided(
        self, index: int, event: TaskEvent, future: asyncio.Future[dict[str, Any]] | None
    ) -> None:
        context = None
        if future is not None and future.done() and not future.cancelled():
            context = future.result()
        output = self._outputs[index]
        if not passes(self._rules[index], event, context):
            log.info("alert output: failure filtered out", output=output.name or output.topic)
            return
        self._passed[index].add(reload_identity(self.context.state, event))
        if output.blink is not None and self._wanted(index):
            self._start_blink(index, output)
        elif index not in self._blinking:
            self._set(index, self._wanted(index))

    def _set(self, index: int, on: bool, force: bool = False) -> None:
        if not force and self._shown[index] is on:
            return
        output = self._outputs[index]
        payload = output.on if on else output.off
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload.encode()
        if self.context.link.publish_now(output.topic, data, retain=output.retain, qos=output.qos):
            self._shown[index] = on
            log.info(
                "alert output set", output=output.name or output.topic, state="on" if on else "off"
            )
        else:
            self._shown[index] = None  # unknown: set again at the next connect

    def _start_blink(self, index: int, output: AlertOutputConfig) -> None:
        running = self._blinking.get(index)
        if running is not None:
            running.cancel()  # a new failure starts the blinking over
        self._blinking[index] = asyncio.create_task(self._blink(index, output))

    async def _blink(self, index: int, output: AlertOutputConfig) -> None:
        """ON, OFF, … for `blink.seconds` (an even count, so the last is OFF), then steady."""
        assert output.blink is not None
        toggles = max(2, math.ceil(output.blink.seconds / output.blink.interval))
        toggles += toggles % 2
        try:
            for toggle in range(toggles):
                self._set(index, toggle % 2 == 0, force=True)
                await asyncio.sleep(output.blink.interval)
        except Exception:
            self.failed("blink")  # the lamp still goes steady below
        finally:
            if self._blinking.get(index) is asyncio.current_task():
                del self._blinking[index]
                self._set(index, self._wanted(index), force=True)


def _identities(state: BridgeState, flagged: Iterable[str]) -> set[str]:
    """The reloads these flagged keys keep, on any server (a format-1 `v1:` key also as the
    task it names: a restored failure is the same reload as its task's lines)."""
    kept = {identity_of(key) for key in flagged}
    return kept | {f"{TASK}{identity[len(V1) :]}" for identity in kept if identity.startswith(V1)}
