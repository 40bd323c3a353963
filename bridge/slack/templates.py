"""A kind's own Slack layout: a user's Jinja2 template, compiled once and rendered per event.

Imported by the CLI to check templates while the config is validated, so it stays light:
jinja2 is imported only when a template is configured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.slack.messages import SECTION_TEXT_MAX, SlackMessage

if TYPE_CHECKING:
    from jinja2 import Template


def compile_template(path: Path) -> Template:
    """A user's Jinja2 template (sandboxed: it can read the event, not the bridge)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return SandboxedEnvironment(autoescape=False).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"{path} line {exc.lineno}: {exc.message}") from None


def templated(
    template: Template, variables: dict[str, Any], built_in: SlackMessage
) -> SlackMessage:
    """The user's layout: rendered text (mrkdwn) as one section, or JSON: a list of blocks, or
    an object with `blocks` and/or `text`. Plain `text` falls back to the built-in one."""
    rendered = template.render(**variables).strip()
    if rendered.startswith(("[", "{")):
        try:
            data = json.loads(rendered)
        except ValueError:
            data = None
        if isinstance(data, list):
            return SlackMessage(text=built_in.text, blocks=data)
        if isinstance(data, dict):
            return SlackMessage(
                text=str(data.get("text") or built_in.text), blocks=list(data.get("blocks", []))
            )
    return SlackMessage(
        text=built_in.text,
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": rendered[:SECTION_TEXT_MAX]}}
        ],
    )
