"""The CLI's side of commands: send one to a running bridge over MQTT (`qlik2mqtt acknowledge`,
`qlik2mqtt forget`, `qlik2mqtt start-task`).

Every command is a request (zigbee2mqtt's convention): published QoS 1 with a new
`transaction`, its answer on `<base>/bridge/response/<command>` carrying it back. The command
waits for that answer and reports it; no answer is an error (no bridge listens).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from bridge.commands.declare import Command
from bridge.config import Config
from bridge.core.stats import Stats
from bridge.core.topics import Topics
from bridge.mqtt import MqttLink
from bridge.mqtt.connection import broker_settings
from bridge.mqtt.outbox import OutMessage

CONNECT_TIMEOUT = 3.0
FIRST_ATTEMPT_POLL = 0.1
"""How often the wait for the connection looks whether the first attempt already failed."""
DELIVERY_TIMEOUT = 5.0
ANSWER_TIMEOUT = 10.0


class CommandError(Exception):
    """The command did not reach the broker, or the bridge did not answer."""


async def request(
    config: Config,
    command: Command,
    data: dict[str, Any],
    answer_timeout: float = ANSWER_TIMEOUT,
) -> Any:
    """Publish `data` with a new transaction id on the command's topic and return the bridge's
    answer on `bridge/response/<name>` (a dict with `status`, and `data` or `error`)."""
    transaction = uuid.uuid4().hex[:12]
    payload = json.dumps({**data, "transaction": transaction}).encode()
    base = config.mqtt.base_topic
    topic, response_topic = command.topic_for(config), Topics(base).response(command.name)
    return await _exchange(config, topic, payload, (response_topic, transaction), answer_timeout)


async def _exchange(
    config: Config,
    topic: str,
    payload: bytes,
    answer: tuple[str, str],
    answer_timeout: float = ANSWER_TIMEOUT,
) -> Any:
    settings = broker_settings(config, "cli")
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[Any] = loop.create_future()

    def on_message(received_topic: str, received: bytes, retained: bool) -> None:
        if received_topic != answer[0] or answered.done():
            return
        try:
            data = json.loads(received)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("transaction") == answer[1]:
            answered.set_result(data)

    link = MqttLink(settings, Stats(), on_message=on_message)
    link.subscribe(answer[0])
    link.start()
    why = await _connected(link)
    if why is not None:
        await link.close(0)
        raise CommandError(
            f"cannot connect to the MQTT broker at {settings.host}:{settings.port}: {why}"
        )
    link.enqueue(OutMessage(topic, payload, qos=1))
    try:
        result = await asyncio.wait_for(answered, answer_timeout)
    except TimeoutError:
        undelivered = await link.close(DELIVERY_TIMEOUT)
        why = (
            "the broker did not acknowledge the command"
            if undelivered
            else f"no answer from the bridge within {answer_timeout:.0f} s on {answer[0]} "
            "(is it running on this broker, with this command enabled?)"
        )
        raise CommandError(why) from None
    if await link.close(DELIVERY_TIMEOUT):
        raise CommandError("the broker did not acknowledge the command")
    return result


async def _connected(link: MqttLink) -> str | None:
    """None once the link is connected; else why not, as soon as its first attempt failed
    (a command does not retry for CONNECT_TIMEOUT what a wrong password refuses at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    while (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait_for(link.wait_connected(), min(FIRST_ATTEMPT_POLL, left))
        except TimeoutError:
            if link.last_error is not None:
                return link.last_error
            continue
        return None
    return link.last_error or f"no connection within {CONNECT_TIMEOUT:g} s"


def task_start_timeout(config: Config) -> float:
    """The bridge answers within `qrs.timeout`: wait that long, and the usual margin."""
    return config.qrs.timeout + ANSWER_TIMEOUT
