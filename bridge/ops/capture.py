"""`qlik2mqtt capture`: what really arrives on the UDP ports, and how the bridge reads it.

One JSON line per datagram: when and from where, its text (its bytes in base64 when they are
not text), and how the bridge reads it, with the parser its input uses: the event and its fields,
or the refusal and why. User names are redacted unless asked otherwise: a user id, and the
account part of every `DIRECTORY\\user` in the text, become `user-<hash>` with a key drawn for
this capture (the same user, the same token, within one file). The file is what a report about a
line the bridge misreads or refuses needs: the way real lines reach the project.

It binds the ports itself, without sharing them, so it never takes datagrams from a running
bridge: a port in use is refused with the advice to stop the bridge or capture on another port.
Bounded in time (`seconds`) and in count (`max_datagrams`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import errno
import json
import re
import secrets
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from bridge.core.events import Event, LogEvent, QixPerfEvent, Rejected
from bridge.core.privacy import Privacy
from bridge.inputs.declare import Parser
from bridge.inputs.listener import bind_udp
from bridge.inputs.parse import decode

MAX_SECONDS = 24 * 3600
MAX_DATAGRAMS = 1_000_000
_ACCOUNT = re.compile(
    r"(?<![\w.-])([\w.-]+(?: [\w.-]+)?)\\(?!user-[0-9a-f]{12}(?!\w))([^\s\\;'\"<>&,]+)"
)
"""`DIRECTORY\\user` in free text (a directory may hold one space: `NT AUTHORITY\\SYSTEM`), but
a user already redacted (`user-<hash>`)."""
_BASE64_VALUE = re.compile(r'(?<=[">])[A-Za-z0-9+/]{4,}={0,2}(?=["<])')
"""A base64 attribute value or element text (qlik2mqtt's log-event XML sends both so)."""
_USER_FIELDS = ("user_id",)
_ACCOUNT_FIELDS = ("user", "windows_user")


class PortTakenError(OSError):
    """A port is bound by another socket (a running bridge, most likely)."""


@dataclass(slots=True)
class Redactor:
    """Replaces user names with keyed tokens; `keep` turns it off (`--keep-names`)."""

    keep: bool = False
    privacy: Privacy = field(
        default_factory=lambda: Privacy(mode="hashed", salt=secrets.token_hex(16))
    )

    def text(self, text: str, user_ids: Iterable[str | None] = ()) -> str:
        """`text` with the users named: the given ids and every `DIRECTORY\\user`, in the text
        and in the base64 values of qlik2mqtt's log-event XML."""
        if self.keep:
            return text
        ids = list(user_ids)
        return _BASE64_VALUE.sub(lambda m: self._base64(m.group(), ids), self._plain(text, ids))

    def _plain(self, text: str, ids: list[str | None]) -> str:
        redacted = self.privacy.redact(text, *ids) or ""
        return _ACCOUNT.sub(lambda m: f"{m.group(1)}\\{self.privacy.user_id(m.group(2))}", redacted)

    def _base64(self, value: str, ids: list[str | None]) -> str:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return value
        redacted = self._plain(decoded, ids)
        return value if redacted == decoded else base64.b64encode(redacted.encode()).decode()

    def fields(self, event: Event | QixPerfEvent) -> dict[str, Any]:
        values = dataclasses.asdict(event)
        if self.keep:
            return values
        ids = user_ids(event)
        for name, value in values.items():
            if not isinstance(value, str):
                continue
            if name in _USER_FIELDS:
                values[name] = self.privacy.user_id(value)
            elif name in _ACCOUNT_FIELDS:
                values[name] = self.privacy.account(value)
            else:
                values[name] = self.text(value, ids)
        return values


def user_ids(event: Event | QixPerfEvent) -> list[str]:
    """The user ids an event names (its user id, the account part of its users)."""
    names = [getattr(event, "user_id", None)]
    names += [Privacy.user_part(getattr(event, name, None)) for name in _ACCOUNT_FIELDS]
    return [name for name in names if name]


def record(
    data: bytes,
    source: str,
    port: int,
    parse: Parser,
    max_bytes: int,
    redactor: Redactor,
    at: float,
) -> dict[str, Any]:
    """One datagram as a JSON-ready record: its text (or bytes) and how the bridge reads it."""
    result = parse(data, max_bytes)
    ids = [] if isinstance(result, Rejected) else user_ids(result)
    line: dict[str, Any] = {
        "time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "port": port,
        "source": source,
        "bytes": len(data),
    }
    text = decode(data)
    if text is None:
        line["base64"] = base64.b64encode(data).decode("ascii")
    else:
        line["encoding"] = _encoding(data)
        line["text"] = redactor.text(text, ids)
    if isinstance(result, Rejected):
        line["refused"] = {"reason": result.reason.value, "why": redactor.text(result.detail)}
    else:
        line["event"] = {
            "type": _event_type(result),
            "fields": redactor.fields(result),
        }
    return line


def _event_type(event: Event | QixPerfEvent) -> str:
    if isinstance(event, QixPerfEvent):
        return "qix_performance"
    return event.event_type if isinstance(event, LogEvent) else event.event_type.value


def _encoding(data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "windows-1252"
    return "utf-8"


@dataclass(slots=True)
class Summary:
    datagrams: int = 0
    events: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)


def bind(host: str, ports: Iterable[int]) -> list[tuple[int, socket.socket]]:
    """Each port bound (not shared); PortTakenError naming the port when one is in use."""
    bound: list[tuple[int, socket.socket]] = []
    try:
        for port in ports:
            try:
                bound.append((port, bind_udp(host, port)))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortTakenError(
                        exc.errno,
                        f"UDP port {port} on {host} is taken (a running qlik2mqtt, or Butler): "
                        "stop the bridge while you capture, or capture on another port "
                        "(--port) and point an appender at it",
                    ) from None
                raise
    except OSError:
        for _, sock in bound:
            sock.close()
        raise
    return bound


def capture(
    bound: list[tuple[int, socket.socket]],
    parsers: dict[int, Parser],
    max_bytes: int,
    out: IO[str],
    *,
    seconds: float,
    max_datagrams: int,
    redactor: Redactor,
    clock: Callable[[], float] = time.monotonic,
) -> Summary:
    """Records datagrams from the bound sockets into `out` until `seconds` have passed,
    `max_datagrams` arrived or Ctrl-C; closes the sockets."""
    summary = Summary()
    deadline = clock() + min(seconds, MAX_SECONDS)
    limit = min(max_datagrams, MAX_DATAGRAMS)

    def write(data: bytes, address: Any, port: int) -> None:
        line = record(data, str(address[0]), port, parsers[port], max_bytes, redactor, time.time())
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        out.flush()
        summary.datagrams += 1
        if "event" in line:
            summary.events[line["event"]["type"]] += 1
        else:
            summary.refused[line["refused"]["reason"]] += 1

    with selectors.DefaultSelector() as selector:
        for port, sock in bound:
            selector.register(sock, selectors.EVENT_READ, port)
        try:
            while summary.datagrams < limit and (left := deadline - clock()) > 0:
                for key, _ in selector.select(left):
                    sock = bound_socket(key.fileobj)
                    while summary.datagrams < limit:
                        try:
                            data, address = sock.recvfrom(65535)
                        except BlockingIOError:
                            break
                        write(data, address, key.data)
        except KeyboardInterrupt:  # Ctrl-C ends the capture; what arrived is kept
            pass
        finally:
            for _, sock in bound:
                sock.close()
    return summary


def bound_socket(fileobj: Any) -> socket.socket:
    if not isinstance(fileobj, socket.socket):
        raise TypeError(f"not a socket: {fileobj!r}")
    return fileobj
