"""`qlik2mqtt status`: the bridge's retained topics, read from the broker, shown as tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import gmqtt
from gmqtt import constants as mqtt_constants
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bridge.config import Config
from bridge.core.events import LogSource
from bridge.mqtt.connection import broker_settings

SETTLE = 0.5
"""Retained messages arrive in a burst after subscribing; a pause this long ends it."""
TIMEOUT = 3.0

Snapshot = dict[str, Any]
"""Topic (below the base topic) → decoded payload."""


async def watch(config: Config, on_update: Callable[[Snapshot], None], once: bool) -> Snapshot:
    """Subscribe to `<base>/#`; call on_update as messages arrive. With `once`, return after
    the retained burst; else run until cancelled."""
    base = config.mqtt.base_topic
    settings = broker_settings(config, "status")
    snapshot: Snapshot = {}
    arrived = asyncio.Event()

    def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        key = topic[len(base) + 1 :]
        if not payload:
            snapshot.pop(key, None)
        else:
            try:
                snapshot[key] = json.loads(payload)
            except ValueError:
                snapshot[key] = payload.decode("utf-8", errors="replace")
        arrived.set()
        on_update(snapshot)
        return 0

    client = gmqtt.Client(settings.client_id)
    client.on_message = on_message
    if settings.username is not None:
        client.set_auth_credentials(settings.username, settings.password)
    await asyncio.wait_for(
        client.connect(
            settings.host, settings.port, ssl=settings.tls or False, version=mqtt_constants.MQTTv311
        ),
        TIMEOUT,
    )
    try:
        client.subscribe(f"{base}/#", qos=0)
        if once:
            await _retained_burst(arrived)
        else:
            await asyncio.Event().wait()
    finally:
        await client.disconnect()
    return snapshot


async def _retained_burst(arrived: asyncio.Event) -> None:
    """Until the messages pause for SETTLE, or TIMEOUT at most (a busy bridge never pauses)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    try:
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
    except TimeoutError:
        return
    while (left := deadline - loop.time()) > 0:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), min(SETTLE, left))
        except TimeoutError:
            return


def render(snapshot: Snapshot) -> Group:
    state = snapshot.get("bridge/state", "unknown")
    info = snapshot.get("bridge/info") or {}
    site = snapshot.get("site") or {}
    stats = snapshot.get("bridge/stats") or {}
    colour = "green" if state == "online" else "red"
    header = Text.assemble(
        ("qlik2mqtt ", "bold"),
        (str(state), f"bold {colour}"),
        f"  version {info.get('version', '?')}, started {info.get('started_at', '?')}",
    )
    flag = site.get("reload_failure", "?")
    failure = Text.assemble(
        ("reload failure: ", "bold"), (str(flag), "bold red" if flag == "ON" else "green")
    )
    last = site.get("last_failed_task")
    if last:
        failure.append(
            f"  last: {last.get('task_name')} (app {last.get('app_name')}) on "
            f"{last.get('server')} at {last.get('timestamp')}"
        )
    parts: list[Text | Table] = [header, failure]
    logs = site.get("log_events") or {}
    last_error = logs.get("last_error")
    if last_error:
        parts.append(
            Text.assemble(
                ("last log error: ", "bold"),
                f"{last_error.get('level')} from the {last_error.get('source')} on "
                f"{last_error.get('server')} at {last_error.get('time')}: "
                f"{_clipped(last_error.get('message'))}",
            )
        )
    parts.append(_servers(snapshot, info))
    if any(logs.get(f"{kind}_total") for kind in ("warnings", "errors", "fatals")):
        parts.append(_log_events(snapshot, info))
    return Group(*parts, _counters(site, stats))


def _log_events(snapshot: Snapshot, info: dict[str, Any]) -> Table:
    """Per server and source: warnings/errors+fatals in the window (log_events.window)."""
    table = _server_table("Log events in the window (warnings/errors)")
    table.add_column("server", no_wrap=True, overflow="fold")
    for source in LogSource:
        table.add_column(source.value, justify="right", no_wrap=True)
    for slug in sorted(info.get("servers", {})):
        server = snapshot.get(slug)
        if not isinstance(server, dict):
            continue
        sources = (server.get("log_events") or {}).get("sources") or {}
        cells = []
        for source in LogSource:
            counts = sources.get(source) or {}
            errors = (counts.get("errors") or 0) + (counts.get("fatals") or 0)
            cells.append(f"{counts.get('warnings') or 0}/{errors}")
        table.add_row(str(server.get("server", slug)), *cells)
    return table


