"""Butler SOS's QIX performance lines (`/qseow-qix-perf/;…`) → `QixPerfEvent`. Pure.

What Butler SOS's engine appender sends for each request the engine logs under
`QixPerformance.Engine.Engine` (its `LocalLogConfig.xml`, threshold INFO; the same order as its
handler reads)::

    /qseow-qix-perf/;row;ISO time;local time;level;host;logger;Windows user;ProxySessionId;
        ActiveUserDirectory;ActiveUserId;EngineTimestamp;SessionId;DocId;RequestId;Method;
        ProcessTime;WorkTime;LockTime;ValidateTime;TraverseTime;Handle;ObjectId;NetRAM;PeakRAM;
        ObjectType

No field is free text: with more fields than that, the extra `;` is in the object id (an
object's id is chosen by whoever created it), the only field that may hold one, so the last
three are read from the right. A number that is not one is published as null (Butler SOS: -1,
-99 or NaN). Fewer fields are refused (`too_few_fields`): which ones are missing cannot be told.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bridge.core.events import QixPerfEvent, Rejected, RejectReason
from bridge.inputs.fields import field, visible_controls
from bridge.inputs.log_events import complete_user, head_time, read_head

QIX_TAG = "qseow-qix-perf"
FIELDS = 25
"""After the tag."""
_HEAD = 7
_MAX_NUMBER_CHARS = 32


def parse_qix_fields(fields: Sequence[str]) -> QixPerfEvent | Rejected:
    """One QIX performance line, split on `;`, without its tag."""
    if len(fields) < FIELDS:
        return Rejected(
            reason=RejectReason.TOO_FEW_FIELDS,
            detail=f"/{QIX_TAG}/ needs {FIELDS + 1} fields, got {len(fields) + 1}",
        )
    head = read_head(QIX_TAG, fields)
    if isinstance(head, Rejected):
        return head
    level, host = head
    left = fields[: FIELDS - 3]
    object_id = ";".join(fields[FIELDS - 4 : len(fields) - 3])
    net_ram, peak_ram, object_type = fields[len(fields) - 3 :]
    values: dict[str, str | None] = {
        "user_directory": _text(left[8]),
        "user_id": _text(left[9]),
    }
    complete_user(values)
    proxy_session_id = _text(left[7])
    row = left[0].strip()
    return QixPerfEvent(
        server=host,
        level=level,
        log_row=int(row) if row.isascii() and row.isdigit() and len(row) <= 18 else None,
        log_timestamp=head_time(left[1]),
        subsystem=_text(left[5]),
        windows_user=_text(left[6]),
        proxy_session_id=proxy_session_id,
        user_directory=values["user_directory"],
        user_id=values["user_id"],
        user=values["user"],
        engine_timestamp=_text(left[10]),
        session_id=_text(left[11]),
        app_id=_text(left[12]),
        request_id=_integer(left[13]),
        method=_text(left[14]),
        process_time=_number(left[15]),
        work_time=_number(left[16]),
        lock_time=_number(left[17]),
        validate_time=_number(left[18]),
        traverse_time=_number(left[19]),
        handle=_integer(left[20]),
        object_id=_text(object_id),
        net_ram=_integer(net_ram),
        peak_ram=_integer(peak_ram),
        object_type=_text(object_type),
        activity="non-user" if proxy_session_id == "0" else "user",
    )


def _text(raw: str) -> str | None:
    return field(visible_controls(raw))


def _integer(raw: str) -> int | None:
    value = raw.strip()
    if len(value) > _MAX_NUMBER_CHARS:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _number(raw: str) -> float | None:
    """Milliseconds: a finite number, else None (`nan`, `inf` and text are no time)."""
    value = raw.strip()
    if len(value) > _MAX_NUMBER_CHARS:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
