"""Home Assistant MQTT discovery payload builders: pure functions of settings and servers.

`server_configs` describes one Qlik Sense node as a device; `bridge_configs` describes the bridge
itself (the failure flag, the commands' buttons (acknowledge), site and diagnostic sensors);
`watched_task_configs` a watched task (`tasks.watch`).
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

__all__ = [
    "CommandButton",
    "DiscoveryMessage",
    "DiscoverySettings",
    "WatchedTask",
    "bridge_configs",
    "server_configs",
    "server_removals",
    "watched_task_configs",
    "watched_task_removals",
]
