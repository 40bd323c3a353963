"""The event outbox: events wait here, in order, until the broker has acknowledged them.

While the broker is up and keeps up, events pass through memory only; a backlog beyond
MEMORY_HIGH goes to SQLite (WAL) in batches of SPOOL_BATCH. While the broker is away, every event
is appended to SQLite as it comes, so a bridge restart during an outage loses nothing; rows are
deleted once the broker acknowledged them.
The bound counts memory and disk together; past it the oldest event is dropped and counted.

The disk may fail (full, read-only, gone). Then events wait in memory instead, behind those on
disk and within the same bound; the fault is reported through `on_disk_error` (the link logs
and counts it) and the disk is tried again every DISK_RETRY seconds. Nothing is lost that the
bound does not say so; only a crash while the disk is failing loses what waits in memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOAD_BATCH = 500
MEMORY_HIGH = 5_000
"""Events waiting in memory while the broker is up; a burst beyond waits on disk (in batches of
SPOOL_BATCH), so a burst costs disk, not memory (about 0.9 KB an event)."""
SPOOL_BATCH = 500
DISK_RETRY = 5.0
"""Seconds between attempts to use a disk that failed."""
FROM_START = -(2**63)
"""Below every row id: the rows put back in front by `spill` may have ids below zero."""


@dataclass(slots=True)
class OutMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    durable: bool = True
    """Durable messages (events) are kept until acknowledged; state is not."""
    row: int | None = None
    """Its row in the disk outbox, while it has one."""


class Outbox:
    def __init__(
        self,
        path: Path | None,
        max_events: int,
        on_drop: Callable[[int], None],
        *,
        on_disk_error: Callable[[str, Exception], None] = lambda action, exc: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._max = max_events
        self._on_drop = on_drop
        self._on_disk_error = on_disk_error
        self._clock = clock
        self._memory: deque[OutMessage] = deque()
        """The oldest events: rows loaded from disk, or all there is while nothing is on disk."""
        self._overflow: deque[OutMessage] = deque()
        """Events that should be on disk, behind its rows, while the disk fails."""
        self._online = False
        self._db: sqlite3.Connection | None = None
        self._loaded_up_to = FROM_START
        self._disk_waiting = 0
        self._disk_failed_at: float | None = None
        if path is not None:
            self._open()

    def __len__(self) -> int:
        """Events waiting to be sent (not counting those sent and not yet acknowledged)."""
        return len(self._memory) + self._disk_waiting + len(self._overflow)

    @property
    def disk_ok(self) -> bool:
        return self._path is None or self._disk_failed_at is None

    def set_online(self, online: bool) -> None:
        self._online = online

    def put(self, message: OutMessage) -> None:
        if len(self) >= self._max:
            self._drop_oldest()
        if self._path is None or (
            self._online
            and not self._disk_waiting
            and not self._overflow
            and len(self._memory) < MEMORY_HIGH
        ):
            self._memory.append(message)
            return
        self._overflow.append(message)
        if not self._online or len(self._overflow) >= SPOOL_BATCH:
            self._spool()  # offline: each event on disk as it comes (a restart keeps it)

    def take(self, limit: int) -> list[OutMessage]:
        """The next messages to send, oldest first."""
        if not self._memory:
            if self._disk_waiting:
                self._load()
            if not self._memory and not self._disk_waiting and self._overflow:
                self._memory, self._overflow = self._overflow, deque()
        taken: list[OutMessage] = []
        while self._memory and len(taken) < limit:
            taken.append(self._memory.popleft())
        return taken

    def unsend(self, messages: list[OutMessage]) -> None:
        """Messages just taken and not sent after all go back to the front, as they were."""
        self._memory.extendleft(reversed(messages))

    def acked(self, messages: Iterable[OutMessage]) -> None:
        """The broker has these: their disk rows go. A failed delete is reported and the event
        is sent again after a restart (QoS 1 allows a duplicate, never a loss)."""
        rows = [(message.row,) for message in messages if message.row is not None]
        if not rows or self._db is None:
            return
        try:
            with self._transaction() as db:  # one WAL commit for the batch, not one a row
                db.executemany("DELETE FROM outbox WHERE id = ?", rows)
        except sqlite3.Error as exc:
            self._disk_error("delete", exc)

    def spill(self, unacked: list[OutMessage]) -> None:
        """The connection is gone: `unacked` (in send order) and everything waiting in memory
        go back in line ahead of newer events, on disk when there is one."""
        waiting = [message for message in (*unacked, *self._memory) if message.durable]
        self._memory.clear()
        if not self._disk_ready():
            self._memory.extend(waiting)
            return
        try:
            first = self._put_in_front(waiting)
        except sqlite3.Error as exc:
            self._memory.extend(waiting)
            self._disk_error("write", exc)
            return
        self._loaded_up_to = first - 1  # from the front: what was loaded is sent again
        self._disk_waiting = self._count()
        self._spool()

    def close(self, unacked: list[OutMessage]) -> int:
        """Shutdown: keep everything not acknowledged on disk for the next start. Returns how
        many could not be kept (the disk failed)."""
        self._disk_failed_at = None  # the last chance: try the disk whenever it last failed
        self.spill(unacked)  # and, when the disk takes that, what waits to be spooled
        if self._path is None:
            lost = 0  # memory only by design (a command's link): the caller counts what is left
        else:
            lost = len(self._overflow) + sum(1 for m in self._memory if m.row is None)
        if self._db is not None:
            self._db.close()
            self._db = None
        return lost

    # -- disk ---------------------------------------------------------------------------

    def _open(self) -> None:
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, "
                "retain INTEGER NOT NULL)"
            )
            self._db = db
            self._disk_waiting = self._count()
        except (sqlite3.Error, OSError) as exc:
            self._db = None
            self._disk_error("open", exc)

    def _spool(self) -> None:
        """Move what waits in overflow to disk, in order, when the disk takes it."""
        if not self._overflow or not self._disk_ready():
            return
        try:
            self._insert_all(self._overflow)
        except sqlite3.Error as exc:
            self._disk_error("write", exc)
            return
        self._disk_waiting += len(self._overflow)
        self._overflow.clear()

    def _disk_ready(self) -> bool:
        """The disk can be used: open and working, or failed DISK_RETRY ago and open again."""
        if self._path is None:
            return False
        if self._disk_failed_at is not None:
            if self._clock() - self._disk_failed_at < DISK_RETRY:
                return False
            self._disk_failed_at = None
        if self._db is None:
            self._open()
        return self._db is not None and self._disk_failed_at is None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed as a whole, rolled back as a whole on an error."""
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN")
            yield self._db

    def _disk_error(self, action: str, exc: Exception) -> None:
        self._disk_failed_at = self._clock()
        self._on_disk_error(action, exc)

    def _put_in_front(self, waiting: list[OutMessage]) -> int:
        """Write `waiting` (oldest first) to disk ahead of every row there, in one
        transaction; returns the first id. Rows some of them already had are rewritten, so
        the order on disk is the order of delivery whatever path each event took."""
        assert self._db is not None
        rows = {id(message): message.row for message in waiting}
        try:
            with self._transaction() as db:
                db.executemany(
                    "DELETE FROM outbox WHERE id = ?",
                    [(message.row,) for message in waiting if message.row is not None],
                )
                lowest = db.execute("SELECT MIN(id) FROM outbox").fetchone()[0]
                if lowest is None:
                    sequence = db.execute(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
                    ).fetchone()
                    lowest = (sequence[0] if sequence else 0) + 1
                first = int(lowest) - len(waiting)
                for offset, message in enumerate(waiting):
                    self._insert(message, first + offset)
        except sqlite3.Error:
            for message in waiting:
                message.row = rows[id(message)]  # rolled back: as they were
            raise
        return first

    def _insert_all(self, messages: Iterable[OutMessage]) -> None:
        """Append rows in one transaction: all of them or, on an error, none (rows unset)."""
        assert self._db is not None
        done: list[OutMessage] = []
        try:
            with self._transaction():
                for message in messages:
                    self._insert(message)
                    done.append(message)
        except sqlite3.Error:
            for message in done:
                message.row = None
            raise

    def _insert(self, message: OutMessage, row: int | None = None) -> None:
        """A row for `message`: the next id, or `row` (to put it in front of the others)."""
        assert self._db is not None
        cursor = self._db.execute(
            "INSERT INTO outbox (id, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
            (row, message.topic, message.payload, message.qos, int(message.retain)),
        )
        message.row = cursor.lastrowid

    def _load(self) -> None:
        if self._db is None:
            return
        try:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (self._loaded_up_to, LOAD_BATCH),
            ).fetchall()
        except sqlite3.Error as exc:
            self._disk_error("read", exc)
            return
        for row, topic, payload, qos, retain in rows:
            self._memory.append(OutMessage(topic, bytes(payload), qos, bool(retain), True, row))
            self._loaded_up_to = row
        self._disk_waiting = max(0, self._disk_waiting - len(rows))
        if not rows:
            self._disk_waiting = 0

    def _drop_oldest(self) -> None:
        """Memory holds what is oldest (rows loaded from disk, or all there is), then disk,
        then what waits for the disk in overflow."""
        if self._memory:
            self.acked([self._memory.popleft()])  # deletes its row too, if it had one
        elif self._disk_waiting and self._db is not None:
            try:
                self._db.execute(
                    "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE id > ?)",
                    (self._loaded_up_to,),
                )
                self._disk_waiting -= 1
            except sqlite3.Error as exc:
                self._disk_error("delete", exc)
                if not self._overflow:
                    return  # nothing else to drop: one over the bound until the disk recovers
                self._overflow.popleft()  # the oldest that can go; still within the bound
        elif self._overflow:
            self._overflow.popleft()
        self._on_drop(1)

    def _count(self) -> int:
        assert self._db is not None
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE id > ?", (self._loaded_up_to,)
            ).fetchone()[0]
        )
