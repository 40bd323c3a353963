"""Rendering the shipped log4net appender templates for one bridge address."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from ipaddress import IPv6Address, ip_address
from pathlib import Path

TEMPLATES = ("proxy/LocalLogConfig.xml", "scheduler/LocalLogConfig.xml")
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class Target:
    bridge_host: str
    user_port: int
    task_port: int


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
    }

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"unknown placeholder {{{{{key}}}}}")
        return values[key]

    return PLACEHOLDER.sub(substitute, text)


def write_appenders(target: Target, out_dir: Path) -> list[Path]:
    """Render every template into out_dir (proxy/…, scheduler/…); returns the files written."""
    rendered = {name: render(template_text(name), target) for name in TEMPLATES}  # may refuse
    written = []
    for name, text in rendered.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
