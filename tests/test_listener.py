"""The UDP listener's socket: a receive buffer big enough for a burst."""

from __future__ import annotations

import os
import socket

import pytest

from bridge.listener import SO_RCVBUFFORCE, SourceFilter, open_listener

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
