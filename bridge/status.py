"""`qlik2mqtt status`: the bridge's retained topics, read from the broker, shown as tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import gmqtt
from gmqtt import constants as mqtt_constants
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bridge.config import Config
from bridge.connection import broker_settings

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
    return Group(header, failure, _servers(snapshot, info), _counters(site, stats))


def _servers(snapshot: Snapshot, info: dict[str, Any]) -> Table:
    table = Table(title="Qlik Sense servers", title_justify="left")
    for column in (
        "server",
        "sessions",
        "users",
        "connections",
        "failed",
        "aborted",
        "last failed task",
        "last event",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("sessions", "users", "connections", "failed", "aborted")
            else "left",
        )
    for slug in sorted(info.get("servers", {})):
        server = snapshot.get(slug)
        if not isinstance(server, dict):
            continue
        last = server.get("last_failed_task") or {}
        table.add_row(
            server.get("server", slug),
            str(server.get("active_sessions", "")),
            str(server.get("active_users", "")),
            str(server.get("active_connections", "")),
            str(server.get("failed_tasks", "")),
            str(server.get("aborted_tasks", "")),
            str(last.get("task_name") or ""),
            str(server.get("last_event_at") or ""),
        )
    return table


def _counters(site: dict[str, Any], stats: dict[str, Any]) -> Table:
    table = Table(title="Counters", title_justify="left", show_header=False)
    rejected = stats.get("rejected") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in rejected.items() if v) or "none"
    rows = [
        (
            "site sessions / users / connections",
            f"{site.get('active_sessions', '?')} / {site.get('active_users', '?')} / "
            f"{site.get('active_connections', '?')}",
        ),
        ("datagrams received", str(stats.get("datagrams", "?"))),
        ("events", f"{stats.get('events', '?')} ({stats.get('duplicates', 0)} duplicates folded)"),
        ("rejected", f"{stats.get('rejected_total', '?')} ({reasons})"),
        (
            "outbox",
            f"{stats.get('outbox_depth', '?')} waiting, {stats.get('outbox_dropped', 0)} dropped",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def print_status(config: Config, live: bool, console: Console) -> None:
    if not live:
        snapshot = asyncio.run(watch(config, lambda s: None, once=True))
        if "bridge/state" not in snapshot:
            raise LookupError(f"no qlik2mqtt bridge has published under {config.mqtt.base_topic}/")
        console.print(render(snapshot))
        return
    from rich.live import Live

    with Live(console=console, refresh_per_second=2) as screen:
        asyncio.run(watch(config, lambda s: screen.update(render(s)), once=False))
