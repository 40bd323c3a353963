"""What an input is: a UDP port (from the config), the formats it accepts and their parser.

Every datagram an input's listener accepts is counted (`datagrams`), parsed by the input's
parser and, if the parser refuses it, counted by its reason (`rejected` in `bridge/stats`) and
logged, rate-limited, by the core: an input brings its parser and its reasons, the counting is
the same for all. To add one (the log events on UDP 9996, say): write its parser (bytes →
event, or `Rejected` with a reason), declare an `Input` in `bridge.inputs.builtin` with the
config key of its port, and add it to `INPUTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.config import UdpConfig
from bridge.core.events import Event, QixPerfEvent, Rejected

Parser = Callable[[bytes, int], Event | QixPerfEvent | Rejected]
"""(datagram, udp.max_datagram_bytes) → an event, or the reason it is not one. Pure."""


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    port: Callable[[UdpConfig], int]
    """Its port in the config; 0 turns the input off."""
    parse: Parser
    formats: str
    """What it accepts, in words (for a reader; the parser decides)."""


def listening(inputs: tuple[Input, ...], udp: UdpConfig) -> list[tuple[int, Input]]:
    """The ports to bind, each once, with the input that reads it (the first declared, when
    two share a port), in declaration order; inputs whose port is 0 are off."""
    ports: dict[int, Input] = {}
    for declared in inputs:
        port = declared.port(udp)
        if port and port not in ports:
            ports[port] = declared
    return list(ports.items())
