"""The UDP listener's socket: a receive buffer big enough for a burst."""

from __future__ import annotations

import os
import socket
from ipaddress import ip_network

import pytest

from bridge.inputs.listener import SO_RCVBUFFORCE, SourceFilter, open_listener

BURST_BUFFER = 32 * 1024 * 1024


@pytest.mark.skipif(
    os.geteuid() != 0 or SO_RCVBUFFORCE is None, reason="needs root (CAP_NET_ADMIN) on Linux"
)
async def test_root_gets_the_buffer_it_asks_for_beyond_rmem_max() -> None:
    transport = await open_listener(
        "127.0.0.1", 0, SourceFilter([]), lambda data, host: None, lambda host: None, BURST_BUFFER
    )
    try:
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= BURST_BUFFER
    finally:
        transport.close()


def test_source_filter_networks_without_root() -> None:
    """Sending from another address needs root (an alias on lo); the filter's verdicts are
    checked here directly, for every address form the socket reports."""
    sources = SourceFilter([ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")])
    assert not sources.allows_all
    assert sources.allows("10.1.2.3")
    assert not sources.allows("11.1.2.3")
    assert sources.allows("::ffff:10.1.2.3")  # IPv4 on a dual-stack socket
    assert not sources.allows("::ffff:11.1.2.3")
    assert sources.allows("2001:db8::1")
    assert sources.allows("2001:db8::1%eth0")  # a scoped address keeps its network
    assert not sources.allows("2001:db9::1")
    assert not sources.allows("not-an-address")
    assert not sources.allows("")
    everyone = SourceFilter([])
    assert everyone.allows_all
    assert everyone.allows("203.0.113.9")
    # Verdicts stay right after more senders than the verdict cache holds (it is emptied).
    for number in range(10_000):
        sources.allows(f"11.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert sources.allows("10.255.255.255")
    assert not sources.allows("11.0.0.1")
