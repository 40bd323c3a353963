"""The bridge's health, for `qlik2mqtt health`, Docker's HEALTHCHECK and Home Assistant.

The running bridge writes a small JSON file next to its state file every few seconds; the check
reads it, so it needs no network and cannot disturb the bridge. Unhealthy (the check fails):
the report is stale, the MQTT connection is down or its supervisor is dead, a UDP listener is
gone, or events have waited undelivered for UNDELIVERED_LIMIT seconds while the broker is
connected. A failing disk (the outbox or the state file cannot be written) is a problem that
`bridge/stats` and Home Assistant show, but not unhealthy: the bridge still delivers.

The file is rewritten in place at a fixed size once it exists, so it stays current when the
disk is full (a full disk refuses new blocks, not writes into blocks a file already has).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.core.stats import UNTRACKED, Stats
from bridge.ops.running import alive

WRITE_INTERVAL = 5.0
STALE_AFTER = 30.0
PROBLEM_WINDOW = 600
"""Seconds an extension error stays a problem after it happened."""
UNDELIVERED_LIMIT = 300
"""Seconds events may wait undelivered while the broker is connected before health fails."""
FILE_SIZE = 1024
"""The health file's fixed size: the JSON padded with spaces."""


@dataclass(frozen=True, slots=True)
class Facts:
    mqtt_connected: bool
    mqtt_alive: bool = True
    udp_ports: list[int] = field(default_factory=list)
    """Ports still listening."""
    udp_expected: int = 0
    undelivered_for: int = 0
    """Seconds the oldest waiting event has gone without delivery progress."""
    outbox_disk_ok: bool = True
    state_saved: bool = True
    extension_errors_lately: int = 0
    """Exceptions in extension hooks within the last PROBLEM_WINDOW seconds (a problem shown,
    not unhealthy: the guard kept the rest running)."""
    untracked_lately: dict[str, int] = field(default_factory=dict)
    """Events past a cap of `limits:` within the last PROBLEM_WINDOW seconds, by cap (those
    with any): published, but not tracked (a problem shown, not unhealthy)."""
    commands_retained_ignored: int = 0
    """Commands that came retained and were not run (bridge.commands.handling)."""

    def failures(self) -> list[str]:
        """What makes the bridge unhealthy: it does not do its job."""
        found = []
        if not self.mqtt_alive:
            found.append("the MQTT supervisor is not running")
        elif not self.mqtt_connected:
            found.append("not connected to the MQTT broker")
        if len(self.udp_ports) < self.udp_expected or not self.udp_ports:
            found.append("a UDP listener is not listening")
        if self.mqtt_connected and self.undelivered_for >= UNDELIVERED_LIMIT:
            found.append(
                f"events undelivered for {self.undelivered_for} s while connected "
                f"(limit {UNDELIVERED_LIMIT} s)"
            )
        return found

    def problems(self) -> list[str]:
        """Everything wrong: the failures, and faults the bridge works around."""
        found = self.failures()
        if not self.outbox_disk_ok:
            found.append("the outbox cannot write to disk: events wait in memory")
        if not self.state_saved:
            found.append("the state file cannot be saved: state is kept in memory")
        if self.extension_errors_lately:
            found.append(
                f"{self.extension_errors_lately} extension errors in the last "
                f"{PROBLEM_WINDOW // 60} minutes (see extension_errors and the log)"
            )
        for cap, count in sorted(self.untracked_lately.items()):
            setting, what = _CAPS.get(cap, (f"a limit on {cap}", cap))
            found.append(
                f"{setting} reached: {count} events of new {what} published but not tracked "
                f"in the last {PROBLEM_WINDOW // 60} minutes (see untracked_{cap})"
            )
        return found


_CAPS = {
    "servers": ("limits.max_servers", "servers"),
    "sessions": ("limits.max_sessions_per_server", "users"),
    "tasks": ("limits.max_tasks_per_server", "failing tasks"),
}
"""A cap (bridge.core.stats.UNTRACKED) → its setting and what past it is not tracked."""


class RecentCount:
    """How much a running total grew within the last PROBLEM_WINDOW seconds: one sample a
    report, dropped once older than the window."""

    def __init__(self, since: float) -> None:
        self._samples: deque[tuple[float, int]] = deque([(since, 0)])

    def grew(self, total: int, now: float) -> int:
        self._samples.append((now, total))
        while self._samples and now - self._samples[0][0] > PROBLEM_WINDOW:
            self._samples.popleft()
        return total - self._samples[0][1]


class RecentErrors(RecentCount):
    """How many extension errors happened within the last PROBLEM_WINDOW seconds."""

    def count(self, stats: Stats, now: float) -> int:
        return self.grew(sum(stats.extension_errors.values()), now)


class RecentUntracked:
    """How many events each cap of `limits:` left untracked within the last PROBLEM_WINDOW
    seconds (only the caps with any)."""

    def __init__(self, since: float) -> None:
        self._caps = {cap: RecentCount(since) for cap in UNTRACKED}

    def count(self, stats: Stats, now: float) -> dict[str, int]:
        grown = {cap: recent.grew(stats.untracked[cap], now) for cap, recent in self._caps.items()}
        return {cap: count for cap, count in grown.items() if count}


def health_path(state_file: Path) -> Path:
    return state_file.with_name("health.json")


class HealthWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def write(self, facts: Facts, now: float) -> None:
        data = {"pid": os.getpid(), "updated_at": now, **asdict(facts)}
        data["problems"] = facts.problems()
        text = json.dumps(data).encode()
        if len(text) > FILE_SIZE:
            data["problems"] = data["problems"][:1]
            text = json.dumps(data).encode()
        content = text.ljust(FILE_SIZE)
        if self._fd is None:
            self._create(content)
        else:
            os.pwrite(self._fd, content, 0)

    def remove(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)

    def _create(self, content: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.tmp")
        temp.write_bytes(content)
        temp.replace(self.path)
        self._fd = os.open(self.path, os.O_WRONLY)


def read_report(path: Path) -> dict[str, Any]:
    """The running bridge's last report. Raises FileNotFoundError, or ValueError/OSError for
    a file that cannot be read."""
    for _ in range(2):  # a read may meet a rewrite in progress; the next one does not
        with contextlib.suppress(ValueError):
            data = json.loads(path.read_bytes())
            if isinstance(data, dict):
                return data
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def running_report(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """The report of a bridge that is running now (fresh, its process alive), else None."""
    now = time.time() if now is None else now
    try:
        data = read_report(path)
        if now - float(data.get("updated_at", 0)) > STALE_AFTER or not alive(int(data["pid"])):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


def check_health(path: Path, now: float | None = None) -> tuple[bool, str]:
    """(healthy, a one-line reason)."""
    now = time.time() if now is None else now
    try:
        data = read_report(path)
    except FileNotFoundError:
        return False, f"no health file at {path}: is the bridge running?"
    except (OSError, ValueError) as exc:
        return False, f"unreadable health file {path}: {exc}"
    age = now - float(data.get("updated_at", 0))
    if age > STALE_AFTER:
        return False, f"the bridge has not reported for {age:.0f} s"
    facts = Facts(**{key: data[key] for key in Facts.__dataclass_fields__ if key in data})
    failures = facts.failures()
    if failures:
        return False, "; ".join(failures)
    ports = ", ".join(str(port) for port in facts.udp_ports)
    summary = f"connected to MQTT, listening on UDP {ports}"
    problems = facts.problems()
    return True, summary + ("" if not problems else f" (but {'; '.join(problems)})")
