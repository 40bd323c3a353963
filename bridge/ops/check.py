"""`qlik2mqtt check`: everything the bridge needs, tried before it runs, one line per item."""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bridge.config import Config
from bridge.inputs.builtin import INPUTS
from bridge.inputs.declare import listening
from bridge.inputs.listener import KERNEL_BYTES_PER_DATAGRAM, bind_udp, grow_receive_buffer
from bridge.mqtt import BrokerSettings, probe
from bridge.mqtt.connection import broker_settings
from bridge.mqtt.embedded import INSTALL_HINT, find_mosquitto
from bridge.ops.health import health_path, running_report

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Result:
    item: str
    ok: bool
    detail: str
    warning: bool = False
    """Works, but not as well as it could (printed WARN; the exit code stays 0)."""


async def run_checks(config: Config, config_path: Path | None) -> list[Result]:
    source = str(config_path) if config_path else "built-in defaults and the environment"
    results = [Result("config", True, f"valid ({source})")]
    running = running_report(health_path(config.state_file))
    results.append(await _broker(config, running))
    for port in sorted(port for port, _ in listening(INPUTS, config.udp)):
        results.append(_udp(config.udp.host, port, config.udp.receive_buffer_bytes, running))
    results.append(_state_dir(config.state_file))
    if config.qrs.enabled:
        results.append(await _qrs(config))
    results += _private_files(config)
    return results


def _private_files(config: Config) -> list[Result]:
    """A warning for each file holding a secret (the QRS client key, the broker's password
    file, an MQTT TLS key) that others than its owner may read, as ssh warns."""
    files = {
        "qrs.client_key": config.qrs.client_key if config.qrs.enabled else None,
        "mqtt.password_file": config.mqtt.password_file,
        "mqtt.tls.keyfile": config.mqtt.tls.keyfile,
    }
    results = []
    for key, path in files.items():
        if path is None:
            continue
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            continue  # the config check already said why it cannot be read
        if mode & 0o077:
            results.append(
                Result(
                    "secrets",
                    True,
                    f"{key} {path} can be read by others than its owner (mode {mode:04o}): "
                    f"chmod 600 {path}",
                    warning=True,
                )
            )
    return results


async def _qrs(config: Config) -> Result:
    """An authenticated `GET /qrs/about` with the configured certificates and user: ok, or the
    short reason a start would get. Nothing from the certificates is shown."""
    from bridge.qrs.client import QrsClient, QrsError  # httpx only when QRS is on
    from bridge.qrs.tls import CertificateError, client_context

    qrs = config.qrs
    where = f"{qrs.host}:{qrs.port}"
    try:
        tls = client_context(qrs)
    except CertificateError as exc:
        return Result("qrs", False, f"{exc}")
    client = QrsClient(qrs.model_copy(update={"timeout": min(qrs.timeout, PROBE_TIMEOUT)}), tls)
    try:
        await client.about()
    except QrsError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        return Result("qrs", False, f"{where}: {exc.reason.value}{detail}")
    finally:
        await client.aclose()
    user = f"{qrs.user_directory}\\{qrs.user_id}"
    unverified = "; qrs.verify is false: its certificate is not checked" if not qrs.verify else ""
    return Result("qrs", True, f"{where} answers, as {user}{unverified}", warning=not qrs.verify)


