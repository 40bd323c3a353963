"""What every text format shares: log4net's `(null)`, the size limits of a field and of a
message, how a value is cleaned (stripped, `(null)` and empty as None, clipped), and the one
text policy for control characters: shown as U+FFFD in free text (`free_text`), refused in a
name (`name_field`), whatever the format (`;` lines, log4j XML, base64-decoded XML values)."""

from __future__ import annotations

import re
from collections.abc import Sequence

NULL = "(null)"
MAX_FIELD_CHARS = 1024
MAX_MESSAGE_CHARS = 8192
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls and DEL, but tab, line feed and carriage return: no text format sends them."""
TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""What free text (a message, an exception text) shows as U+FFFD: `CONTROL_CHARS` and the C1
controls (U+0080 to U+009F; U+009B is a terminal's CSI, as ESC [ is). Tab and line breaks stay:
a stack trace has them."""
NAME_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""What a name (a host, a user, a task or app name, an id, a level, a logger) cannot hold: every
C0 control, tab and line breaks too, DEL and C1. A name becomes a topic level, a Home Assistant
device name, a Slack line and a console field; shown as U+FFFD it would be another name, so the
event is refused (`not_text`), as a `;` line with a control character outside its message is."""


class ControlCharacterError(ValueError):
    """A name holds a control character (`NAME_CONTROLS`); the text says which name."""


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


def name_field(value: str | None, what: str) -> str | None:
    """`field(value)`; ControlCharacterError naming `what` when it holds a control character."""
    cleaned = field(value)
    if cleaned is not None and NAME_CONTROLS.search(cleaned):
        raise ControlCharacterError(f"a control character in {what}")
    return cleaned


def free_text(value: str | None) -> str | None:
    """A message or an exception text: as `message_text`, each control character
    (`TEXT_CONTROLS`) shown as U+FFFD."""
    return None if value is None else message_text([visible_controls(value)])


def message_text(parts: Sequence[str]) -> str | None:
    """The message from the parts a `;` split it into; None when there is none; clipped."""
    text = ";".join(parts).strip()
    if not text or text == NULL:
        return None
    return clip(text, MAX_MESSAGE_CHARS)


def visible_controls(text: str) -> str:
    """`text` with each control character (`TEXT_CONTROLS`) as U+FFFD, the replacement
    character: a terminal escape in a message is shown, never acted on."""
    return TEXT_CONTROLS.sub("\ufffd", text)


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
