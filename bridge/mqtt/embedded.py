"""The embedded MQTT broker: Debian's mosquitto as a child process, when no `mqtt.host` is set.

It makes `scripts/run` work on a machine with nothing else running. The bridge writes the
broker a private config (loopback only, persistence beside the state file), starts it, waits
until it accepts connections, and stops it when the bridge stops. On Linux the child is also
told to end when the bridge dies without stopping it (SIGKILL, a crash): no stray broker keeps
the port. For production point `mqtt.host` at the site's broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger("qlik2mqtt.embedded")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
INSTALL_HINT = (
    "install Debian's mosquitto (apt-get install mosquitto; scripts/setup does it) "
    "or set mqtt.host to an existing broker"
)
PR_SET_PDEATHSIG = 1


class EmbeddedBrokerError(Exception):
    """The embedded broker cannot start."""


class MosquittoMissingError(EmbeddedBrokerError):
    """No mosquitto executable: a setup problem, reported like a config error (exit 2)."""


class BrokerPortTakenError(EmbeddedBrokerError):
    """Something else listens on the embedded broker's port: a config choice (exit 2)."""


def find_mosquitto() -> str | None:
    """The mosquitto executable: on PATH, else where Debian puts it (sbin is not on every
    user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def broker_config(host: str, port: int, data_dir: Path) -> str:
    """mosquitto.conf for the embedded broker: one loopback listener, anonymous clients,
    retained messages kept across restarts in `data_dir`."""
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 60",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        # As root mosquitto switches to the `mosquitto` user, which cannot write our folder.
        lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


class EmbeddedBroker:
    """mosquitto as a child process: started, kept running, stopped with the bridge."""

    def __init__(self, executable: str, config_file: Path, host: str, port: int) -> None:
        self._command = (executable, "-c", str(config_file))
        self._host, self._port = host, port
        self.address = f"{host}:{port}"
        self.process: asyncio.subprocess.Process | None = None
        self._log_relay: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        """Start mosquitto and return once it accepts connections; EmbeddedBrokerError if it
        ends or does not listen within START_TIMEOUT."""
        process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_end_with_parent() if sys.platform == "linux" else None,
            start_new_session=True,  # Ctrl-C on the terminal is the bridge's to handle
        )
        self.process = process
        try:
            await asyncio.wait_for(_until_listening(process, self._host, self._port), START_TIMEOUT)
        except (TimeoutError, EmbeddedBrokerError) as exc:
            await self._end_process()
            if isinstance(exc, EmbeddedBrokerError):
                raise
            raise EmbeddedBrokerError(
                f"mosquitto not listening after {START_TIMEOUT:.0f} s"
            ) from None
        assert process.stderr is not None
        self._log_relay = asyncio.create_task(_relay(process.stderr), name="mosquitto-log")

    async def keep_running(self) -> None:
        """Start mosquitto again whenever it ends while the bridge runs (a crash, an OOM kill).
        Run it supervised: a failed restart raises, and the supervisor retries with backoff."""
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            log.error("embedded broker ended: starting it again", exit_code=code)
            if self._log_relay is not None:
                await self._log_relay
            await self.start()
            log.info("embedded broker started again", pid=self.pid)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns once the process is gone."""
        self._stopping = True
        await self._end_process()

    async def _end_process(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._log_relay is not None:
            await self._log_relay  # ends with the process's stderr
            self._log_relay = None


async def start_embedded_broker(host: str, port: int, data_dir: Path) -> EmbeddedBroker:
    """Start mosquitto on host:port and return once it accepts connections."""
    executable = find_mosquitto()
    if executable is None:
        raise MosquittoMissingError(f"no mosquitto for the embedded MQTT broker: {INSTALL_HINT}")
    _ensure_free(host, port)
    config_file = await asyncio.to_thread(_write_config, host, port, data_dir)
    broker = EmbeddedBroker(executable, config_file, host, port)
    await broker.start()
    return broker


def _ensure_free(host: str, port: int) -> None:
    """Refuse a port another program listens on: the bridge would talk to that program."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BrokerPortTakenError(
                f"{host}:{port} is in use ({exc.strerror or exc}), so the embedded MQTT broker "
                f"cannot listen there: another broker (Debian's mosquitto service listens on "
                f"1883) can be used with mqtt.host: {host}, or set mqtt.port to a free port"
            ) from None


def _write_config(host: str, port: int, data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = data_dir / "mosquitto.conf"
    config_file.write_text(broker_config(host, port, data_dir))
    return config_file


async def _until_listening(process: asyncio.subprocess.Process, host: str, port: int) -> None:
    while True:
        if process.returncode is not None:
            raise EmbeddedBrokerError(await _why_it_ended(process))
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def _why_it_ended(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    text = (await process.stderr.read()).decode("utf-8", errors="replace")
    lines = [line.split(": ", 1)[-1] for line in text.splitlines() if line.strip()]
    reason = "; ".join(lines[-2:]) or f"exit code {process.returncode}"
    return f"mosquitto ended at start: {reason}"


ROOT_WARNING = "should not be run as root"
"""mosquitto's warning when it keeps root, which the bridge asks of it when it runs as root
(its folder is root's): the bridge's choice, not news for the log."""


async def _relay(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        text = line.decode("utf-8", errors="replace").strip()
        if text and ROOT_WARNING not in text:
            log.warning("embedded broker", message=text.split(": ", 1)[-1])


def _end_with_parent() -> Callable[[], None]:
    """What the child runs before exec: ask Linux for SIGTERM when the bridge's thread that
    started it ends (prctl PR_SET_PDEATHSIG). Looked up here, in the parent: nothing but the
    call itself runs between fork and exec."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the bridge died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child
