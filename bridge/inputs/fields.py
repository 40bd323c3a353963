"""What every text format shares: log4net's `(null)`, the size limits of a field and of a
message, and how a value is cleaned (stripped, `(null)` and empty as None, clipped)."""

from __future__ import annotations

import re
from collections.abc import Sequence

NULL = "(null)"
MAX_FIELD_CHARS = 1024
MAX_MESSAGE_CHARS = 8192
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls and DEL, but tab, line feed and carriage return: no text format sends them."""


def is_null(value: str) -> bool:
    """Empty, or log4net's `(null)`."""
    value = value.strip()
    return not value or value == NULL


def field(value: str | None) -> str | None:
    """A field's value, or None for log4net's `(null)` and empty fields; clipped."""
    if value is None:
        return None
    value = value.strip()
    if not value or value == NULL:
        return None
    return clip(value, MAX_FIELD_CHARS)


def message_text(parts: Sequence[str]) -> str | None:
    """The message from the parts a `;` split it into; None when there is none; clipped."""
    text = ";".join(parts).strip()
    if not text or text == NULL:
        return None
    return clip(text, MAX_MESSAGE_CHARS)


def visible_controls(text: str) -> str:
    """`text` with each control character (`CONTROL_CHARS`) as U+FFFD, the replacement
    character: a terminal escape in a message is shown, never acted on."""
    return CONTROL_CHARS.sub("\ufffd", text)


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
