"""The embedded MQTT broker: Debian's mosquitto as a child process, when no `mqtt.host` is set.

It makes `scripts/run` work on a machine with nothing else running. The bridge writes the
broker a private config (loopback only, persistence beside the state file), starts it, waits
until it accepts connections, and stops it when the bridge stops. With `mqtt.username` and a
password it takes only that user (a password file made with `mosquitto_passwd`, an ACL for
the bridge's topics); without, any local program may connect. On Linux the child is also
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
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """The one user the embedded broker takes, and the topic filters it may read and write."""

    username: str
    password: str
    topics: tuple[str, ...]


PASSWORD_FILE = "passwords"
ACL_FILE = "acl"


def broker_config(host: str, port: int, data_dir: Path, secured: bool = False) -> str:
    """mosquitto.conf for the embedded broker: one loopback listener, retained messages kept
    across restarts in `data_dir`; anonymous clients, or (`secured`) only the user of the
    password file, within its ACL."""
    access = ["allow_anonymous true"]
    if secured:
        access = [
            "allow_anonymous false",
            f"password_file {data_dir / PASSWORD_FILE}",
            f"acl_file {data_dir / ACL_FILE}",
        ]
    lines = [
        f"listener {port} {host}",
        *access,
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


async def start_embedded_broker(
    host: str, port: int, data_dir: Path, access: BrokerAccess | None = None
) -> EmbeddedBroker:
    """Start mosquitto on host:port and return once it accepts connections; with `access`,
    it takes only that user."""
    executable = find_mosquitto()
    if executable is None:
        raise MosquittoMissingError(f"no mosquitto for the embedded MQTT broker: {INSTALL_HINT}")
    _ensure_free(host, port)
    config_file = await asyncio.to_thread(_write_config, host, port, data_dir, access)
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


def _write_config(host: str, port: int, data_dir: Path, access: BrokerAccess | None) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if access is not None:
        _write_access(data_dir, access)
    else:
        for name in (PASSWORD_FILE, ACL_FILE):  # a broker made anonymous again forgets them
            (data_dir / name).unlink(missing_ok=True)
    config_file = data_dir / "mosquitto.conf"
    config_file.write_text(broker_config(host, port, data_dir, secured=access is not None))
    return config_file


def _write_access(data_dir: Path, access: BrokerAccess) -> None:
    """The password file (written in plain text, private, then hashed in place by
    `mosquitto_passwd -U`: the password never appears on a command line) and the ACL."""
    if ":" in access.username or any(c in access.username + access.password for c in "\r\n"):
        raise EmbeddedBrokerError(
            "mqtt.username may not hold ':', and neither it nor the password a line break, "
            "for the embedded broker's password file"
        )
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        raise MosquittoMissingError(f"no mosquitto_passwd for the embedded broker: {INSTALL_HINT}")
    passwords = data_dir / PASSWORD_FILE
    passwords.unlink(missing_ok=True)
    descriptor = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f"{access.username}:{access.password}\n")
    result = subprocess.run(
        [tool, "-U", str(passwords)], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        passwords.unlink(missing_ok=True)
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise EmbeddedBrokerError(f"mosquitto_passwd failed: {reason[-1] if reason else '?'}")
    rules = [f"user {access.username}", *(f"topic readwrite {topic}" for topic in access.topics)]
    (data_dir / ACL_FILE).write_text("\n".join(rules) + "\n")


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
