"""Real parts for tests: a mosquitto process, an MQTT subscriber, free ports, UDP senders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from bridge.mqtt.embedded import find_mosquitto

FIXTURES = Path(__file__).parent / "fixtures"
READY_TIMEOUT = 10.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    found = find_mosquitto()  # where the embedded broker looks for it
    if found is None:
        raise RuntimeError("mosquitto is not installed: run scripts/setup")
    return found


class Mosquitto:
    """A real mosquitto on a loopback port; stop() and start() again keep the port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        persistence: bool = False,
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        acl: str | None = None,
    ) -> None:
        """users: a password file with these users (no anonymous access); tls: (ca, cert, key)
        for a TLS-only listener; acl: the text of an `acl_file`."""
        self.port = port or free_port()
        self._conf = workdir / f"mosquitto-{self.port}.conf"
        lines = [f"listener {self.port} 127.0.0.1"]
        if tls is not None:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        lines += [
            f"allow_anonymous {'false' if users else 'true'}",
            "max_queued_messages 100000",
            f"persistence {'true' if persistence else 'false'}",
        ]
        if users:
            password_file = workdir / f"passwords-{self.port}"
            password_file.write_text("")
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(password_file), user, password], check=True
                )
            lines.append(f"password_file {password_file}")
        if acl is not None:
            acl_file = workdir / f"acl-{self.port}"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        if persistence:  # sessions of clean_session=False clients survive a restart
            lines.append(f"persistence_location {workdir}/")
        if os.geteuid() == 0:  # mosquitto would drop to its own user, locked out of workdir
            lines.append("user root")
        self._conf.write_text("\n".join(lines) + "\n")
        self._log = workdir / f"mosquitto-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self._conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # readiness: the port accepts a connection (bounded)
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {self._log.read_text()[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker dies mid-work, as in a crash or an OOM kill."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
        self._process = None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None


class Gate:
    """A TCP forwarder in front of a broker that a test opens and shuts: while shut it closes
    every new connection at once, so a test decides when a client may reconnect. `crash`
    resets the connections it forwards; `hang` stops them moving, open but silent, as a broker
    that stopped reading (or a host that vanished) leaves them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._flowing: list[asyncio.Event] = []

    async def start(self) -> Gate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def crash(self) -> None:
        """Reset every forwarded connection at once (RST both ways), as a broker host that
        dies does; bytes on their way are lost, acknowledgements included."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def hang(self) -> None:
        """The connections forwarded so far stop moving data either way (new ones flow)."""
        for flowing in self._flowing:
            flowing.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.crash()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self._writers += [writer, upstream_writer]
        flowing = asyncio.Event()
        flowing.set()
        self._flowing.append(flowing)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, flowing))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        try:
            while data := await source.read(65536):
                await flowing.wait()  # hung: what was read is never passed on
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """An MQTT 3.1.1 client that records everything it receives and lets tests await it."""

    def __init__(
        self,
        port: int,
        client_id: str | None = None,
        clean: bool = True,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port
        self._tls = tls
        self.messages: list[Received] = []
        self._arrived = asyncio.Condition()
        client_id = client_id or f"test-sub-{uuid.uuid4().hex[:8]}"
        self._client = gmqtt.Client(client_id, clean_session=clean)
        self._client.reconnect_retries = 0
        if auth is not None:
            self._client.set_auth_credentials(*auth)
        self._client.on_message = self._on_message
        self._subscribed = asyncio.Event()
        self._client.on_subscribe = lambda *args: self._subscribed.set()

    async def start(self, *topics: str) -> Subscriber:
        await self._client.connect("127.0.0.1", self.port, ssl=self._tls or False, version=MQTTv311)
        await self.subscribe(*topics)
        return self

    async def subscribe(self, *topics: str) -> None:
        """Subscribe and await each SUBACK: the broker has handled what this client sent
        before (one connection is read in order)."""
        for topic in topics:
            self._subscribed.clear()
            self._client.subscribe(topic, qos=1)
            await asyncio.wait_for(self._subscribed.wait(), READY_TIMEOUT)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.disconnect()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain)

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        self.messages.append(Received(topic, payload, bool(props.get("retain"))))
        asyncio.get_running_loop().create_task(self._notify())
        return 0

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    def on(self, topic: str, since: int = 0) -> list[Received]:
        return [m for m in self.messages[since:] if m.topic == topic]

    def payloads(self, topic: str, since: int = 0) -> list[bytes]:
        return [m.payload for m in self.on(topic, since)]

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Received], bool] = lambda m: True,
        timeout: float = 10.0,
        since: int = 0,
    ) -> Received:
        """The first message on `topic` (received at index `since` or later, or still to
        come) that satisfies `predicate`."""

        def find() -> Received | None:
            recent = self.messages[since:]
            return next((m for m in recent if m.topic == topic and predicate(m)), None)

        async def wait() -> Received:
            async with self._arrived:
                found = find()
                while found is None:
                    await self._arrived.wait()
                    found = find()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [(m.topic, m.payload[:200]) for m in self.messages if m.topic == topic]
            raise AssertionError(f"nothing matching on {topic!r}; seen there: {seen}") from None

    async def wait_quiet(self, quiet: float = 0.3, timeout: float = 20.0) -> None:
        """Until nothing has arrived for `quiet` seconds: what was on its way has landed.
        (Awaiting an absence: each message restarts the wait, bounded by `timeout`.)"""

        async def wait() -> None:
            async with self._arrived:
                while True:
                    try:
                        await asyncio.wait_for(self._arrived.wait(), quiet)
                    except TimeoutError:
                        return

        await asyncio.wait_for(wait(), timeout)

    def mark(self) -> int:
        """A position in the message log, for `since=`: only what arrives later counts."""
        return len(self.messages)

    async def wait_json(
        self, topic: str, predicate: Callable[[Any], bool], timeout: float = 10.0, since: int = 0
    ) -> Any:
        def matches(message: Received) -> bool:
            return bool(message.payload) and predicate(message.json())

        received = await self.wait_for(topic, matches, timeout, since)
        return received.json()

    async def wait_count(self, topic: str, count: int, timeout: float = 20.0) -> list[Received]:
        async def wait() -> None:
            async with self._arrived:
                while len(self.on(topic)) < count:
                    await self._arrived.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{len(self.on(topic))} of {count} messages on {topic!r}"
            ) from None
        return self.on(topic)


