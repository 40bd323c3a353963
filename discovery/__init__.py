"""Home Assistant MQTT discovery payload builders (pure functions of config and state)."""
