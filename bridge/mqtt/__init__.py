"""MQTT: one supervised broker connection (link), its outbox, drain and acknowledgement
tracking, each in a module of its own; gmqtt underneath, through its public API only."""

from bridge.mqtt.client import BrokerSettings, probe
from bridge.mqtt.link import MqttLink
from bridge.mqtt.outbox import OutMessage

__all__ = ["BrokerSettings", "MqttLink", "OutMessage", "probe"]
