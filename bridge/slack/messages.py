"""The built-in Slack messages (Block Kit, with plain `text` for notifications) for events,
and the kinds of message the sink posts. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import quote

from bridge.core.events import (
    Event,
    LogEvent,
    LogLevel,
    TaskEvent,
    TaskEventType,
    UserEvent,
    UserEventType,
)
from bridge.core.log_payloads import redacted
from bridge.core.privacy import PLAIN, Privacy

Kind = Literal["task_events", "user_activity", "log_events"]
"""A kind of message: its own `slack.<kind>` settings (on/off, channel, webhook, template)."""
KINDS: tuple[Kind, ...] = get_args(Kind)

SECTION_TEXT_MAX = 3000
"""Slack refuses (`invalid_blocks`) a section whose text is longer, counted after escaping."""
FIELD_TEXT_MAX = 2000
"""The same for each of a section's fields."""
MAX_MESSAGE_CHARS = 2800
"""A log or task message's code block, escaped (within SECTION_TEXT_MAX with its fences)."""
MAX_FIELD_CHARS = 500
_TASK_TITLES = {
    TaskEventType.TASK_FAILED: ("Reload task failed", ":red_circle:"),
    TaskEventType.ENGINE_RELOAD_FAILED: ("Reload failed in the engine", ":red_circle:"),
    TaskEventType.TASK_ABORTED: ("Reload task aborted", ":large_orange_circle:"),
    TaskEventType.TASK_SUCCEEDED: ("Reload task succeeded", ":large_green_circle:"),
    TaskEventType.DISTRIBUTE_FINISHED: ("Distribution task finished", ":information_source:"),
}
_FOLDED_NOUNS = {
    TaskEventType.TASK_FAILED: "failures",
    TaskEventType.ENGINE_RELOAD_FAILED: "failures",
    TaskEventType.TASK_ABORTED: "aborts",
    TaskEventType.TASK_SUCCEEDED: "successes",
    TaskEventType.DISTRIBUTE_FINISHED: "distributions",
}
"""What a folded message counts, by the event it folds (an abort is no failure)."""
_USER_VERBS = {
    UserEventType.SESSION_START: ("started a session", ":arrow_right:"),
    UserEventType.SESSION_STOP: ("ended a session", ":arrow_left:"),
    UserEventType.CONNECTION_OPEN: ("opened a connection", ":link:"),
    UserEventType.CONNECTION_CLOSE: ("closed a connection", ":heavy_minus_sign:"),
}


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]
    route: int | None = None
    """An index into `slack.task_events.routes`: posted there instead of the kind's own."""


def kind_of(event: Event) -> Kind:
    if isinstance(event, LogEvent):
        return "log_events"
    return "user_activity" if isinstance(event, UserEvent) else "task_events"


def escape(text: str) -> str:
    """Text from an event made inert for Slack's mrkdwn: &, < and > escaped, so no `<url|label>`
    link, `<!channel>`, `<@user>` or `<#channel>` can be written by whoever sent the datagram."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escaped_values(value: Any) -> Any:
    """`value` (an event payload: dicts, lists, strings, numbers) with every string `escape`d:
    what a template sees, so `{{ event.task_name }}` is inert wherever it is written."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {key: escaped_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escaped_values(item) for item in value]
    return value


def _units(text: str) -> int:
    """Length in UTF-16 code units: the stricter count, should Slack count that way."""
    return len(text.encode("utf-16-le")) // 2


