"""The MQTT link's batching against a real mosquitto: a burst goes out as one socket write."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.mqtt import BrokerSettings, _client, _connect, _one_write
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
