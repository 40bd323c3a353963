"""Home Assistant MQTT discovery: a device per Qlik Sense server, and the bridge device.

Configs are retained and published at connect, for each newly seen server, and again whenever
Home Assistant announces `online` on its status topic (it restarted and may have lost them).
"""

from __future__ import annotations

import json

import structlog

from bridge import PROJECT_URL, __version__
from bridge.commands.builtin import command_buttons
from bridge.config import Config
from bridge.core.state import Change, Watch
from bridge.extensions import Context, Extension
from discovery import (
    DiscoverySettings,
    Encoded,
    WatchedTask,
    encode_configs,
    encoded_bridge_configs,
    encoded_server_configs,
    server_removals,
    watched_task_configs,
    watched_task_removals,
)

log = structlog.get_logger("qlik2mqtt.homeassistant")


class HomeAssistantDiscovery(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.settings = DiscoverySettings(
            prefix=context.config.homeassistant.discovery_prefix,
            base_topic=context.config.mqtt.base_topic,
            version=__version__,
            support_url=PROJECT_URL,
            buttons=command_buttons(context.config),
        )
        self._announced: set[str] = set()
        self._watched = watched_tasks(context.config)
        self._retired = sorted(context.state.watched_slugs - {task.slug for task in self._watched})
        """Watched tasks announced before and no longer watched: removed at each connect of
        this run (the state forgets them once their topics are cleared: `TaskTopics`)."""

    def subscriptions(self) -> tuple[str, ...]:
        return (self.settings.status_topic,)

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.settings.status_topic and payload.strip().lower() == b"online":
            log.info("Home Assistant is online: publishing discovery configs again")
            self._publish_all()

    def on_connect(self) -> None:
        self._publish_all()

    def on_change(self, change: Change) -> None:
        if change.servers <= self._announced:
            return  # the usual case, checked without building a set
        state = self.context.state
        for slug in change.servers - self._announced:
            server = state.servers.get(slug)
            if server is not None and self._publish(
                encoded_server_configs(self.settings, slug, server.host)
            ):
                self._announced.add(slug)

    def on_forget(self, slug: str) -> None:
        self._publish(encode_configs(server_removals(self.settings, slug)))
        self._announced.discard(slug)

    def _publish_all(self) -> None:
        self._announced.clear()
        self._publish(encoded_bridge_configs(self.settings))
        self._publish_watched()
        for slug, server in self.context.state.servers.items():  # kept: none built again
            if self._publish(encoded_server_configs(self.settings, slug, server.host)):
                self._announced.add(slug)

    def _publish_watched(self) -> None:
        """The watched tasks' devices; a task watched before and no longer is removed."""
        for slug in self._retired:
            self._publish(encode_configs(watched_task_removals(self.settings, slug)))
        for task in self._watched:
            self._publish(encode_configs(watched_task_configs(self.settings, task)))

    def _publish(self, messages: Encoded) -> bool:
        link = self.context.link
        return all(link.publish_now(topic, data, retain=True) for topic, data in messages)


def watched_tasks(config: Config) -> list[WatchedTask]:
    """`tasks.watch` as discovery describes it; a Start button only with `qrs.enabled`."""
    return [
        WatchedTask(
            watch.key,
            watch.slug,
            _start_payload(watch) if config.qrs.enabled else None,
        )
        for watch in config.tasks.watched()
    ]


def _start_payload(watch: Watch) -> str:
    """Start by id when the entry has one: it still names the task after a rename."""
    request = {"id": watch.task_id} if watch.task_id else {"name": watch.name}
    return json.dumps(request, ensure_ascii=False)
