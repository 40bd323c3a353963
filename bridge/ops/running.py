"""Where the running bridge can be found: each `qlik2mqtt run` leaves a small note (its pid,
config file and state file) in a per-user folder while it runs, so `acknowledge`, `forget`,
`status`, `health`, `check` and the rest find its config when none is named, from any folder.

The folder is `$XDG_RUNTIME_DIR/qlik2mqtt`, else `~/.local/state/qlik2mqtt/running`; notes of
processes that no longer exist are ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RunningBridge:
    pid: int
    config: Path | None
    state_file: Path


def notes_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "qlik2mqtt"
    return Path.home() / ".local" / "state" / "qlik2mqtt" / "running"


def leave_note(config: Path | None, state_file: Path) -> Path | None:
    """Written at start; None when the folder cannot be written (the bridge runs anyway)."""
    folder = notes_dir()
    note = folder / f"{os.getpid()}.json"
    data = {
        "pid": os.getpid(),
        "config": str(config.resolve()) if config is not None else None,
        "state_file": str(state_file.absolute()),
    }
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        note.write_text(json.dumps(data))
    except OSError:
        return None
    return note


def remove_note(note: Path | None) -> None:
    if note is not None:
        with contextlib.suppress(OSError):
            note.unlink()


def running_bridges() -> list[RunningBridge]:
    """The bridges of this user that are running now, by their notes."""
    found = []
    with contextlib.suppress(OSError):
        for note in sorted(notes_dir().glob("*.json")):
            try:
                data = json.loads(note.read_text())
                bridge = RunningBridge(
                    pid=int(data["pid"]),
                    config=Path(data["config"]) if data.get("config") else None,
                    state_file=Path(data["state_file"]),
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if alive(bridge.pid):
                found.append(bridge)
            else:
                remove_note(note)
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists (one of another user's counts: signalling it is refused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
