"""The MQTT wire format of the fast lane: the same bytes as gmqtt's encoder, and framing that
holds however the broker's stream is cut."""

from __future__ import annotations

import pytest
from gmqtt import Message
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.package import PublishPacket
from gmqtt.mqtt.utils import IdGenerator
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.wire import next_packet_id, publish_packet, read_packets, remaining_length


class _Protocol:
    """What gmqtt's encoder reads from its protocol: the version and the packet id source."""

    def __init__(self, first_id: int) -> None:
        self.proto_ver = MQTTv311
        self.id_generator = IdGenerator()
        self.id_generator._last_used_id = first_id - 1


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_specification_table(length: int, encoded: bytes) -> None:
    assert remaining_length(length) == encoded


def test_a_body_mqtt_cannot_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        remaining_length(268_435_456)


@settings(max_examples=300, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=300).filter(lambda t: "\x00" not in t),
    payload=st.binary(max_size=20_000),
    qos=st.sampled_from([1, 2]),
    retain=st.booleans(),
    packet_id=st.integers(min_value=1, max_value=65_534),
)
def test_publish_packets_are_byte_for_byte_what_gmqtt_builds(
    topic: str, payload: bytes, qos: int, retain: bool, packet_id: int
) -> None:
    reference_id, reference = PublishPacket.build_package(
        Message(topic, payload, qos=qos, retain=retain), _Protocol(packet_id)
    )
    assert reference_id == packet_id
    assert publish_packet(topic.encode(), payload, qos, retain, packet_id) == bytes(reference)


def test_qos_0_publishes_carry_no_packet_id() -> None:
    assert publish_packet(b"a/b", b"x", 0, False, 7) == b"\x30\x06\x00\x03a/bx"


def _stream() -> tuple[bytes, list[tuple[str, object]]]:
    """Broker → bridge traffic: PUBACKs among a CONNACK, a SUBACK, a PINGRESP and PUBLISHes
    with short and multi-byte lengths."""
    big = b"y" * 20_000
    packets: list[tuple[bytes, tuple[str, object]]] = [
        (b"\x20\x02\x00\x00", ("other", (0x20, b"\x00\x00"))),
        (b"\x40\x02\x00\x01", ("ack", 1)),
        (b"\x90\x03\x00\x02\x01", ("other", (0x90, b"\x00\x02\x01"))),
        (b"\x40\x02\xff\xfe", ("ack", 65_534)),
        (publish_packet(b"cmd", b"x", 1, False, 9), ("other", (0x32, b"\x00\x03cmd\x00\x09x"))),
        (b"\xd0\x00", ("other", (0xD0, b""))),
        (publish_packet(b"t", big, 0, True, 0), ("other", (0x31, b"\x00\x01t" + big))),
        (b"\x40\x02\x01\x00", ("ack", 256)),
    ]
    return b"".join(raw for raw, _ in packets), [seen for _, seen in packets]


def _read_in_chunks(stream: bytes, cuts: list[int]) -> list[tuple[str, object]]:
    """As gmqtt's read loop does: append what arrived, frame, keep the unconsumed rest."""
    seen: list[tuple[str, object]] = []
    buffer = b""
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buffer += stream[start:end]
        consumed = read_packets(
            buffer,
            lambda packet_id: seen.append(("ack", packet_id)),
            lambda command, body: seen.append(("other", (command, body))),
        )
        assert consumed >= 0
        buffer = buffer[consumed:]
    assert buffer == b""
    return seen


def test_every_packet_is_framed_once_whatever_the_cut() -> None:
    stream, expected = _stream()
    for cut in range(1, len(stream)):
        assert _read_in_chunks(stream, [cut]) == expected, cut


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20_060), max_size=12, unique=True))
def test_framing_holds_for_any_number_of_cuts(cuts: list[int]) -> None:
    stream, expected = _stream()
    assert _read_in_chunks(stream, sorted(c for c in cuts if c < len(stream))) == expected


def test_a_length_longer_than_four_bytes_is_broken_framing() -> None:
    broken = b"\x30\xff\xff\xff\xff\x01"
    assert read_packets(broken, lambda _: None, lambda _c, _b: None) == -1


def test_packet_ids_count_up_skip_those_in_flight_and_wrap_around() -> None:
    assert next_packet_id(20_000, 16_384, 65_535, {}) == 20_000
    assert next_packet_id(20_000, 16_384, 65_535, {20_000, 20_001}) == 20_002
    assert next_packet_id(65_536, 16_384, 65_535, set()) == 16_384  # past the end: wrap
    assert next_packet_id(65_535, 16_384, 65_535, {65_535, 16_384}) == 16_385
    assert next_packet_id(1, 16_384, 65_535, set()) == 16_384  # below the range: its start
