"""One bridge per state file: an exclusive lock (`flock`) on `<state file>.lock`.

A bridge started again at once (systemd `Restart=`, a container restart, `scripts/run` again)
would otherwise run beside the one still shutting down: its `online` lands first, the old
one's `offline` after it, and both write the state file. The new one waits for the lock
instead, a bounded time (a shutdown takes seconds), then refuses with one line. The kernel
drops the lock when its holder exits, however it exits: a crash leaves no stale lock. (Where
there is no `flock`, Windows, bridges are not held back.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import structlog

if sys.platform != "win32":
    import fcntl

log = structlog.get_logger("qlik2mqtt")

WAIT = 30.0
"""How long a new bridge waits for one shutting down: its flush (5 s), Slack (3 s), the
broker's goodbye (2 s) and the state save fit well within it."""
POLL = 0.05
"""`flock` says nothing when a lock is released: looked at this often while waiting."""


class InstanceRunningError(Exception):
    """Another bridge holds the state file's lock and did not let it go in time."""


def lock_path(state_file: Path) -> Path:
    return state_file.with_name(f"{state_file.name}.lock")


class InstanceLock:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.path = lock_path(state_file)
        self._fd: int | None = None

    async def acquire(self, wait: float = WAIT, stop: asyncio.Event | None = None) -> bool:
        """Hold the lock, waiting up to `wait` seconds for its holder to let go. False when
        `stop` was set while waiting; raises InstanceRunningError when the wait ran out, and
        OSError when the lock file cannot be opened."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        waiting_logged = False
        while not _try_lock(fd):
            holder = _holder(fd)
            if time.monotonic() >= deadline:
                os.close(fd)
                named = "" if holder is None else f" (pid {holder})"
                raise InstanceRunningError(
                    f"another qlik2mqtt{named} runs with the state file {self.state_file} and "
                    f"did not stop within {wait:g} s: stop it first, or give this one its own "
                    "state_file"
                )
            if not waiting_logged:
                log.info("waiting for the bridge that uses this state file to stop", pid=holder)
                waiting_logged = True
            if stop is not None and stop.is_set():
                os.close(fd)
                return False
            await asyncio.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        """Let the next bridge start (the file stays: removing it would race a new one)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> int | None:
    """The holder's pid as it wrote it (None: not written yet)."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
