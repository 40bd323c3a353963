"""qlik2mqtt: Qlik Sense log4net UDP events to MQTT."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/qlik2mqtt/qlik2mqtt"
