"""Saving and restoring live state: JSON written atomically (temp file, fsync, rename).

Format 2 keeps the reload keys of `bridge.core.reloads` with their joins, and the retry
button's pending marks; a format-1 file (before them) is read as well: its task keys become
`v1:` keys, its records teach the joins they carry.

A save is taken in one step (`take`: the sessions and connections of each server copied, the
rest encoded) and encoded in steps of at most `ROWS_PER_STEP` rows (`encode_steps`), so the
event loop never waits on the whole file; the bytes are `snapshot`'s, encoded at once."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from bridge.core.events import LOG_EVENT_ADAPTER, TASK_EVENT_ADAPTER, LogSource
from bridge.core.logcounts import BUCKETS, LevelCounts
from bridge.core.reloads import identities_of, upgrade_key
from bridge.core.state import (
    RETRY_MEMORY,
    BridgeState,
    Connections,
    LogRecord,
    ServerState,
    TaskRecord,
    UserKey,
    task_id_key,
)
from bridge.core.topics import task_slug

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ROWS_PER_STEP = 1024
"""Sessions or connections encoded in one step: 0.2-0.4 ms on the shared 2-core machine."""


class StateFileError(Exception):
    """The state file exists but cannot be used."""


def snapshot(state: BridgeState) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "servers": {slug: _server(server) for slug, server in state.servers.items()},
        **_site(state),
    }


def _site(state: BridgeState) -> dict[str, Any]:
    """All of the file but its version and servers."""
    return {
        "failing": dict(state.failing),
        "aborted": dict(state.aborted),
        "last_failure_at": state.last_failure_at,
        "last_failed_task": _record(state.last_failed_task),
        "retryable": [_retryable(record) for record in state.retryable.values()],
        "joins": list(state.reloads.joins.items()),
        "watched": {entry: _record(record) for entry, record in state.watched.items()},
        "watched_slugs": sorted(state.watched_slugs),
        "last_log_error": next(
            (
                slug
                for slug, server in state.servers.items()
                if state.last_log_error is not None
                and server.last_log_error is state.last_log_error
            ),
            None,
        ),
    }


def _server(server: ServerState) -> dict[str, Any]:
    return {
        "host": server.host,
        "sessions": [[d, u, seen] for (d, u), seen in server.sessions.items()],
        "connections": [[d, u, c.count, c.last_seen] for (d, u), c in server.connections.items()],
        **_server_rest(server),
    }


def _server_rest(server: ServerState) -> dict[str, Any]:
    """All of a server but its host, sessions and connections (small: no row per user)."""
    return {
        "last_event_at": server.last_event_at,
        "failed_tasks": server.failed_tasks,
        "aborted_tasks": server.aborted_tasks,
        "succeeded_tasks": server.succeeded_tasks,
        "last_failed_task": _record(server.last_failed_task),
        "log_error_at": server.log_error_at,
        "log_categories_at": dict(server.log_categories_at),
        "last_log_error": _log_record(server.last_log_error),
        "log_counts": {
            source.value: {
                "span": counts.span,
                "buckets": [[number, *levels] for number, levels in counts.buckets],
            }
            for source, counts in server.log_counts.items()
        },
    }


@dataclass(frozen=True, slots=True)
class TakenServer:
    slug: str
    head: bytes
    """`"slug":{"host":…,"sessions":[` encoded."""
    sessions: dict[UserKey, float]
    """A copy: the sessions at the moment the snapshot was taken."""
    connections: dict[UserKey, Connections]
    """A copy of the dict (the set of connections then); the entries are the live ones."""
    tail: bytes
    """`],"last_event_at":…}`: the rest, encoded when the snapshot was taken."""


@dataclass(frozen=True, slots=True)
class Taken:
    """A snapshot taken at one moment and not encoded yet: what `encode_steps` reads."""

    servers: tuple[TakenServer, ...]
    tail: bytes
    """`},"failing":…}`: all but the servers, encoded when the snapshot was taken."""


def take(state: BridgeState) -> Taken:
    """The state at this moment, in one step that encodes no row per user: each server's
    sessions and connections are copied (a dict copy: 0.2 ms at 50,000 sessions), the rest
    is encoded now. A session that starts or stops later is not in this save."""
    servers = tuple(
        TakenServer(
            slug=slug,
            head=b"%s:{%s:%s,%s:[" % (_dump(slug), b'"host"', _dump(server.host), b'"sessions"'),
            sessions=server.sessions.copy(),
            connections=server.connections.copy(),
            tail=b"]," + orjson.dumps(_server_rest(server))[1:],
        )
        for slug, server in state.servers.items()
    )
    return Taken(servers=servers, tail=b"}," + orjson.dumps(_site(state))[1:])


def encode_steps(taken: Taken, rows: int = ROWS_PER_STEP) -> Iterator[bytes]:
    """The file's bytes in pieces, each the work of one step (at most `rows` rows encoded);
    joined, they are `orjson.dumps(snapshot(state))` as `take` saw it. A connection's count
    and time are read in its step (a connection closed by then is left out): the set of
    sessions and the set of connections are the moment's."""
    yield b'{"version":%d,"servers":{' % FORMAT_VERSION
    for index, server in enumerate(taken.servers):
        yield (b"," if index else b"") + server.head
        sessions = ([d, u, seen] for (d, u), seen in server.sessions.items())
        yield from _rows(sessions, rows)
        yield b'],"connections":['
        connections = (
            [d, u, c.count, c.last_seen] for (d, u), c in server.connections.items() if c.count > 0
        )
        yield from _rows(connections, rows)
        yield server.tail
    yield taken.tail


