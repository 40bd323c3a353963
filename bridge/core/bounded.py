"""Retained state bounded in bytes whatever the datagrams hold (issue 25: no retained payload
over 16 KiB but `<server>/users`).

A datagram's message may be 8,192 characters and each other field 1,024 (`bridge.inputs.fields`):
copied whole into `<server>` and `site` (the last failed task, the last log error), one long
stack trace made them 34 KB, which every subscriber and Home Assistant entity re-read and the
byte budget held back for seconds. The retained copies keep each text's start within
`TEXT_BYTES` (a message or a log tail: `MESSAGE_BYTES`) of JSON; the event topics keep it whole.
"""

from __future__ import annotations

from typing import Any

import orjson

STATE_PAYLOAD_BYTES = 16_384
"""The most a retained state payload takes (`<server>/users` and Butler's topics excepted)."""
TEXT_BYTES = 256
"""The most JSON bytes (quotes left out) of a name, an id or another short text kept in state."""
MESSAGE_BYTES = 1024
"""The most JSON bytes of a message or a log tail kept in state (Home Assistant shows at most
800 or 1,000 characters of them)."""
LONG_TEXTS = frozenset({"message", "log_tail"})
"""The keys whose texts get `MESSAGE_BYTES`."""
ENDS = frozenset({"log_tail"})
"""The keys whose texts keep their end (a log's last lines), not their start."""
ELLIPSIS = "…"
_MOST_BYTES_PER_CHARACTER = 6
"""JSON's longest form of one character: a control character as \\u00XX."""


def json_text_bytes(text: str) -> int:
    """The bytes `text` takes as a JSON string, its quotes left out."""
    return len(orjson.dumps(text)) - 2


def clip_text(text: str, limit: int, keep_end: bool = False) -> str:
    """`text` when its JSON takes at most `limit` bytes, else its longest start that fits
    with `…` after it (`keep_end`: its longest end, `…` before it); never a character cut in
    two."""
    if len(text) * _MOST_BYTES_PER_CHARACTER <= limit or json_text_bytes(text) <= limit:
        return text
    room = limit - json_text_bytes(ELLIPSIS)

    def part(length: int) -> str:
        return text[len(text) - length :] if keep_end else text[:length]

    low, high = 0, min(len(text), room)  # each character takes a byte at least
    while low < high:  # the longest part within `room`
        middle = (low + high + 1) // 2
        if json_text_bytes(part(middle)) <= room:
            low = middle
        else:
            high = middle - 1
    return ELLIPSIS + part(low) if keep_end else part(low) + ELLIPSIS


def bounded(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with each text clipped (`clip_text`): `MESSAGE_BYTES` under `LONG_TEXTS`' keys,
    `TEXT_BYTES` elsewhere, the end kept under `ENDS`' keys, in nested records too. Other
    values are kept as they are."""
    kept: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, str):
            limit = MESSAGE_BYTES if key in LONG_TEXTS else TEXT_BYTES
            kept[key] = clip_text(value, limit, keep_end=key in ENDS)
        elif isinstance(value, dict):
            kept[key] = bounded(value)
        else:
            kept[key] = value
    return kept
