"""Runs the real bridge service in-process against a real broker, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

from bridge.config import Config
from bridge.service import run
from tests.helpers import UdpSender, free_port


def bridge_config(tmp_path: Path, mqtt_port: int, **overrides: Any) -> Config:
    raw: dict[str, Any] = {
        "udp": {
            "host": "127.0.0.1",
            "user_activity_port": free_port(socket.SOCK_DGRAM),
            "task_port": free_port(socket.SOCK_DGRAM),
        },
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "state_interval": 0.05},
        "state_file": str(tmp_path / "state.json"),
        "stats_interval": 0.2,
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    return Config.model_validate(raw)


class RunningBridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.users = UdpSender(config.udp.user_activity_port)
        self.tasks = UdpSender(config.udp.task_port)

    async def start(self) -> RunningBridge:
        """Start the service and return once its UDP ports are bound."""
        self._stop.clear()
        ready = asyncio.Event()
        self._task = asyncio.create_task(run(self.config, self._stop, ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiting.cancel()
            await self._task  # raises what stopped it
            raise RuntimeError("the bridge stopped before it was ready")
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
            self._task = None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        self.users.close()
        self.tasks.close()
