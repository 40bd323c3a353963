"""Background tasks that never end silently: each is restarted with backoff when it fails or
returns, and every end is logged and counted (`task_restarts` in `bridge/stats`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from bridge.core.stats import Stats

log = structlog.get_logger("qlik2mqtt.supervise")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0
"""A run that lasted this long resets the backoff."""


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    stats: Stats,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `run()` until cancelled (or until it returns once `stop` is set)."""
    delay = BACKOFF_FIRST
    while True:
        started = time.monotonic()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task failed; restarting", task=name, retry_in=delay)
        else:
            if stop is not None and stop.is_set():
                return
            log.error("background task ended; restarting", task=name, retry_in=delay)
        stats.task_restarts[name] += 1
        if time.monotonic() - started >= HEALTHY_AFTER:
            delay = BACKOFF_FIRST
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)
