"""A failure's context (issue 26) as the outputs show it. Pure: what a context is asked for
(`Failure`, from a task event), the payload of `<base>/<server>/event/task_context`, and the
short `summary` kept with the last failed task (retained state, Home Assistant attributes,
Slack), every text clipped so it stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.events import Event, TaskEvent, TaskEventType
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.reloads import canonical_id

WANTED = frozenset(
    {TaskEventType.TASK_FAILED, TaskEventType.ENGINE_RELOAD_FAILED, TaskEventType.TASK_ABORTED}
)
"""The task events a context is fetched for."""
LOG_TAIL_CHARS = 800
"""The log tail kept in the summary (the last characters of the last lines)."""
TEXT_CHARS = 200
"""Any other text of the summary."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a context is fetched for: a task event's ids."""

    server: str
    event_type: str
    task_id: str | None
    app_id: str | None = None
    execution_id: str | None = None
    task_name: str | None = None
    log_timestamp: str | None = None

    @property
    def key(self) -> str:
        """One context per execution (without an execution id: per task and log time)."""
        if self.execution_id:
            return self.execution_id.lower()
        task = canonical_id(self.task_id) if self.task_id else (self.task_name or "").lower()
        return f"{task}|{self.log_timestamp}"


def awaits_its_task(event: TaskEvent) -> bool:
    """An engine's reload failure that no task is known for yet: QRS cannot be asked about
    it, and the scheduler logs the same failure with its task (the shipped appenders send
    both), so a filter that needs a context leaves the decision to that line."""
    return event.event_type is TaskEventType.ENGINE_RELOAD_FAILED and not event.task_id


def failure_of(event: Event) -> Failure | None:
    """The failure a context is fetched for; None for any other event."""
    if not isinstance(event, TaskEvent) or event.event_type not in WANTED:
        return None
    return Failure(
        server=event.server,
        event_type=event.event_type.value,
        task_id=event.task_id,
        app_id=event.app_id,
        execution_id=event.execution_id,
        task_name=event.task_name,
        log_timestamp=event.log_timestamp,
    )


def unavailable(failure: Failure, reason: str) -> dict[str, Any]:
    """A context without QRS's answer: the ids, and why."""
    return {**failure_ids(failure), "status": "unavailable", "reason": reason}


def failure_ids(failure: Failure) -> dict[str, Any]:
    return {
        "server": failure.server,
        "event_type": failure.event_type,
        "task_id": failure.task_id,
        "execution_id": failure.execution_id,
    }


def private(
    context: dict[str, Any], privacy: Privacy = PLAIN, *user_ids: str | None
) -> dict[str, Any]:
    """The context with the app owner treated as `privacy.user_ids` says (the name and id
    both name the person: hashed or omitted, the name goes), and the owner and `user_ids`
    (the event's user) treated wherever the script log and QRS's messages name them."""
    if privacy.plain:
        return context
    treated_context = dict(context)
    app = context.get("app")
    owner = app.get("owner") if isinstance(app, dict) else None
    named = list(user_ids)
    if isinstance(app, dict) and isinstance(owner, dict):
        named.append(owner.get("user_id"))
        treated = {**owner, "name": None, "user_id": privacy.user_id(owner.get("user_id") or "")}
        treated_context["app"] = {**app, "owner": treated}
    log = context.get("script_log")
    if isinstance(log, dict) and log.get("lines"):
        lines = [privacy.redact(line, *named) or "" for line in log["lines"]]
        treated_context["script_log"] = {**log, "lines": lines}
    execution = context.get("execution")
    if isinstance(execution, dict) and execution.get("details"):
        details = [
            {**detail, "message": privacy.redact(detail.get("message"), *named)}
            for detail in execution["details"]
        ]
        treated_context["execution"] = {**execution, "details": details}
    return treated_context


def _clip(text: str | None, limit: int = TEXT_CHARS) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def owner_text(owner: dict[str, Any] | None) -> str | None:
    """`Anna Berg (CORP\\anna)`, or what of it is known."""
    if not owner:
        return None
    parts = (owner.get("user_directory"), owner.get("user_id"))
    account = "\\".join(part for part in parts if part)
    name = owner.get("name")
    if name and account:
        return f"{name} ({account})"
    return name or account or None


def properties_text(properties: dict[str, list[str]]) -> str | None:
    """`AlertTeam=Finance,Controlling; Region=EU`."""
    return "; ".join(f"{name}={','.join(values)}" for name, values in properties.items()) or None


def log_tail_text(context: dict[str, Any], limit: int = LOG_TAIL_CHARS) -> str | None:
    """The script log's last lines as one text, its end kept within `limit` characters."""
    log = context.get("script_log")
    lines = log.get("lines") if isinstance(log, dict) else None
    if not lines:
        return None
    text = "\n".join(lines)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def summary(context: dict[str, Any]) -> dict[str, Any]:
    """What the last failed task keeps of its context: short texts (Home Assistant shows them
    as attributes), lists joined, the log tail's end."""
    task = context.get("task") or {}
    app = context.get("app") or {}
    execution = context.get("execution") or {}
    properties = {**(app.get("custom_properties") or {}), **(task.get("custom_properties") or {})}
    duration = execution.get("duration_ms")
    return {
        "status": context.get("status"),
        "reason": _clip(context.get("reason")),
        "execution_id": context.get("execution_id"),
        "app_name": _clip(app.get("name")),
        "app_owner": _clip(owner_text(app.get("owner"))),
        "stream": _clip(app.get("stream")),
        "published": app.get("published"),
        "task_tags": _clip(", ".join(task.get("tags") or [])),
        "app_tags": _clip(", ".join(app.get("tags") or [])),
        "custom_properties": _clip(properties_text(properties)),
        "execution_status": execution.get("status"),
        "executing_node": _clip(execution.get("node")),
        "duration_s": round(duration / 1000, 1) if isinstance(duration, int) else None,
        "log_tail": log_tail_text(context),
    }
