"""structlog setup (console on a TTY, JSON otherwise) and a per-key log rate limiter."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; only their warnings are of use here.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    route_gmqtt(level)


def route_gmqtt(level: str) -> None:
    """gmqtt's own lines (`[MqttPackageHandler] CONNACK: 0x5`, `[TRYING WRITE TO CLOSED
    SOCKET]`) say in its words what the bridge and every command say in theirs: they go
    through our log at debug, shown only with logging.level debug, never on their own."""
    gmqtt_log = logging.getLogger("gmqtt")
    gmqtt_log.handlers = [_ToStructlog()]
    gmqtt_log.propagate = False
    gmqtt_log.setLevel(logging.INFO if level == "debug" else logging.CRITICAL + 1)


class _ToStructlog(logging.Handler):
    """A standard-library record as one of our log lines, at debug."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).debug(
                record.getMessage(), gmqtt_level=record.levelname
            )
        except Exception:  # a log line must never cost the caller anything
            self.handleError(record)


class RateLimiter:
    """Allows one action per key per `interval` seconds and counts what it held back."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None when held back; else how many were held back since the last allowed one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)
