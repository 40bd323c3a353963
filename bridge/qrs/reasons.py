"""Why a task start did not happen. Pure (no httpx): the commands read it whether QRS is on or
off, to tell a refusal that never started the task from a failure that may have."""

from __future__ import annotations

from enum import Enum


class Reason(Enum):
    """Why a start did not happen: the value is the answer's `error`, the name (lower case)
    the counter in `bridge/stats`."""

    NOT_ALLOWED = "not allowed"
    RATE_LIMITED = "rate limited"
    NOT_FOUND = "not found"
    UNREACHABLE = "QRS unreachable"
    CERTIFICATE_REFUSED = "certificate refused"
    TLS_ERROR = "TLS error"
    SERVER_NOT_TRUSTED = "QRS certificate not trusted"
    ACCESS_DENIED = "access denied"
    TIMEOUT = "timeout"
    QRS_ERROR = "QRS error"
    NOT_THE_FAILED_TASK = "not the failed task"
    """Retry: QRS names the task with that id otherwise than the failure did (a forged or a
    stale failure): nothing is started."""

    @property
    def counter(self) -> str:
        return self.name.lower()


NOT_STARTED = frozenset(
    {
        Reason.NOT_ALLOWED,
        Reason.RATE_LIMITED,
        Reason.ACCESS_DENIED,
        Reason.CERTIFICATE_REFUSED,
        Reason.TLS_ERROR,
        Reason.SERVER_NOT_TRUSTED,
        Reason.NOT_THE_FAILED_TASK,
    }
)
"""Refusals that mean QRS never took the start: decided before the request was sent or before
QRS read it. Any other failure (a timeout, a connection closed before the answer, a QRS error)
may have started the task."""
