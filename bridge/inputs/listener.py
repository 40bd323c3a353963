"""UDP listeners: one asyncio datagram endpoint per port, with a source allow-list.

The listener only counts, filters by source and hands bytes on; a datagram can never raise
out of it or stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
import sys
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

import structlog

log = structlog.get_logger("qlik2mqtt.listener")

DatagramHandler = Callable[[bytes, str], None]
"""Called with the datagram and the sender's IP address."""

_ALLOW_CACHE_MAX = 4096
_GENERIC_ABI_MACHINES = ("x86_64", "i686", "i386", "aarch64", "armv7l", "armv6l", "riscv64")


class SourceFilter:
    """`udp.allowed_sources`: empty allows every sender."""

    def __init__(self, networks: Sequence[IPv4Network | IPv6Network]) -> None:
        self._networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    @property
    def allows_all(self) -> bool:
        return not self._networks

    def allows(self, host: str) -> bool:
        if not self._networks:
            return True
        verdict = self._cache.get(host)
        if verdict is None:
            verdict = self._check(host)
            if len(self._cache) >= _ALLOW_CACHE_MAX:
                self._cache.clear()
            self._cache[host] = verdict
        return verdict

    def _check(self, host: str) -> bool:
        try:
            address: IPv4Address | IPv6Address = ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(
        self,
        port: int,
        sources: SourceFilter,
        on_datagram: DatagramHandler,
        on_refused: Callable[[str], None],
    ) -> None:
        self._port = port
        self._sources = sources
        self._on_datagram = on_datagram
        self._on_refused = on_refused

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        host = str(addr[0])
        try:
            if self._sources.allows(host):
                self._on_datagram(data, host)
            else:
                self._on_refused(host)
        except Exception:  # a bug must cost one datagram, never the listener
            log.exception("error handling a datagram", port=self._port, source=host)

    def error_received(self, exc: Exception) -> None:
        log.warning("UDP socket error", port=self._port, error=str(exc))


async def open_listener(
    host: str,
    port: int,
    sources: SourceFilter,
    on_datagram: DatagramHandler,
    on_refused: Callable[[str], None],
    receive_buffer: int,
) -> asyncio.DatagramTransport:
    """Bind one UDP port; OSError (port in use, no such address) propagates to the caller."""
    loop = asyncio.get_running_loop()
    # Bound here rather than by the loop: the same OSError (with its reason) from any loop.
    sock = bind_udp(host, port)
    granted = grow_receive_buffer(sock, receive_buffer)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(port, sources, on_datagram, on_refused), sock=sock
    )
    log.info("listening for log4net datagrams", address=f"{host}:{port}/udp", rcvbuf=granted)
    if granted < receive_buffer:
        log.warning(
            "the kernel granted a smaller UDP receive buffer than udp.receive_buffer_bytes: "
            "a burst of events may be dropped; raise net.core.rmem_max (see docs/performance.md)",
            port=port,
            wanted=receive_buffer,
            granted=granted,
        )
    return transport


def bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to host:port; OSError (with its reason) when it cannot."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


_GENERIC_LINUX = sys.platform == "linux" and platform.machine() in _GENERIC_ABI_MACHINES
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if _GENERIC_LINUX else None)
"""Python's socket module leaves it out (3.11); 33 on Linux's generic ABI (x86, ARM, RISC-V)."""
KERNEL_BYTES_PER_DATAGRAM = 832
"""What Linux counts against the receive buffer for one small datagram (measured)."""


def grow_receive_buffer(sock: socket.socket, size: int) -> int:
    """A large buffer absorbs bursts (a login storm) while the loop is busy. Linux reports
    twice the size asked for (it counts its own bookkeeping), so `size` or more is granted."""
    force = SO_RCVBUFFORCE
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)  # root may exceed rmem_max
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
