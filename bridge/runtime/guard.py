"""The boundary around code the core does not own (extension hooks, library callbacks): an
exception there is logged (rate-limited, with the extension's name), counted in
`bridge/stats` (`extension_errors`, by `name.hook`), and the rest keeps running."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from bridge.core.stats import Stats
from bridge.runtime.logs import RateLimiter

log = structlog.get_logger("qlik2mqtt.guard")

LOG_INTERVAL = 60.0


class Guard:
    def __init__(self, stats: Stats, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._stats = stats
        self._limit = RateLimiter(LOG_INTERVAL, monotonic)

    def failed(self, name: str, hook: str) -> None:
        """Call from an `except Exception:` block: logs the exception being handled."""
        key = f"{name}.{hook}"
        self._stats.extension_errors[key] += 1
        suppressed = self._limit.allow(key)
        if suppressed is not None:
            log.exception(
                "extension failed; the others go on",
                extension=name,
                hook=hook,
                similar_suppressed=suppressed,
            )

    def call(self, name: str, hook: str, function: Callable[[], object]) -> None:
        try:
            function()
        except Exception:
            self.failed(name, hook)
