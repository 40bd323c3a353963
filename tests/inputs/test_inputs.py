"""Inputs as declarations: which ports are bound, and that an input's parser is the one used."""

from __future__ import annotations

from bridge.config import Config, UdpConfig
from bridge.core.events import Rejected, RejectReason
from bridge.core.path import Bridge
from bridge.core.state import BridgeState
from bridge.core.stats import Stats
from bridge.inputs.builtin import INPUTS, LOG_EVENTS, TASKS, USER_ACTIVITY
from bridge.inputs.declare import Input, listening


def test_each_port_is_bound_once_in_declaration_order() -> None:
    assert listening(INPUTS, UdpConfig()) == [
        (9997, USER_ACTIVITY),
        (9998, TASKS),
        (9996, LOG_EVENTS),
    ]
    shared = UdpConfig(user_activity_port=9999, task_port=9999, log_port=9999)
    assert listening(INPUTS, shared) == [(9999, USER_ACTIVITY)]


def test_log_port_0_turns_the_log_events_off() -> None:
    assert listening(INPUTS, UdpConfig(log_port=0)) == [(9997, USER_ACTIVITY), (9998, TASKS)]


def test_a_port_of_0_turns_an_input_off() -> None:
    off = Input("off", lambda udp: 0, USER_ACTIVITY.parse, "nothing")
    assert listening((off, TASKS), UdpConfig()) == [(9998, TASKS)]


def test_the_core_parses_with_the_input_s_parser_and_counts_its_refusals() -> None:
    seen: list[bytes] = []

    def refuse(data: bytes, max_bytes: int) -> Rejected:
        seen.append(data)
        return Rejected(reason=RejectReason.EMPTY, detail="test")

    bridge = Bridge(Config(), BridgeState(), Stats(), clock=lambda: 0.0, monotonic=lambda: 0.0)
    handle = bridge.datagram_handler(refuse)
    handle(b"x", "127.0.0.1")
    assert seen == [b"x"]
    assert bridge.stats.datagrams == 1
    assert bridge.stats.as_payload(0)["rejected_total"] == 1
