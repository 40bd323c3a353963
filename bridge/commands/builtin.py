"""The commands the bridge takes today: acknowledge the failure flag, forget a server.

To add one (`task/start`, say): declare a `Command` here (its topic, the config that enables
it, its button if Home Assistant should show one, its handler) and add it to `COMMANDS`.
"""

from __future__ import annotations

import json

from bridge.commands.declare import Answer, Button, Command, Request
from bridge.config import Config
from discovery import CommandButton


def _acknowledge(request: Request) -> Answer:
    request.core.acknowledge("mqtt")
    return None


ACKNOWLEDGE = Command(
    name="acknowledge",
    topic="bridge/acknowledge",
    enabled=lambda config: config.commands.acknowledge,
    handle=_acknowledge,
    button=Button(
        key="acknowledge",
        entity_slug="qlik_sense_acknowledge_failure",
        name="Acknowledge failure",
        payload_press="acknowledge",
        icon="mdi:check-circle-outline",
    ),
)


def forget_request(payload: bytes) -> tuple[str, object]:
    """`forget`'s payload: a host name or slug as plain text (Butler-style), or JSON
    `{"server": "…", "transaction": …}`. Returns (server, transaction)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return "", None
        if isinstance(data, dict):
            server = data.get("server")
            return (server.strip() if isinstance(server, str) else ""), data.get("transaction")
    return text, None


def forget_response(server: str, forgotten: str | None, transaction: object) -> dict[str, object]:
    """The answer on `bridge/response/forget`: ok with the server's slug, or the reason."""
    answer: dict[str, object]
    if forgotten:
        answer = {"status": "ok", "data": {"server": forgotten}}
    elif not server:
        answer = {"status": "error", "error": 'no server named: send a host name or {"server": …}'}
    else:
        answer = {"status": "error", "error": f"no such server: {server}"}
    if transaction is not None:
        answer["transaction"] = transaction
    return answer


def _forget(request: Request) -> Answer:
    server, transaction = forget_request(request.payload)
    forgotten = request.core.forget(server, "mqtt") if server else None
    return forget_response(server, forgotten, transaction)


FORGET = Command(
    name="forget",
    topic="bridge/forget",
    enabled=lambda config: config.commands.forget,
    handle=_forget,
)

COMMANDS: tuple[Command, ...] = (ACKNOWLEDGE, FORGET)
"""Every command, in the order they are subscribed to and their buttons are announced."""


def command_buttons(config: Config) -> tuple[CommandButton, ...]:
    """The Home Assistant buttons of the commands that have one (off: to be removed)."""
    base = config.mqtt.base_topic
    return tuple(
        CommandButton(
            key=command.button.key,
            entity_slug=command.button.entity_slug,
            name=command.button.name,
            command_topic=command.topic_under(base),
            payload_press=command.button.payload_press,
            icon=command.button.icon,
            enabled=command.enabled(config),
        )
        for command in COMMANDS
        if command.button is not None
    )
