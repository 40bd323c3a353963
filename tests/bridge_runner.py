"""Runs the real bridge service in-process against a real broker, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.config import Config
from bridge.service import run
from tests.helpers import Mosquitto, Subscriber, UdpSender, free_port, qlik2mqtt


def bridge_config(tmp_path: Path, mqtt_port: int, **overrides: Any) -> Config:
    raw: dict[str, Any] = {
        "udp": {
            "host": "127.0.0.1",
            "user_activity_port": free_port(socket.SOCK_DGRAM),
            "task_port": free_port(socket.SOCK_DGRAM),
            "log_port": free_port(socket.SOCK_DGRAM),
        },
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "state_interval": 0.05},
        "state": {"users_interval": 0.05},
        "state_file": str(tmp_path / "state.json"),
        "stats_interval": 0.2,
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    if raw.get("qrs", {}).get("enabled"):  # QRS needs the senders listed: the tests' loopback
        raw["udp"].setdefault("allowed_sources", ["127.0.0.0/8"])
    return Config.model_validate(raw)


class RunningBridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.users = UdpSender(config.udp.user_activity_port)
        self.tasks = UdpSender(config.udp.task_port)
        self.logs = UdpSender(config.udp.log_port)

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

    async def send_test_events(
        self, env: dict[str, str], *extra: str
    ) -> subprocess.CompletedProcess[str]:
        """`qlik2mqtt send-test-events` to this bridge's ports, as a user runs it."""
        return await asyncio.to_thread(
            qlik2mqtt,
            "send-test-events",
            "--user-port",
            str(self.config.udp.user_activity_port),
            "--task-port",
            str(self.config.udp.task_port),
            "--log-port",
            str(self.config.udp.log_port),
            *extra,
            env=env,
        )

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
        self.logs.close()


async def logins_across_an_outage(
    bridge: RunningBridge,
    broker: Mosquitto,
    count: int,
    *,
    when_down: Callable[[], None] = lambda: None,
    restart_bridge: bool = False,
) -> list[str]:
    """Start `bridge`, see one login through, stop `broker` (`when_down` runs just before),
    send `count` logins, start the broker again (and the bridge too, when asked), and return
    the user ids a persistent subscriber got afterwards, in order (the first login left out:
    QoS 1 may bring it again if its PUBACK was lost in the outage). The broker needs
    persistence; the caller closes the bridge and stops the broker."""
    topic = "qlik2mqtt/qs1/event/user"
    watcher = await Subscriber(broker.port, client_id="outage-watcher", clean=False).start(
        "qlik2mqtt/+/event/user"
    )
    try:
        await bridge.start()
        bridge.users.send("QS1;Start session;CORP;before")
        await watcher.wait_json(topic, lambda p: p["user_id"] == "before")
        await watcher.stop()
        when_down()
        broker.stop()
        for number in range(count):
            bridge.users.send(f"QS1;Start session;CORP;user{number:03d}")
        if restart_bridge:
            # Stopped at once: it still reads what the socket holds, and keeps it on disk.
            await bridge.stop()
        broker.start()
        if restart_bridge:
            await bridge.start()
        watcher = await Subscriber(broker.port, client_id="outage-watcher", clean=False).start()
        last = f"user{count - 1:03d}"
        await watcher.wait_json(topic, lambda p: p["user_id"] == last, timeout=60)
        return [m.json()["user_id"] for m in watcher.on(topic) if m.json()["user_id"] != "before"]
    finally:
        await watcher.stop()
