"""The embedded MQTT broker (amqtt), started when the config names no `mqtt.host`.

It makes `scripts/run` work on a bare machine. For production point `mqtt.host` at a real
broker (mosquitto, EMQX, Home Assistant's add-on): amqtt is imported only when used.
"""

from __future__ import annotations

from typing import Any, Protocol


class EmbeddedBroker(Protocol):
    async def shutdown(self) -> None: ...


async def start_embedded_broker(host: str, port: int) -> EmbeddedBroker:
    from amqtt.broker import Broker  # heavy; only for the embedded default

    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    return broker  # type: ignore[no-any-return]