def _escaped(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn and then cut to `limit` (with "…"), never inside an entity
    (`&lt;` is four characters for one: cutting first and escaping after overflows)."""
    escaped = escape(text)
    if _units(escaped) <= limit:
        return escaped
    budget = limit - 1
    cut = escaped[:budget]
    while (units := _units(cut)) > budget:
        cut = cut[: len(cut) - (units - budget)]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


def task_message(
    event: TaskEvent,
    received_at_iso: str | None,
    folded: int = 0,
    qlik_base_url: str | None = None,
    privacy: Privacy = PLAIN,
    context: dict[str, Any] | None = None,
) -> SlackMessage:
    """`context`: the failure's context from QRS, summarised (bridge.core.task_context), or
    `{"status": "unavailable", "reason": …}`; None: not asked for."""
    title, icon = _TASK_TITLES[event.event_type]
    task = event.task_name or event.app_id or "unknown task"
    text = f"{title}: {task}" + (f" (app {event.app_name})" if event.app_name else "")
    text += f" on {event.server}"
    if folded:
        text += f" — {folded} {_FOLDED_NOUNS[event.event_type]} of this task since the last message"
    user = privacy.account(event.user)
    fields = [
        ("Task", event.task_name),
        ("App", event.app_name),
        ("Server", event.server),
        ("User", user),
        ("Time", event.log_timestamp or received_at_iso),
        ("Execution id", event.execution_id),
    ]
    known = context or {}
    if known.get("app_owner"):
        text += f" — owner {known['app_owner']}"
    fields[4:4] = [  # the context's, before the time: Slack shows 10 fields at most
        ("Owner", known.get("app_owner")),
        ("Stream", known.get("stream")),
        ("Tags", known.get("task_tags")),
        ("Custom properties", known.get("custom_properties")),
    ]
    blocks = _card(title, f"{icon} *{_escaped(task, MAX_FIELD_CHARS)}*", fields)
    message = privacy.redact(event.message, privacy.user_part(event.user))
    if message:
        blocks.append(_code(message, MAX_MESSAGE_CHARS))
    if known.get("log_tail"):
        blocks.append(_code(known["log_tail"], MAX_MESSAGE_CHARS))
    links = _links(event, qlik_base_url)
    notes = [f"{folded} times since the last message"] if folded else []
    note = _context_note(context)
    if note:
        notes.append(note)
    if links:
        notes.append(" · ".join(links))
    if notes:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": part} for part in notes]}
        )
    return SlackMessage(text=escape(text), blocks=blocks)


def _context_note(context: dict[str, Any] | None) -> str | None:
    """Why the card lacks what QRS would have said (escaped), or what the log tail is."""
    if context is None:
        return None
    status = context.get("status")
    reason = context.get("reason")
    if status == "unavailable":
        return _escaped(f"QRS context unavailable: {reason or 'unknown'}", FIELD_TEXT_MAX)
    if status == "waiting":
        return _escaped(f"QRS context not here within {reason}", FIELD_TEXT_MAX)
    if status == "partial":
        return _escaped(f"QRS context partial: {reason}", FIELD_TEXT_MAX)
    if status == "folded":
        return "Script log: see the task's earlier failure (fetched once a minute at most)"
    if context.get("log_tail"):
        return "Script log: the last lines"
    return None


def _card(header: str, heading: str, fields: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """A header and a section: `heading` (mrkdwn, escaped) over the fields that have a value
    (Slack takes at most 10 fields in a section)."""
    return [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": heading},
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_escaped(value, MAX_FIELD_CHARS)}"}
                for name, value in fields
                if value
            ][:10],
        },
    ]


def _code(text: str, limit: int) -> dict[str, Any]:
    """A section showing `text` as a code block, escaped and cut to `limit`."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"```{_escaped(text, limit)}```"}}


def _links(event: TaskEvent, base: str | None) -> list[str]:
    if not base:
        return []
    base = base.rstrip("/")
    links = []
    if event.app_id:  # percent-encoded: an id holding `|` or `>` cannot end the link
        links.append(f"<{base}/sense/app/{quote(event.app_id, safe='')}|Open the app>")
    if event.task_id:
        links.append(f"<{base}/qmc/tasks|Tasks in the QMC>")
    return links


def user_message(event: UserEvent, privacy: Privacy = PLAIN) -> SlackMessage:
    verb, icon = _USER_VERBS[event.event_type]
    user_id = privacy.user_id(event.user_id) or "a user"
    who = f"{event.user_directory}\\{user_id}" if event.user_directory else user_id
    text = f"{who} {verb} on {event.server}"
    if event.context:
        text += f" ({event.context})"
    shown = f"{icon} {_escaped(text, FIELD_TEXT_MAX)}"
    return SlackMessage(
        text=escape(text),
        blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": shown}]}],
    )


_LOG_TITLES = {
    LogLevel.DEBUG: ("Debug message", ":mag:"),
    LogLevel.INFO: ("Information", ":information_source:"),
    LogLevel.WARN: ("Warning", ":warning:"),
    LogLevel.ERROR: ("Error", ":red_circle:"),
    LogLevel.FATAL: ("Fatal error", ":rotating_light:"),
}
MAX_EXCEPTION_CHARS = 1000


_LEVEL_NOUNS = {
    LogLevel.DEBUG: ("debug message", "debug messages"),
    LogLevel.INFO: ("information message", "information messages"),
    LogLevel.WARN: ("warning", "warnings"),
    LogLevel.ERROR: ("error", "errors"),
    LogLevel.FATAL: ("fatal error", "fatal errors"),
}


def _times(count: int) -> str:
    return f"{count} more time" + ("s" if count != 1 else "")


def _more(count: int, level: LogLevel, category: str, distinct: int) -> str:
    """`3 more `connectivity` errors since the last message (2 distinct messages)`."""
    noun = _LEVEL_NOUNS[level][count != 1]
    text = f"{count} more `{category}` {noun} since the last message"
    if distinct > 1:
        text += f" ({distinct} distinct messages)"
    return text


def _clipped(text: str, limit: int) -> str:
    return text[:limit] + ("…" if len(text) > limit else "")


def log_message(
    event: LogEvent,
    received_at_iso: str | None,
    folded: int = 0,
    overflow: bool = False,
    privacy: Privacy = PLAIN,
    distinct: int | None = None,
) -> SlackMessage:
    """A warning or an error a Qlik Sense service logged. `folded`: the same error again
    since the last message; with `overflow`, that many log events of several kinds (this one
    the last) that were not posted one by one. `distinct`: they were folded by the event's
    category, and that many of them had different messages."""
    title, icon = _LOG_TITLES[event.level]
    service = event.source.value
    message = redacted(event.message, event, privacy) or "(no message)"
    if overflow:
        text = (
            f"{folded} more Qlik Sense log events on {event.server} were not posted one by one; "
            f"the last: {title.lower()} in the {service}: {_clipped(message, 150)}"
        )
    elif folded and distinct is not None and event.category is not None:
        more = _more(folded, event.level, event.category, distinct)
        text = (
            f"{title} in the Qlik Sense {service} on {event.server}: {more}; "
            f"the last: {_clipped(message, 150)}"
        )
    else:
        text = f"{title} in the Qlik Sense {service} on {event.server}: {_clipped(message, 150)}"
        if folded:
            text += f" — {_times(folded)} since the last message"
    user = privacy.user_id(event.user_id)
    who = f"{event.user_directory}\\{user}" if event.user_directory and user else user
    fields = [
        ("Server", event.server),
        ("Service", service),
        ("Level", event.level.value),
        ("Category", event.category),
        ("Subsystem", event.subsystem),
        ("Time", event.log_timestamp or received_at_iso),
        ("User", who),
        ("Task", event.task_name),
        ("App", event.app_name or event.app_id),
    ]
    header = f"{title} in the Qlik Sense {service}" if not overflow else "Qlik Sense log events"
    blocks = _card(header, f"{icon} *{_escaped(event.server, 150)}*", fields)
    blocks.append(_code(message, MAX_MESSAGE_CHARS))
    exception = redacted(event.exception_message, event, privacy)
    if exception:
        blocks.append(_code(exception, MAX_EXCEPTION_CHARS))
    if folded:
        if overflow:
            note = (
                f"{folded} log events of several kinds since the last messages (this is the last)"
            )
        elif distinct is not None and event.category is not None:
            note = f"{_more(folded, event.level, event.category, distinct)}; this is the last"
        else:
            note = f"{_times(folded)} since the last message"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return SlackMessage(text=escape(text), blocks=blocks)