class UdpSender:
    def __init__(self, port: int) -> None:
        self.port = port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, data: bytes | str) -> None:
        self._sock.sendto(
            data.encode() if isinstance(data, str) else data, ("127.0.0.1", self.port)
        )

    def close(self) -> None:
        self._sock.close()


def fixture_datagrams() -> list[dict[str, Any]]:
    lines = (FIXTURES / "log4net-datagrams.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


ROOT = Path(__file__).parent.parent


def qlik2mqtt(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it: a separate process, extra environment on top."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT / "tests",  # no config.yaml of the developer's is found there
    )


QRS_NEEDS: dict[str, Any] = {
    "mqtt": {"host": "127.0.0.1"},  # not the embedded broker, anonymous
    "udp": {"allowed_sources": ["127.0.0.1"]},  # the senders listed
}
"""What a config with `qrs.enabled` needs besides its `qrs` section (bridge.config)."""

CONFIG_SAID = "qlik2mqtt: config: "
"""The line every command writes first on stderr when no --config names its config."""


def complaints(stderr: str) -> str:
    """A command's stderr without the line that says which config it used."""
    return "".join(line for line in stderr.splitlines(True) if not line.startswith(CONFIG_SAID))


def bridge_env(mqtt_port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    """QLIK2MQTT_* variables for a bridge (or command) on loopback: this broker, free UDP
    ports, state in tmp_path; `extra` adds or overrides."""
    return {
        "QLIK2MQTT_MQTT__HOST": "127.0.0.1",
        "QLIK2MQTT_MQTT__PORT": str(mqtt_port),
        "QLIK2MQTT_UDP__HOST": "127.0.0.1",
        "QLIK2MQTT_UDP__USER_ACTIVITY_PORT": str(free_port(socket.SOCK_DGRAM)),
        "QLIK2MQTT_UDP__TASK_PORT": str(free_port(socket.SOCK_DGRAM)),
        "QLIK2MQTT_UDP__LOG_PORT": str(free_port(socket.SOCK_DGRAM)),
        "QLIK2MQTT_STATE_FILE": str(tmp_path / "data" / "state.json"),
        **extra,
    }


def log4j_xml(logger: str, level: str, message: str, host: str = "QSPROD02", **props: str) -> bytes:
    """A datagram as log4net's XmlLayoutSchemaLog4j sends it (see tests/log4net_model.py)."""
    from tests.log4net_model import LogEvent, render_log4j_xml

    return render_log4j_xml(LogEvent(logger, level, message, props), host, 1795565191804)


async def healthy_report(path: Path, timeout: float = 30.0) -> None:
    """Until the running bridge's health file says it is connected. The report is a file the
    bridge rewrites each second it changes, with no event to await: polled, bounded."""

    def connected() -> bool:
        return path.exists() and '"mqtt_connected": true' in path.read_text()

    deadline = asyncio.get_running_loop().time() + timeout
    while not connected():
        assert asyncio.get_running_loop().time() < deadline, f"no healthy report in {path}"
        await asyncio.sleep(0.1)
