"""Home Assistant MQTT discovery payload builders: pure functions of settings and servers.

`server_configs` describes one Qlik Sense node as a device; `bridge_configs` describes the bridge
itself (the failure flag, the commands' buttons (acknowledge), site and diagnostic sensors);
`watched_task_configs` a watched task (`tasks.watch`); `encoded` keeps them encoded.
"""

from discovery.configs import (
    CommandButton,
    DiscoveryMessage,
    DiscoverySettings,
    WatchedTask,
    bridge_configs,
    server_configs,
    server_removals,
    watched_task_configs,
    watched_task_removals,
)
from discovery.encoded import (
    Encoded,
    encode_configs,
    encoded_bridge_configs,
    encoded_server_configs,
)

__all__ = [
    "CommandButton",
    "DiscoveryMessage",
    "DiscoverySettings",
    "Encoded",
    "WatchedTask",
    "bridge_configs",
    "encode_configs",
    "encoded_bridge_configs",
    "encoded_server_configs",
    "server_configs",
    "server_removals",
    "watched_task_configs",
    "watched_task_removals",
]
