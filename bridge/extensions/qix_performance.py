"""`<base>/<server>/event/qix_performance`: Butler SOS's QIX performance lines, one message per
engine request, when `log_events.qix_performance.enabled`; queued, not retained.

The filters are Butler SOS's monitor's, reduced to what a migrating user sets: only some apps
(`app_ids`), never some (`exclude_app_ids`), and requests that took at least
`min_process_time` milliseconds. What they leave out is counted (`qix_performance.filtered` in
`bridge/stats`); every line is counted as received by the core, published or not.

A QIX line names its app by id only. Butler SOS looks the name up in QRS; here it is the name
the scheduler's log events and task events gave that id last (`APP_NAMES` remembered), null for
an app not seen yet.
"""

from __future__ import annotations

from bridge.config import QixPerformanceConfig
from bridge.core.events import Event, LogEvent, QixPerfEvent, TaskEvent
from bridge.core.log_payloads import qix_performance_payload
from bridge.core.payloads import encode
from bridge.core.state import slug_of
from bridge.extensions import Context, Extension
from bridge.extensions.link import OutMessage

APP_NAMES = 10_000
"""App names remembered by id; past it the oldest is forgotten."""


def wanted(event: QixPerfEvent, settings: QixPerformanceConfig) -> bool:
    """Whether the filters let `event` through."""
    app_id = (event.app_id or "").strip().lower()
    if settings.app_ids and app_id not in settings.app_ids:
        return False
    if app_id in settings.exclude_app_ids:
        return False
    if settings.min_process_time > 0:
        return event.process_time is not None and event.process_time >= settings.min_process_time
    return True


class QixPerformanceTopics(Extension):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self._settings = context.config.log_events.qix_performance
        self._qos = context.config.mqtt.qos
        self._app_names: dict[str, str] = {}

    def on_event(self, event: Event, received_at: float) -> None:
        """Remember the app names task and log events give their app ids."""
        if not isinstance(event, TaskEvent | LogEvent) or not event.app_id or not event.app_name:
            return
        names = self._app_names
        key = event.app_id.strip().lower()
        names.pop(key, None)
        if len(names) >= APP_NAMES:
            del names[next(iter(names))]
        names[key] = event.app_name

    def on_qix_performance(self, event: QixPerfEvent, received_at: float) -> None:
        stats = self.context.stats
        if not wanted(event, self._settings):
            stats.qix_performance_filtered += 1
            return
        topic = self.context.topics.qix_performance(slug_of(self.context.state, event.server))
        app_name = self._app_names.get((event.app_id or "").strip().lower())
        payload = qix_performance_payload(event, received_at, self.context.privacy, app_name)
        self.context.link.enqueue(OutMessage(topic, encode(payload), self._qos))
        stats.qix_performance_published += 1