def _clipped(message: Any, limit: int = 120) -> str:
    """A log message on one line, at most `limit` characters."""
    text = " ".join(str(message or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_table(title: str) -> Table:
    """The compact table the servers, and their log-event counts, are shown in."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


SERVER_COLUMNS = (
    # header, justify; short headers and wrapping text keep the table within 80 columns. A
    # server's users are its sessions (one per user), so they are not shown twice.
    ("server", "left"),
    ("sessions", "right"),
    ("conns", "right"),
    ("failed", "right"),
    ("aborted", "right"),
    ("last failed task", "left"),
    ("last event (UTC)", "left"),
)


def _servers(snapshot: Snapshot, info: dict[str, Any]) -> Table:
    table = _server_table("Qlik Sense servers")
    for column, justify in SERVER_COLUMNS:
        wraps = column.startswith("last")
        table.add_column(
            column,
            justify="right" if justify == "right" else "left",
            no_wrap=not wraps,
            overflow="fold",
            min_width=10 if column.startswith("last event") else None,  # a whole date
        )
    for slug in sorted(info.get("servers", {})):
        server = snapshot.get(slug)
        if not isinstance(server, dict):
            continue
        last = server.get("last_failed_task") or {}
        table.add_row(
            str(server.get("server", slug)),
            str(server.get("active_sessions", "")),
            str(server.get("active_connections", "")),
            str(server.get("failed_tasks", "")),
            str(server.get("aborted_tasks", "")),
            str(last.get("task_name") or ""),
            _when(server.get("last_event_at")),
        )
    return table


def _when(stamp: Any) -> str:
    """`2026-05-06T14:23:46.120Z` as `2026-05-06 14:23:46`: it wraps between date and time."""
    if not isinstance(stamp, str) or not stamp:
        return ""
    return stamp.replace("T", " ", 1).removesuffix("Z").partition(".")[0]


def _counters(site: dict[str, Any], stats: dict[str, Any]) -> Table:
    table = Table(title="Counters", title_justify="left", show_header=False)
    rejected = stats.get("rejected") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in rejected.items() if v) or "none"
    duplicates = stats.get("duplicates", 0)
    rows = [
        (
            "site sessions / users / connections",
            f"{site.get('active_sessions', '?')} / {site.get('active_users', '?')} / "
            f"{site.get('active_connections', '?')}",
        ),
        ("log events in the window", log_counts(site.get("log_events"), "")),
        ("log events since start", log_counts(site.get("log_events"), "_total")),
        ("datagrams received", str(stats.get("datagrams", "?"))),
        ("events", f"{stats.get('events', '?')} ({counted(duplicates, 'duplicates')} folded)"),
        ("rejected", f"{stats.get('rejected_total', '?')} ({reasons})"),
        (
            "outbox",
            f"{stats.get('outbox_depth', '?')} waiting, {stats.get('outbox_dropped', 0)} dropped",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def log_counts(logs: Any, suffix: str) -> str:
    """`3 warnings, 1 error, 0 fatals` from the site's `log_events` (`_total`: since start)."""
    if not isinstance(logs, dict):
        return "?"
    return ", ".join(
        counted(logs.get(kind + suffix, "?"), kind) for kind in ("warnings", "errors", "fatals")
    )


def counted(count: object, plural: str) -> str:
    """`1 error`, `3 errors`, `? errors` (a count the payload lacks)."""
    return f"1 {plural.removesuffix('s')}" if count == 1 else f"{count} {plural}"


PLAIN_REFRESH = 1.0
"""Without a terminal, `--watch` prints a snapshot after a change, at most once a second."""


def print_status(config: Config, live: bool, console: Console) -> None:
    if not live:
        snapshot = asyncio.run(watch(config, lambda s: None, once=True))
        _require_bridge(config, snapshot)
        console.print(render(snapshot))
        return
    if not console.is_terminal:
        # rich's Live draws nothing on a pipe or a file: print whole snapshots instead.
        asyncio.run(_watch_plain(config, console))
        return
    from rich.live import Live

    with Live(console=console, refresh_per_second=2) as screen:
        asyncio.run(watch(config, lambda s: screen.update(render(s)), once=False))


def _require_bridge(config: Config, snapshot: Snapshot) -> None:
    if "bridge/state" not in snapshot:
        raise LookupError(f"no qlik2mqtt bridge has published under {config.mqtt.base_topic}/")


async def _watch_plain(config: Config, console: Console) -> None:
    """The retained snapshot, then a new one after each change (a burst of messages at most
    once per PLAIN_REFRESH), each flushed at once so that a reader of the pipe sees it."""
    changed = asyncio.Event()
    latest: Snapshot = {}

    def on_update(snapshot: Snapshot) -> None:
        latest.clear()
        latest.update(snapshot)
        changed.set()

    async def printer() -> None:
        while True:  # until cancelled with the watch (Ctrl-C, or the broker going away)
            await changed.wait()
            await asyncio.sleep(PLAIN_REFRESH)  # let the burst complete: one snapshot for it
            changed.clear()
            console.rule(datetime.now().astimezone().isoformat(timespec="seconds"))
            console.print(render(latest))
            console.file.flush()

    printing = asyncio.create_task(printer())
    try:
        await watch(config, on_update, once=False)
    finally:
        printing.cancel()
