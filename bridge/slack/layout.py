"""The Slack message for an event as configured: the built-in layout, or the kind's template.

One place for what the sink posts and what `qlik2mqtt test-slack` posts, so the test message
looks like the real ones (templates, links and privacy included).
"""

from __future__ import annotations

from typing import Any

import structlog

from bridge.config import SlackConfig
from bridge.core.events import Event, LogEvent, UserEvent
from bridge.core.payloads import event_payload
from bridge.core.privacy import Privacy
from bridge.core.times import iso_time
from bridge.slack.messages import (
    KINDS,
    Kind,
    SlackMessage,
    escaped_values,
    kind_of,
    log_message,
    task_message,
    user_message,
)
from bridge.slack.templates import compile_template, templated

log = structlog.get_logger("qlik2mqtt.slack")


class SlackLayout:
    def __init__(self, config: SlackConfig, qlik_base_url: str | None, privacy: Privacy) -> None:
        self._qlik_base_url = qlik_base_url
        self._privacy = privacy
        self._templates: dict[Kind, Any] = {}
        for kind in KINDS:
            path = getattr(config, kind).template
            if path is not None:
                self._templates[kind] = compile_template(path)

    def message(
        self,
        event: Event,
        received_at: float,
        folded: int = 0,
        overflow: bool = False,
        distinct: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> SlackMessage:
        """`folded`: events folded into this message; `overflow`: they were of several kinds
        (log events past the distinct messages Slack gets per interval); `distinct`: log events
        folded by their category, and how many different messages they had."""
        if isinstance(event, UserEvent):
            built_in = user_message(event, self._privacy)
        elif isinstance(event, LogEvent):
            built_in = log_message(
                event, iso_time(received_at), folded, overflow, self._privacy, distinct
            )
        else:
            built_in = task_message(
                event, iso_time(received_at), folded, self._qlik_base_url, self._privacy, context
            )
        kind = kind_of(event)
        template = self._templates.get(kind)
        if template is None:
            return built_in
        variables = {  # the event's text escaped for mrkdwn: a template cannot forget to
            "event": escaped_values(event_payload(event, received_at, self._privacy)),
            "folded": folded,
            "overflow": overflow,
            "distinct": distinct,
            "text": built_in.text,
            "qlik_base_url": self._qlik_base_url,
            "context": escaped_values(context),  # from QRS (issue 26), summarised; or None
        }
        try:
            return templated(template, variables, built_in)
        except Exception as exc:  # a broken template must not lose the message
            log.warning("Slack template failed; built-in layout used", kind=kind, error=str(exc))
            return built_in
