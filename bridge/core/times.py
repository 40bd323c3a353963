"""Times as the topics publish them: ISO 8601 in UTC to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime

_last_formatted: tuple[int, str] = (-1, "")
"""The last millisecond formatted, and its text (one entry: lru_cache's bookkeeping cost more)."""


def iso_time(unix_seconds: float | None) -> str | None:
    """ISO 8601 in UTC to the millisecond; a burst within one millisecond formats once."""
    global _last_formatted
    if unix_seconds is None:
        return None
    milliseconds = int(unix_seconds * 1000)
    if _last_formatted[0] != milliseconds:
        _last_formatted = (milliseconds, iso_millis(milliseconds))
    return _last_formatted[1]


def iso_millis(milliseconds: int) -> str:
    """Milliseconds since the epoch (log4j's `timestamp`) as ISO 8601 in UTC."""
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
