"""Yardsticks for the benchmark: the simplest possible Python forwarder (UDP → split → JSON →
gmqtt, no state, no checks), naive and tuned (uvloop, orjson, a 4 MB receive buffer).

Results read as ratios: the bridge against what Python alone costs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311


class Forwarder(asyncio.DatagramProtocol):
    def __init__(self, client: gmqtt.Client, dumps: Any) -> None:
        self.client = client
        self.dumps = dumps

    def datagram_received(self, data: bytes, addr: Any) -> None:
        fields = data.decode("utf-8", "replace").split(";")
        if len(fields) < 8:
            return
        payload = {
            "event_type": fields[2],
            "server": fields[1],
            "user_directory": fields[3],
            "user_id": fields[4],
            "origin": fields[5],
            "context": fields[6],
            "message": ";".join(fields[7:]),
        }
        self.client.publish("qlik2mqtt/bench/event/user", self.dumps(payload), qos=1)


async def run(args: argparse.Namespace) -> None:
    dumps: Any = json.dumps
    if args.tuned:
        import orjson

        dumps = orjson.dumps
    client = gmqtt.Client(f"forwarder-{args.mqtt_port}")
    await client.connect("127.0.0.1", args.mqtt_port, version=MQTTv311)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Forwarder(client, dumps), local_addr=("127.0.0.1", args.udp_port)
    )
    if args.tuned:
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024
        )
    client.publish("qlik2mqtt/bridge/state", b"online", qos=1, retain=True)  # bound: ready
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--udp-port", type=int, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--tuned", action="store_true")
    args = parser.parse_args()
    if args.tuned:
        import uvloop

        uvloop.install()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
