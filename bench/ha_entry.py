"""Home Assistant's MQTT integration set up as its UI would: one config entry for a broker on
loopback, written into a fresh configuration folder (the Home Assistant check and its scale
mode)."""

from __future__ import annotations

import json
from pathlib import Path


def write_mqtt_entry(config: Path, mqtt_port: int, entry_id: str) -> None:
    """`config`/.storage/core.config_entries with the MQTT entry, discovery on."""
    entry = {
        "entry_id": entry_id,
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": "127.0.0.1",
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
        "data": {
            "broker": "127.0.0.1",
            "port": mqtt_port,
            "discovery": True,
            "discovery_prefix": "homeassistant",
        },
    }
    entries = {"version": 1, "minor_version": 2, "key": "core.config_entries"}
    (config / ".storage").mkdir(parents=True, exist_ok=True)
    (config / ".storage" / "core.config_entries").write_text(
        json.dumps(entries | {"data": {"entries": [entry]}})
    )
