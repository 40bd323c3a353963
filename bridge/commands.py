"""Commands to a running bridge over MQTT (`qlik2mqtt acknowledge`, `qlik2mqtt forget`)."""

from __future__ import annotations

import asyncio

from bridge.config import Config
from bridge.connection import broker_settings
from bridge.mqtt import MqttLink
from bridge.mqtt.outbox import OutMessage
from bridge.stats import Stats
from bridge.topics import Topics

CONNECT_TIMEOUT = 3.0
DELIVERY_TIMEOUT = 5.0


class CommandError(Exception):
    """The command did not reach the broker."""


async def send_command(config: Config, topic: str, payload: bytes) -> None:
    """Publish one command (QoS 1) and return once the broker has acknowledged it."""
    settings = broker_settings(config, "cli")
    link = MqttLink(settings, Stats())
    link.start()
    try:
        await asyncio.wait_for(link.wait_connected(), CONNECT_TIMEOUT)
    except TimeoutError:
        await link.close(0)
        raise CommandError(
            f"cannot reach the MQTT broker at {settings.host}:{settings.port}"
        ) from None
    link.enqueue(OutMessage(topic, payload, qos=1))
    if await link.close(DELIVERY_TIMEOUT):
        raise CommandError("the broker did not acknowledge the command")


def acknowledge_topic(config: Config) -> str:
    return Topics(config.mqtt.base_topic).acknowledge


def forget_topic(config: Config) -> str:
    return Topics(config.mqtt.base_topic).forget
