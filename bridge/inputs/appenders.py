"""Rendering the shipped log4net appender templates for one bridge address.

One `LocalLogConfig.xml` per Qlik Sense service (engine, proxy, repository, scheduler). The
proxy's and the scheduler's also send sessions and reload tasks (log4j XML layout, UDP 9997 and
9998); all four send their service's warnings, errors and fatal errors to the log port (9996).

How a log event says which service sent it, and why: log4net's `XmlLayout` with its `prefix`
set to Butler SOS's tag for the service, so every element is `<qseow-engine:event …>`,
`<qseow-proxy:…>`, … (proven in real log4net: tests/inputs/test_log4net.py). The source
travels in the datagram itself, in the one place no message or property can reach, so it holds
whichever port, host or logger the event comes from (a logger cannot tell: the repository and
the scheduler both log on `Service`). `base64EncodeMessage` and `base64EncodeProperties` send
the message and the property values as base64 of their UTF-8: log4net before 1.2.11 replaces
every character from U+0800 up (`€`, CJK) with `?` in XML text, and base64 is immune to that
and to characters XML cannot hold. The exception text is the one part log4net does not encode
(`bridge.inputs.log_event_xml` says what that costs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from ipaddress import IPv6Address, ip_address
from pathlib import Path

TEMPLATES = (
    "engine/LocalLogConfig.xml",
    "proxy/LocalLogConfig.xml",
    "repository/LocalLogConfig.xml",
    "scheduler/LocalLogConfig.xml",
)
DESTINATIONS = {
    "engine/LocalLogConfig.xml": "C:\\ProgramData\\Qlik\\Sense\\Engine\\",
    "proxy/LocalLogConfig.xml": "C:\\ProgramData\\Qlik\\Sense\\Proxy\\",
    "repository/LocalLogConfig.xml": "C:\\ProgramData\\Qlik\\Sense\\Repository\\",
    "scheduler/LocalLogConfig.xml": "C:\\ProgramData\\Qlik\\Sense\\Scheduler\\",
}
"""Where each file goes on a Qlik Sense node (then restart that service)."""
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class Target:
    bridge_host: str
    user_port: int
    task_port: int
    log_port: int


def validate_host(host: str) -> str:
    """An IP address or a DNS name (RFC 1123), as log4net's remoteAddress takes; else ValueError."""
    candidate = host.strip()
    try:
        return str(ip_address(candidate))
    except ValueError:
        pass
    name = candidate.rstrip(".")
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{host!r} is neither an IP address nor a valid DNS name")
    return name


def local_only(host: str) -> str | None:
    """Why a Qlik Sense node cannot reach the bridge at `host`, when it names this machine
    only (the unspecified address, loopback, `localhost`); None for any other host."""
    candidate = host.strip()
    try:
        address = ip_address(candidate)
    except ValueError:
        name = candidate.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost") or name == "localhost.localdomain":
            return f"{host} names whichever machine uses it: each node would send to itself"
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return f"{host} is the any-address a server listens on, not an address to send to"
    if address.is_loopback:
        return f"{host} is a loopback address: each node would send to itself"
    return None


def validate_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return port


def template_text(name: str) -> str:
    return files("appenders").joinpath(name).read_text(encoding="utf-8")


def render(text: str, target: Target) -> str:
    values = {
        "bridge_host": validate_host(target.bridge_host),
        "user_port": str(validate_port(target.user_port)),
        "task_port": str(validate_port(target.task_port)),
        "log_port": str(validate_port(target.log_port)),
    }

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"unknown placeholder {{{{{key}}}}}")
        return values[key]

    return PLACEHOLDER.sub(substitute, text)


def write_appenders(target: Target, out_dir: Path) -> list[Path]:
    """Render every template into out_dir (engine/…, proxy/…, …); returns the files written."""
    rendered = {name: render(template_text(name), target) for name in TEMPLATES}  # may refuse
    written = []
    for name, text in rendered.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
