"""MQTT 3.1.1 wire format for the event stream: PUBLISH packets out, packet framing in.

gmqtt owns the connection (connect, subscribe, keepalive, will). On the hot path its
per-packet objects, log calls and handler dispatch cost more than the bridge's own work per
event, so the link encodes its QoS 1 publishes here and frames what the broker sends here,
acknowledging PUBACKs directly and handing every other packet back to gmqtt. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Container

PUBLISH = 0x30
PUBACK = 0x40
MAX_REMAINING_LENGTH = 268_435_455
"""The largest packet body MQTT can frame (four length bytes)."""


def remaining_length(length: int) -> bytes:
    """MQTT's variable byte integer."""
    if length < 128:
        return bytes((length,))
    if length > MAX_REMAINING_LENGTH:
        raise ValueError(f"packet body of {length} bytes is too large for MQTT")
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(encoded)


def publish_packet(topic: bytes, payload: bytes, qos: int, retain: bool, packet_id: int) -> bytes:
    """A PUBLISH packet (QoS 1 or 2 carry `packet_id`; QoS 0 has none)."""
    header = PUBLISH | (qos << 1) | retain
    ident = packet_id.to_bytes(2, "big") if qos else b""
    body_length = 2 + len(topic) + len(ident) + len(payload)
    return b"".join(
        (
            bytes((header,)),
            remaining_length(body_length),
            len(topic).to_bytes(2, "big"),
            topic,
            ident,
            payload,
        )
    )


def next_packet_id(candidate: int, first: int, last: int, in_flight: Container[int]) -> int:
    """The first packet id from `candidate` on, within first..last and wrapping around, that is
    not in flight. The caller keeps fewer ids in flight than the range holds."""
    packet_id = candidate if first <= candidate <= last else first
    while packet_id in in_flight:
        packet_id = packet_id + 1 if packet_id < last else first
    return packet_id


def read_packets(
    data: bytes | bytearray,
    on_puback: Callable[[int], None],
    on_other: Callable[[int, bytes], None],
) -> int:
    """Frame the complete packets at the start of `data`: PUBACKs go to `on_puback` with their
    packet id, everything else to `on_other` with its first byte and body. Returns how many
    bytes were consumed (the rest is an incomplete packet), or -1 when the framing is broken.
    """
    size = len(data)
    at = 0
    while at + 2 <= size:
        command = data[at]
        if command == PUBACK and data[at + 1] == 2:  # the hot case: four bytes, fixed layout
            if at + 4 > size:
                return at
            on_puback((data[at + 2] << 8) | data[at + 3])
            at += 4
            continue
        length, multiplier, header = 0, 1, 1
        while True:
            if at + header >= size:
                return at  # the length is not all here yet
            byte = data[at + header]
            length += (byte & 0x7F) * multiplier
            header += 1
            if not byte & 0x80:
                break
            multiplier *= 128
            if header > 4:
                return -1
        end = at + header + length
        if end > size:
            return at
        on_other(command, bytes(data[at + header : end]))
        at = end
    return at
