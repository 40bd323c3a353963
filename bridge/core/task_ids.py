"""What a Qlik Sense task id looks like (a GUID, in any of its written forms) and the one form
ids are compared in. Pure."""

from __future__ import annotations

import uuid


def is_task_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def id_key(value: str) -> str:
    """A task id as compared: any case, with or without braces or dashes."""
    return str(uuid.UUID(value))
