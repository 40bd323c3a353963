"""The MQTT link against a real mosquitto: a burst goes out as one socket write; the fast lane
and gmqtt share one connection."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.mqtt import (
    LANE_FIRST_ID,
    MAX_PACKET_ID,
    BrokerSettings,
    MqttLink,
    _client,
    _connect,
    _one_write,
)
from bridge.outbox import OutMessage
from bridge.stats import Stats
from tests.helpers import Mosquitto, Subscriber


async def test_a_burst_of_publishes_is_one_write_and_all_arrive(mosquitto: Mosquitto) -> None:
    sub = await Subscriber(mosquitto.port).start("burst/#")
    client = _client(BrokerSettings("127.0.0.1", mosquitto.port, "burst-test", 30))
    await _connect(client, BrokerSettings("127.0.0.1", mosquitto.port, "burst-test", 30), 10)
    transport: Any = client._connection._protocol._transport
    writes: list[int] = []
    real_write = transport.write

    def counting_write(data: bytes) -> None:  # a spy on the real transport, not a mock
        writes.append(len(data))
        real_write(data)

    transport.write = counting_write
    try:
        with _one_write(client):
            for number in range(50):
                client.publish(f"burst/{number}", str(number).encode(), qos=1)
        assert len(writes) == 1
        received = await sub.wait_count("burst/49", 1)
        assert received[0].payload == b"49"
        await asyncio.gather(*(sub.wait_for(f"burst/{n}") for n in range(50)))
    finally:
        transport.write = real_write
        await client.disconnect()
        await sub.stop()


async def test_fast_lane_and_gmqtt_share_a_connection_across_a_packet_id_wrap(
    mosquitto: Mosquitto,
) -> None:
    """QoS 1 events take the fast lane, QoS 2 ones gmqtt's own path; with more events than
    the lane has packet ids, every one is delivered and acknowledged, none twice."""
    sub = await Subscriber(mosquitto.port).start("lane/#")
    link = MqttLink(BrokerSettings("127.0.0.1", mosquitto.port, "lane-test", 30), Stats())
    link.start()
    await link.wait_connected()
    assert link._lane is not None  # the lane is what this test is about
    count = (MAX_PACKET_ID - LANE_FIRST_ID + 1) + 500  # more than one round of lane ids
    try:
        for number in range(count):
            qos = 2 if number % 1000 == 0 else 1
            link.enqueue(OutMessage("lane/events", str(number).encode(), qos))
        await asyncio.wait_for(link.wait_idle(), 60)
        assert link.outbox_depth == 0
        received = await sub.wait_count("lane/events", count, timeout=60)
        assert sorted(int(m.payload) for m in received) == list(range(count))
    finally:
        await link.close(5.0)
        await sub.stop()
