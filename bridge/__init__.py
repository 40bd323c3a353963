"""qlik2mqtt: Qlik Sense log4net UDP events to MQTT."""

__version__ = "0.1.0"
