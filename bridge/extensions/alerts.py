"""Alert outputs: MQTT command topics (a Tasmota plug, a WLED strip, a zigbee2mqtt bulb) that
follow a flag — ON while a reload failure (or a log error, or a log event of a category) is
unacknowledged, OFF once it is.

Every output is set at connect (so a lamp left on by a crash is corrected), on every change of
its flag, and optionally blinks for a while after each new failure before it stays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import structlog

from bridge.config import AlertOutputConfig
from bridge.core.events import Event, LogEvent
from bridge.core.flags import flag_is_on, raises
from bridge.core.state import Change
from bridge.extensions import Context, Extension

log = structlog.get_logger("qlik2mqtt.alerts")


class AlertOutputs(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._outputs = context.config.alerts.outputs
        self._shown: dict[int, bool | None] = dict.fromkeys(range(len(self._outputs)))
        self._blinking: dict[int, asyncio.Task[None]] = {}

    async def stop(self) -> None:
        tasks = list(self._blinking.values())
        for task in tasks:
            task.cancel()  # each leaves its output as its flag says
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_connect(self) -> None:
        for index in range(len(self._outputs)):
            if index not in self._blinking:
                self._set(index, self._wanted(index), force=True)

    def on_event(self, event: Event, received_at: float) -> None:
        for index, output in enumerate(self._outputs):
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
            elif not wanted:
                blinking.cancel()  # acknowledged while blinking: it ends with the output off

    def _wanted(self, index: int) -> bool:
        return flag_is_on(self.context.state, self._outputs[index].when)

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