async def _broker(config: Config, running: dict[str, Any] | None) -> Result:
    """`running`: the running bridge's health report, if one runs."""
    if config.mqtt.host is None:
        taken = _tcp_in_use("127.0.0.1", config.mqtt.port)
        if taken and running is not None:  # its embedded broker, most likely: ask it
            settings = broker_settings(config, "check")
            problem = await probe(settings, PROBE_TIMEOUT)
            where = f"127.0.0.1:{config.mqtt.port}"
            if problem is None:
                return await _locked(
                    config,
                    settings,
                    Result(
                        "mqtt",
                        True,
                        f"the running bridge (pid {running['pid']}) has {where}: it answers",
                    ),
                )
            return Result("mqtt", False, f"cannot connect to {where}: {problem}")
        mosquitto = find_mosquitto()
        if mosquitto is None:
            return Result("mqtt", False, f"no mqtt.host and no mosquitto: {INSTALL_HINT}")
        detail = (
            f"no mqtt.host: the bridge starts {mosquitto} as its embedded broker on "
            f"127.0.0.1:{config.mqtt.port}"
        )
        if taken:
            return Result("mqtt", False, f"{detail}, but that port is in use ({taken})")
        return Result("mqtt", True, detail)
    settings = broker_settings(config, "check")
    problem = await probe(settings, PROBE_TIMEOUT)
    where = f"{settings.host}:{settings.port}"
    auth = f" as {settings.username}" if settings.username else ""
    if problem is not None:
        return Result("mqtt", False, f"cannot connect to {where}{auth}: {problem}")
    return await _locked(config, settings, Result("mqtt", True, f"connected to {where}{auth}"))


async def _locked(config: Config, settings: BrokerSettings, passed: Result) -> Result:
    """With `qrs.enabled`, whoever may publish to the broker may start reload tasks: a broker
    that takes an anonymous client is a FAIL. `passed`: the result when it does not."""
    if not config.qrs.enabled:
        return passed
    anonymous = replace(settings, username=None, password=None)
    if await probe(anonymous, PROBE_TIMEOUT) is not None:
        return passed  # refused (not authorised, or anything else): no anonymous door
    where = f"{settings.host}:{settings.port}"
    return Result(
        "mqtt",
        False,
        f"{where} lets anyone in (an anonymous client connected): with qrs.enabled anyone who "
        "reaches it can start reload tasks; set allow_anonymous false and a password file "
        "(docs/qrs.md, Who may ask)",
    )


def _udp(host: str, port: int, receive_buffer: int, running: dict[str, Any] | None) -> Result:
    """Bound as the bridge binds its listeners, with the receive buffer it asks for, then
    released. A port the running bridge listens on passes: that is where it should be."""
    try:
        sock = bind_udp(host, port)
    except OSError as exc:
        if running is not None and port in running.get("udp_ports", []):
            return Result(
                f"udp {port}",
                True,
                f"{host}:{port} is held by the running bridge (pid {running['pid']}), "
                "which listens there",
            )
        hint = " (is qlik2mqtt already running?)" if exc.errno == errno.EADDRINUSE else ""
        return Result(f"udp {port}", False, f"cannot bind {host}:{port}: {exc.strerror}{hint}")
    with sock:
        granted = grow_receive_buffer(sock, receive_buffer)
    holds = (
        f"holds about {granted // KERNEL_BYTES_PER_DATAGRAM:,} queued events "
        f"(receive buffer {_kib(granted)} as the kernel counts it)"
    )
    if granted < receive_buffer:
        return Result(
            f"udp {port}",
            True,
            f"{host}:{port} can be bound; {holds} (udp.receive_buffer_bytes asks "
            f"{_kib(receive_buffer)}): a burst beyond that is dropped by the kernel; raise "
            "net.core.rmem_max or run as root (docs/performance.md)",
            warning=True,
        )
    return Result(f"udp {port}", True, f"{host}:{port} can be bound; {holds}")


def _kib(size: int) -> str:
    return f"{size // 1024:,} KiB"


def _tcp_in_use(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _state_dir(state_file: Path) -> Result:
    directory = state_file.parent
    probe_dir = directory
    try:
        while not probe_dir.exists() and probe_dir != probe_dir.parent:
            probe_dir = probe_dir.parent
    except OSError as exc:  # a folder on the way that this user may not enter
        return Result("state", False, f"cannot reach {probe_dir}: {exc.strerror}")
    if not os.access(probe_dir, os.W_OK):
        return Result("state", False, f"{probe_dir} is not writable (state_file: {state_file})")
    return Result("state", True, f"{state_file} can be written")
