"""The event outbox: events wait here, in order, until the broker has acknowledged them.

While the broker is up and nothing waits on disk, events pass through memory only. While it is
away (or older events still wait on disk), they are appended to SQLite (WAL), so a bridge
restart during an outage loses nothing; rows are deleted once the broker acknowledged them.
The bound counts memory and disk together; past it the oldest event is dropped and counted.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOAD_BATCH = 500


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
    def __init__(self, path: Path | None, max_events: int, on_drop: Callable[[int], None]) -> None:
        self._max = max_events
        self._on_drop = on_drop
        self._memory: deque[OutMessage] = deque()
        self._online = False
        self._db: sqlite3.Connection | None = None
        self._loaded_up_to = 0
        self._disk_waiting = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, "
                "retain INTEGER NOT NULL)"
            )
            self._disk_waiting = self._count()

    def __len__(self) -> int:
        """Events waiting to be sent (not counting those sent and not yet acknowledged)."""
        return len(self._memory) + self._disk_waiting

    def set_online(self, online: bool) -> None:
        self._online = online

    def put(self, message: OutMessage) -> None:
        if len(self) >= self._max:
            self._drop_oldest()
        if self._db is None or (self._online and self._disk_waiting == 0):
            self._memory.append(message)
        else:
            self._insert(message)
            self._disk_waiting += 1

    def take(self, limit: int) -> list[OutMessage]:
        """The next messages to send, oldest first."""
        if not self._memory and self._disk_waiting:
            self._load()
        taken: list[OutMessage] = []
        while self._memory and len(taken) < limit:
            taken.append(self._memory.popleft())
        return taken

    def acked(self, message: OutMessage) -> None:
        if message.row is not None and self._db is not None:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message.row,))

    def spill(self, unacked: list[OutMessage]) -> None:
        """The connection is gone: `unacked` (in send order) and everything waiting in memory
        go back in line ahead of newer events, on disk when there is one."""
        waiting = [*unacked, *self._memory]
        self._memory.clear()
        if self._db is None:
            self._memory.extend(message for message in waiting if message.durable)
            return
        self._db.execute("BEGIN")
        for message in waiting:
            if message.durable and message.row is None:
                self._insert(message)
        self._db.execute("COMMIT")
        self._loaded_up_to = 0  # rows loaded but not acknowledged are sent again
        self._disk_waiting = self._count()

    def close(self, unacked: list[OutMessage]) -> None:
        """Shutdown: keep everything not acknowledged on disk for the next start."""
        self.spill(unacked)
        if self._db is not None:
            self._db.close()
            self._db = None

    def _insert(self, message: OutMessage) -> None:
        assert self._db is not None
        cursor = self._db.execute(
            "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
            (message.topic, message.payload, message.qos, int(message.retain)),
        )
        message.row = cursor.lastrowid

    def _load(self) -> None:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (self._loaded_up_to, LOAD_BATCH),
        ).fetchall()
        for row, topic, payload, qos, retain in rows:
            self._memory.append(OutMessage(topic, bytes(payload), qos, bool(retain), True, row))
            self._loaded_up_to = row
        self._disk_waiting = max(0, self._disk_waiting - len(rows))
        if not rows:
            self._disk_waiting = 0

    def _drop_oldest(self) -> None:
        """Memory holds what is older (rows loaded from disk, or all there is), then disk."""
        if self._memory:
            self.acked(self._memory.popleft())  # deletes its row too, if it had one
        elif self._disk_waiting and self._db is not None:
            self._db.execute(
                "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE id > ?)",
                (self._loaded_up_to,),
            )
            self._disk_waiting -= 1
        self._on_drop(1)

    def _count(self) -> int:
        assert self._db is not None
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE id > ?", (self._loaded_up_to,)
            ).fetchone()[0]
        )