def _rows(rows: Iterable[list[Any]], size: int) -> Iterator[bytes]:
    """`rows` encoded `size` at a time, comma-separated, without the brackets."""
    iterator = iter(rows)
    first = True
    while True:
        with _no_collection():
            chunk = [row for _, row in zip(range(size), iterator, strict=False)]
            if not chunk:
                return
            piece = (b"" if first else b",") + orjson.dumps(chunk)[1:-1]
            del chunk
        yield piece
        first = False


@contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection while a step's rows exist: they are freed before it ends, so a
    collection would find nothing of theirs, and their 1,024 allocations set one off (at
    times a full one, walking the heap: 8 ms of a step at 50,000 sessions)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _dump(value: str) -> bytes:
    return orjson.dumps(value)


def _log_record(record: LogRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    event = LOG_EVENT_ADAPTER.dump_python(record.event, mode="json")
    return {"event": event, "received_at": record.received_at}


def _load_log_record(raw: dict[str, Any] | None) -> LogRecord | None:
    if raw is None:
        return None
    event = LOG_EVENT_ADAPTER.validate_python(raw["event"])
    return LogRecord(event=event, received_at=float(raw["received_at"]))


def _load_log_counts(raw: dict[str, Any]) -> dict[LogSource, LevelCounts]:
    """The window's buckets (at most `BUCKETS` each); the totals since start begin at zero."""
    loaded: dict[LogSource, LevelCounts] = {}
    for source, saved in raw.items():
        counts = LevelCounts(span=float(saved["span"]))
        for number, warnings, errors, fatals in saved["buckets"][-BUCKETS:]:
            levels = [int(warnings), int(errors), int(fatals)]
            counts.buckets.append((int(number), levels))
            for index, count in enumerate(levels):
                counts.window[index] += count
        loaded[LogSource(source)] = counts
    return loaded


def _record(record: TaskRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    event = TASK_EVENT_ADAPTER.dump_python(record.event, mode="json")
    return {"event": event, "received_at": record.received_at}


def _retryable(record: TaskRecord) -> dict[str, Any] | None:
    saved = _record(record)
    if saved is not None and record.started_at is not None:
        saved["started_at"] = record.started_at
    return saved


def restore(data: Any) -> BridgeState:
    """Rebuild state from `snapshot` output (this format or format 1); StateFileError when it
    does not fit."""
    try:
        version = data.get("version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise StateFileError(
                f"state format {version} was written by a newer qlik2mqtt; this one reads "
                f"formats {READABLE_VERSIONS[0]} to {FORMAT_VERSION} (a downgrade)"
            )
        if version not in READABLE_VERSIONS:
            raise StateFileError(f"unknown state format version {version!r}")
        upgrade = version == 1
        servers = {slug: _load_server(raw) for slug, raw in data["servers"].items()}
        site_error = data.get("last_log_error")
        state = BridgeState(
            servers=servers,
            failing=_load_flagged(data["failing"], upgrade),
            aborted=_load_flagged(data.get("aborted", {}), upgrade),
            last_failure_at=_opt_float(data.get("last_failure_at")),
            last_failed_task=_load_record(data.get("last_failed_task")),
            retryable=_load_retryable(data.get("retryable", [])),
            watched=(watched := _load_watched(data.get("watched", {}))),
            watched_slugs=_load_watched_slugs(data.get("watched_slugs"), watched),
            last_log_error=None if site_error is None else servers[site_error].last_log_error,
        )
        joins = [(str(alias), str(task)) for alias, task in data.get("joins", [])]
        state.reloads.restore(joins, [*state.failing, *state.aborted])
        if upgrade:
            _learn_from_records(state)
        return state
    except (AttributeError, KeyError, TypeError, ValueError, ValidationError) as exc:
        raise StateFileError(f"malformed state: {exc.__class__.__name__}: {exc}") from None


def _load_flagged(raw: dict[str, Any], upgrade: bool) -> dict[str, float]:
    """The failing or aborted reloads; a format-1 key (untyped) as a `v1:` key."""
    loaded = {str(key): float(at) for key, at in raw.items()}
    if not upgrade:
        return loaded
    return {upgrade_key(key): at for key, at in loaded.items()}


def _learn_from_records(state: BridgeState) -> None:
    """A format-1 file kept no joins: the task events it kept teach theirs, oldest first."""
    records = [
        *(server.last_failed_task for server in state.servers.values()),
        state.last_failed_task,
        *state.watched.values(),
        *state.retryable.values(),
    ]
    kept = sorted((record for record in records if record is not None), key=lambda r: r.received_at)
    for record in kept:
        state.reloads.learn(identities_of(record.event))


def _load_server(raw: dict[str, Any]) -> ServerState:
    return ServerState(
        host=str(raw["host"]),
        sessions={(sys.intern(str(d)), str(u)): float(seen) for d, u, seen in raw["sessions"]},
        connections={
            (str(d), str(u)): Connections(count=int(count), last_seen=float(seen))
            for d, u, count, seen in raw["connections"]
        },
        last_event_at=_opt_float(raw.get("last_event_at")),
        failed_tasks=int(raw.get("failed_tasks", 0)),
        aborted_tasks=int(raw.get("aborted_tasks", 0)),
        succeeded_tasks=int(raw.get("succeeded_tasks", 0)),
        last_failed_task=_load_record(raw.get("last_failed_task")),
        log_error_at=_opt_float(raw.get("log_error_at")),
        log_categories_at={
            str(name): float(at) for name, at in raw.get("log_categories_at", {}).items()
        },
        last_log_error=_load_log_record(raw.get("last_log_error")),
        log_counts=_load_log_counts(raw.get("log_counts", {})),
    )


def _load_record(raw: dict[str, Any] | None) -> TaskRecord | None:
    if raw is None:
        return None
    event = TASK_EVENT_ADAPTER.validate_python(raw["event"])
    return TaskRecord(event=event, received_at=float(raw["received_at"]))


def _load_retryable(raw: list[dict[str, Any]]) -> OrderedDict[str, TaskRecord]:
    loaded: OrderedDict[str, TaskRecord] = OrderedDict()
    for item in raw[-RETRY_MEMORY:]:
        record = _load_record(item)
        if record is None or not record.event.task_id:
            continue
        record.started_at = _opt_float(item.get("started_at"))  # format 1: none kept
        loaded[task_id_key(record.event.task_id)] = record
    return loaded


def _load_watched(raw: dict[str, Any]) -> dict[str, TaskRecord]:
    loaded = {str(entry): _load_record(item) for entry, item in raw.items()}
    return {entry: record for entry, record in loaded.items() if record is not None}


def _load_watched_slugs(raw: list[str] | None, watched: dict[str, TaskRecord]) -> set[str]:
    """A file from before `watched_slugs` knew only the tasks with an outcome."""
    if raw is None:
        return {slug for slug in map(task_slug, watched) if slug}
    return {str(slug) for slug in raw}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def save_state(path: Path, state: BridgeState) -> None:
    write_snapshot(path, snapshot(state))


def encode(state: BridgeState) -> list[bytes]:
    """The whole file at once, in `encode_steps`' pieces (for a caller without a loop)."""
    return list(encode_steps(take(state)))


def write_snapshot(path: Path, snapshot_data: dict[str, Any]) -> None:
    write_pieces(path, [orjson.dumps(snapshot_data)])  # 50,000 sessions: 13 ms (json: 90)


def write_pieces(path: Path, pieces: list[bytes]) -> None:
    """Write atomically: a reader or a crash sees the old file or the new one, never half."""
    data = b"".join(pieces)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_state(path: Path) -> BridgeState | None:
    """The saved state, None when there is none; StateFileError when it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except ValueError as exc:
        raise StateFileError(f"not JSON: {exc}") from None
    return restore(data)
