"""What a command is: its topic, the config that enables it, its button, its handler.

A handler gets the request (payload, the core, the config) and returns the answer published on
`<base>/bridge/response/<name>` (zigbee2mqtt's convention), or None when the command does not
answer. It may return an awaitable instead, for work that takes time (a call to Qlik Sense):
the answer is then published when it is ready, and the event loop never waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bridge.config import Config
from bridge.core.state import BridgeState
from bridge.qrs.allow import TaskKey
from bridge.qrs.reasons import Reason
from bridge.runtime.logs import RateLimiter

REFUSAL_LOG_INTERVAL = 60.0
"""Seconds between two log lines of one kind of refusal."""

Answer = dict[str, object] | None
"""The payload for `bridge/response/<name>`, or None: no answer."""
Answers = Answer | list[dict[str, object]]
"""One answer, or several published in order (Butler's `start_task` names several tasks)."""


class Core(Protocol):
    """What a command may ask of the bridge's core (`bridge.core.path.Bridge` is one)."""

    def acknowledge(self, source: str) -> None: ...

    def forget(self, server: str, source: str) -> str | None: ...

    def retry_started(self, task_id: str) -> float | None:
        """The retry button is starting this failed task: not offered again until its
        outcome. Returns the mark (None: no such candidate), for `retry_unstarted`."""
        ...

    def retry_gone(self, task_id: str) -> None:
        """QRS knows no such task: drop it from the retry button's candidates."""
        ...

    def retry_unstarted(self, task_id: str, started_at: float) -> None:
        """QRS refused the start marked `started_at`: the task may be offered again (a later
        mark, from another press, stays)."""
        ...


class Tasks(Protocol):
    """What a command may ask of Qlik Sense (`bridge.qrs.starter.TaskStarter` is one)."""

    def allowed(self, key: TaskKey, value: str) -> bool:
        """Whether `qrs.allowed_tasks` lets this task be started."""
        ...

    async def start(self, key: TaskKey, value: str) -> Reason | None:
        """None when QRS took the start, else why not."""
        ...

    async def confirm(self, task_id: str, name: str | None) -> Reason | None:
        """None when QRS knows a reload task with this id (and this name, when given)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Request:
    payload: bytes
    core: Core
    config: Config
    tasks: Tasks | None = None
    """Set when `qrs.enabled`."""
    state: BridgeState | None = None
    """The live state, to read (the retry button's failed tasks); changes go through `core`."""
    refusals: RateLimiter = field(
        default_factory=lambda: RateLimiter(REFUSAL_LOG_INTERVAL, time.monotonic)
    )
    """The rate limit of refusal log lines: one per `Commands` (a looping automation or a
    flood of bad payloads logs one line a minute per kind)."""


Handler = Callable[[Request], Answers | Awaitable[Answers]]


@dataclass(frozen=True, slots=True)
class Button:
    """A Home Assistant button on the bridge device that publishes the command."""

    key: str
    """Its unique id (after the node id) and its discovery topic's object id."""
    entity_slug: str
    """Its suggested entity id: `button.<entity_slug>`."""
    name: str
    payload_press: str
    icon: str
    available_when: tuple[str, str] | None = None
    """(a topic under the base topic, a template of its JSON giving `online` or `offline`):
    the button is available only when that says `online` (and the bridge is), and shows that
    JSON as its attributes. None: available with the bridge."""
    topic: str | None = None
    """The topic it presses (under the command's root), when not the command's own: one of
    its aliases."""


def base_topic(config: Config) -> str:
    """The usual root of a command's topic: `mqtt.base_topic`."""
    return config.mqtt.base_topic


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    """Names the answer's topic (`<base>/bridge/response/<name>`) and the command in logs."""
    topic: str
    """Under `root`: `bridge/acknowledge` is `<base>/bridge/acknowledge`."""
    enabled: Callable[[Config], bool]
    """Whether the config turns it on (`commands.*`); a command that is off is not
    subscribed to, and its button is removed from Home Assistant."""
    handle: Handler
    button: Button | None = None
    root: Callable[[Config], str] = base_topic
    """The topic `topic` is under: the base topic, or another one the config names (Butler's
    `butler_compat.base_topic`). Answers always go under the base topic."""
    aliases: tuple[str, ...] = ()
    """Older topics (under `root`) that run the command too, answered the same way."""

    def topic_for(self, config: Config) -> str:
        return f"{self.root(config)}/{self.topic}"

    def topics_for(self, config: Config) -> tuple[str, ...]:
        """Its topic, then its aliases."""
        root = self.root(config)
        return tuple(f"{root}/{topic}" for topic in (self.topic, *self.aliases))
