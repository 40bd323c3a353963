"""Broker connection settings from the configuration, for the bridge and every command."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from bridge.config import Config
from bridge.mqtt import BrokerSettings
from bridge.mqtt.tls import tls_context

EMBEDDED_HOST = "127.0.0.1"


def outbox_path(config: Config) -> Path:
    return config.state_file.with_name("outbox.sqlite")


def broker_settings(
    config: Config, role: str = "", will_topic: str | None = None
) -> BrokerSettings:
    """`role` names a short-lived client (`cli`, `check`, …); the bridge itself has none."""
    if role:
        client_id = f"qlik2mqtt-{role}-{os.getpid()}"
    else:
        client_id = config.mqtt.client_id or f"qlik2mqtt-{socket.gethostname()}-{os.getpid()}"
    return BrokerSettings(
        host=config.mqtt.host or EMBEDDED_HOST,
        port=config.mqtt.port,
        client_id=client_id,
        keepalive=config.mqtt.keepalive,
        username=config.mqtt.username,
        password=config.mqtt.secret(),
        tls=tls_context(config.mqtt.tls),
        outbox_max=config.mqtt.outbox_max_events,
        outbox_path=None if role else outbox_path(config),
        will_topic=will_topic,
    )
