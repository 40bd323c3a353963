"""Home Assistant MQTT discovery payload builders: pure functions of settings and servers.

`server_configs` describes one Qlik Sense node as a device; `bridge_configs` describes the bridge
itself (the failure flag, the commands' buttons (acknowledge), site and diagnostic sensors).
"""

from discovery.configs import (
    CommandButton,
    DiscoveryMessage,
    DiscoverySettings,
    bridge_configs,
    server_configs,
)

__all__ = [
    "CommandButton",
    "DiscoveryMessage",
    "DiscoverySettings",
    "bridge_configs",
    "server_configs",
]
