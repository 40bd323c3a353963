"""The bridge's health, for `qlik2mqtt health` and Docker's HEALTHCHECK.

The running bridge writes a small JSON file next to its state file every few seconds; the check
reads it, so it needs no network and cannot disturb the bridge. Healthy: the file is fresh, the
MQTT connection is up and the UDP ports are bound.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

WRITE_INTERVAL = 5.0
STALE_AFTER = 30.0


def health_path(state_file: Path) -> Path:
    return state_file.with_name("health.json")


def write_health(path: Path, *, mqtt_connected: bool, udp_ports: list[int], now: float) -> None:
    data = {
        "pid": os.getpid(),
        "updated_at": now,
        "mqtt_connected": mqtt_connected,
        "udp_ports": udp_ports,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data))
    temp.replace(path)


def check_health(path: Path, now: float | None = None) -> tuple[bool, str]:
    """(healthy, a one-line reason)."""
    now = time.time() if now is None else now
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return False, f"no health file at {path}: is the bridge running?"
    except (OSError, ValueError) as exc:
        return False, f"unreadable health file {path}: {exc}"
    age = now - float(data.get("updated_at", 0))
    if age > STALE_AFTER:
        return False, f"the bridge has not reported for {age:.0f} s"
    if not data.get("udp_ports"):
        return False, "not listening for datagrams"
    if not data.get("mqtt_connected"):
        return False, "not connected to the MQTT broker"
    ports = ", ".join(str(port) for port in data["udp_ports"])
    return True, f"connected to MQTT, listening on UDP {ports}"
