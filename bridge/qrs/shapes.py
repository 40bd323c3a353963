"""What the bridge reads from QRS's answers (the JSON shapes of Qlik's Repository API: a
ReloadTask, an App, an ExecutionResult) and the script log's last lines. Pure, and bounded: an
answer of any size or shape gives a small dict of text, lists and numbers, never an exception.
"""

from __future__ import annotations

import json
from typing import Any

MAX_TEXT = 300
"""Characters kept of a name or a value."""
MAX_ITEMS = 30
"""Tags, custom properties (and values of one), execution messages kept."""
MAX_DETAIL = 500
"""Characters kept of one execution detail message."""
NO_ID = "00000000-0000-0000-0000-000000000000"
"""QRS's empty reference (an execution without a script log has this `fileReferenceID`)."""

STATUSES = {
    0: "NeverStarted",
    1: "Triggered",
    2: "Started",
    3: "Queued",
    4: "AbortInitiated",
    5: "Aborting",
    6: "Aborted",
    7: "FinishedSuccess",
    8: "FinishedFail",
    9: "Skipped",
    10: "Retry",
    11: "Error",
    12: "Reset",
}
"""QRS's TaskExecutionStatus, by number."""
DETAIL_TYPES = {0: "error", 1: "warning", 2: "information"}


def _text(value: object, limit: int = MAX_TEXT) -> str | None:
    if isinstance(value, str) and value:
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value[:1000] if isinstance(value, list) else []


def tags(value: object) -> list[str]:
    """`[{"id", "name"}, …]` → the names, at most MAX_ITEMS."""
    names = (_text(_dict(tag).get("name")) for tag in _list(value))
    return [name for name in names if name][:MAX_ITEMS]


def custom_properties(value: object) -> dict[str, list[str]]:
    """`[{"value", "definition": {"name"}}, …]` (one entry per value) → name → its values."""
    found: dict[str, list[str]] = {}
    for item in _list(value):
        entry = _dict(item)
        name = _text(_dict(entry.get("definition")).get("name"))
        text = _text(entry.get("value"))
        if name is None or text is None:
            continue
        if name not in found and len(found) >= MAX_ITEMS:
            continue
        values = found.setdefault(name, [])
        if text not in values and len(values) < MAX_ITEMS:
            values.append(text)
    return found


def task_facts(answer: object) -> dict[str, Any]:
    """A ReloadTask (`GET /qrs/reloadtask/{id}`): its name, tags, custom properties, app id."""
    task = _dict(answer)
    app = _dict(task.get("app"))
    operational = _dict(task.get("operational"))
    return {
        "id": _text(task.get("id")),
        "name": _text(task.get("name")),
        "enabled": task.get("enabled") if isinstance(task.get("enabled"), bool) else None,
        "tags": tags(task.get("tags")),
        "custom_properties": custom_properties(task.get("customProperties")),
        "app_id": _text(app.get("id")),
        "app_name": _text(app.get("name")),
        "last_execution": execution_facts(operational.get("lastExecutionResult")),
    }


def app_facts(answer: object) -> dict[str, Any]:
    """An App (`GET /qrs/app/{id}`): name, owner, stream, published, tags, custom properties."""
    app = _dict(answer)
    owner = _dict(app.get("owner"))
    stream = _dict(app.get("stream"))
    published = app.get("published")
    return {
        "id": _text(app.get("id")),
        "name": _text(app.get("name")),
        "owner": {
            "name": _text(owner.get("name")),
            "user_directory": _text(owner.get("userDirectory")),
            "user_id": _text(owner.get("userId")),
            "id": _text(owner.get("id")),
        }
        if owner
        else None,
        "stream": _text(stream.get("name")),
        "stream_id": _text(stream.get("id")),
        "published": published if isinstance(published, bool) else None,
        "publish_time": _text(app.get("publishTime")) if published is True else None,
        "tags": tags(app.get("tags")),
        "custom_properties": custom_properties(app.get("customProperties")),
    }


def _status(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return STATUSES.get(value, str(value))
    return _text(value)


def execution_facts(answer: object) -> dict[str, Any] | None:
    """An ExecutionResult (or the first of `GET /qrs/executionresult?filter=…`'s list): the
    status, times, executing node, QRS's detail messages, and the script log's references."""
    found = answer[0] if isinstance(answer, list) and answer else answer
    result = _dict(found)
    if not result:
        return None
    duration = result.get("duration")
    details = []
    for item in _list(result.get("details"))[-MAX_ITEMS:]:
        detail = _dict(item)
        message = _text(detail.get("message"), MAX_DETAIL)
        if message is None:
            continue
        kind = detail.get("detailsType")
        details.append(
            {
                "type": DETAIL_TYPES.get(kind, "information") if isinstance(kind, int) else None,
                "message": message,
                "at": _text(detail.get("detailCreatedDate")),
            }
        )
    file_reference = _text(result.get("fileReferenceID"))
    available = result.get("scriptLogAvailable")
    return {
        "id": _text(result.get("id")),
        "status": _status(result.get("status")),
        "start_time": _text(result.get("startTime")),
        "stop_time": _text(result.get("stopTime")),
        "duration_ms": duration
        if isinstance(duration, int) and not isinstance(duration, bool)
        else None,
        "node": _text(result.get("executingNodeName")),
        "details": details,
        "file_reference_id": None if file_reference in (None, NO_ID) else file_reference,
        "script_log_available": available if isinstance(available, bool) else None,
    }


def reference(body: bytes) -> str | None:
    """The download reference QRS answers `…/scriptlog` and `…/scriptlogfile` with: a JSON
    string (wrapped as `{"value": …}` by some releases), or the bare text."""
    text = body.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    try:
        answer: object = json.loads(text)
    except ValueError:
        answer = text
    if isinstance(answer, dict):
        answer = answer.get("value")
    found = _text(answer, 200)
    return None if found in (None, NO_ID) else found


def _decoded(body: bytes) -> str:
    """UTF-8 (with or without a BOM), or UTF-16 (little-endian, as Windows writes it) when
    the bytes say so: a BOM, or a NUL in every other byte."""
    if body.startswith(b"\xff\xfe") or body[1::2].count(0) > len(body) // 4:
        even = body[len(body) % 2 :] if not body.startswith(b"\xff\xfe") else body
        return even.decode("utf-16-le", errors="replace").lstrip("\ufeff")
    return body.decode("utf-8", errors="replace").lstrip("\ufeff")


def log_tail(body: bytes, lines: int, max_bytes: int) -> tuple[list[str], bool]:
    """The last `lines` lines of a script log (UTF-8, perhaps with a BOM; anything undecodable
    replaced), within `max_bytes` of UTF-8 together; and whether lines were left out (a line
    longer than the budget keeps its end)."""
    if lines <= 0 or not body:
        return [], bool(body)
    text = _decoded(body)
    every = [line.rstrip("\r") for line in text.rstrip("\r\n").split("\n")]
    kept: list[str] = []
    used = 0
    cut = False
    for line in reversed(every[-lines:]):
        size = len(line.encode("utf-8")) + 1
        if used + size > max_bytes:
            room = max_bytes - used - 4  # the "…" and the newline
            if room > 16 and not kept:
                kept.append("…" + line.encode("utf-8")[-room:].decode("utf-8", "ignore"))
                cut = True
            break
        kept.append(line)
        used += size
    kept.reverse()
    return kept, cut or len(kept) < len(every)
