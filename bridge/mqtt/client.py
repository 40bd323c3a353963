"""One gmqtt client for one connection: settings, connect, probe, and errors said plainly.

gmqtt is used only through its public API. Its own reconnect is switched off by overriding
its public `reconnect` method: it replays unacknowledged messages only when the broker kept
the session, and a restarted broker usually has not. The link (bridge.mqtt.link) makes a new
client for each connection instead, so nothing of one connection can act on the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import gmqtt
from gmqtt import constants as mqtt_constants
from gmqtt.storage import PersistentStorage

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    keepalive: int
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    outbox_max: int = 100_000
    outbox_path: Path | None = None
    """SQLite file that keeps events across outages and restarts; None: memory only."""
    will_topic: str | None = None


class Client(gmqtt.Client):  # type: ignore[misc]
    """A gmqtt client that never reconnects by itself."""

    async def reconnect(self, delay: bool = False) -> None:
        """Disabled: the link owns reconnection (see the module docstring)."""


class WithoutDebug(logging.LoggerAdapter):  # type: ignore[type-arg]
    """gmqtt's logger (its `logger` argument) with debug calls dropped before any work: gmqtt
    makes six per published event, which cost more than the rest of its bookkeeping."""

    def debug(self, msg: object, *args: object, **kwargs: object) -> None:
        """Dropped."""


def gmqtt_logger() -> logging.Logger | logging.LoggerAdapter:  # type: ignore[type-arg]
    logger = logging.getLogger("gmqtt")
    return logger if logger.isEnabledFor(logging.DEBUG) else WithoutDebug(logger, {})


def new_client(
    settings: BrokerSettings,
    will: gmqtt.Message | None = None,
    storage: PersistentStorage | None = None,
) -> Client:
    client = Client(
        settings.client_id, will_message=will, persistent_storage=storage, logger=gmqtt_logger()
    )
    if settings.username is not None:
        client.set_auth_credentials(settings.username, settings.password)
    return client


def will_message(topic: str | None) -> gmqtt.Message | None:
    """`offline`, retained on `topic`, published by the broker when the connection dies."""
    return None if topic is None else gmqtt.Message(topic, b"offline", qos=1, retain=True)


async def connect(client: Client, settings: BrokerSettings, within: float) -> None:
    """MQTT 3.1.1, which every broker a site may run speaks (gmqtt's default is MQTT 5)."""
    await asyncio.wait_for(
        client.connect(
            settings.host,
            settings.port,
            ssl=settings.tls or False,
            keepalive=settings.keepalive,
            version=mqtt_constants.MQTTv311,
        ),
        within,
    )


async def abandon(client: Client) -> None:
    """Close a client whose connection failed or is being given up; never raises."""
    with contextlib.suppress(Exception):  # nothing useful can be done with a failed close
        await client.disconnect()


async def probe(settings: BrokerSettings, within: float) -> str | None:
    """Connect once and disconnect: None when the broker took us, else what went wrong."""
    client = new_client(settings)
    try:
        await connect(client, settings, within)
    except Exception as exc:  # every failure is reported, none is fatal here
        await abandon(client)
        return describe(exc, within)
    await abandon(client)
    return None


CREDENTIALS_HINT = "check mqtt.username and mqtt.password (or mqtt.password_file)"


def describe(exc: BaseException, within: float = CONNECT_TIMEOUT) -> str:
    """A connection failure in one short phrase, with what to check, for the log, `check`
    and every command: refused, not authorised, bad credentials, TLS, timeout, DNS. `within`:
    how long the attempt was given (what a timeout waited)."""
    if isinstance(exc, gmqtt.MQTTConnectError):  # the broker answered CONNACK with a refusal
        refusal = exc.message.removeprefix("Connection Refused: ")
        lowered = refusal.lower()
        if "user name or password" in lowered:
            return f"the broker refused the credentials ({refusal}): {CREDENTIALS_HINT}"
        if "not authori" in lowered:
            return f"the broker refused the connection (not authorised): {CREDENTIALS_HINT}"
        return f"the broker refused the connection ({refusal})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate is not trusted ({exc.verify_message}): check "
            "mqtt.tls.ca_file and that mqtt.host is the name the certificate carries"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}): is this port a TLS listener? check mqtt.tls"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that host and port?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {within:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror}): check mqtt.host"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # `Connection reset by peer`, without `[Errno 104]`
    return str(exc) or exc.__class__.__name__
