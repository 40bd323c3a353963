"""Extensions: everything beside the core path, each fed by the same event stream.

As in zigbee2mqtt, an extension's constructor only stores its collaborators; `start`, `stop`
and the `on_*` hooks are its whole life cycle. The core does not know what an extension does.
An extension reaches the broker only through `Context.link`, a `Link` (bridge.extensions.link).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from bridge.config import Config
from bridge.core.events import Event, QixPerfEvent
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState, Change, ServerState
from bridge.core.stats import Stats
from bridge.core.task_context import Failure
from bridge.core.topics import Topics
from bridge.extensions.link import Link
from bridge.runtime.guard import Guard


@dataclass(frozen=True, slots=True)
class Context:
    config: Config
    topics: Topics
    link: Link
    state: BridgeState
    stats: Stats
    clock: Callable[[], float]
    started_at: float
    embedded_broker: bool = False
    privacy: Privacy = PLAIN
    guard: Guard | None = None
    """The core's guard (one rate limiter for every hook); None: the extension makes one."""
    task_contexts: TaskContextSource | None = None
    """Failures' contexts from QRS (`tasks.context`, issue 26); None when off."""
    changed: Callable[[Change], None] | None = None
    """Tells the extensions of a change an extension made to what state topics show."""


class TaskContextSource(Protocol):
    """Failures' contexts (`bridge.qrs.context.TaskContexts` is one): never waits, never
    raises; one future per execution."""

    def context_for(self, failure: Failure) -> asyncio.Future[dict[str, Any]]: ...

    def known(self, failure: Failure) -> dict[str, Any] | None: ...

    async def aclose(self) -> None: ...


class Extension:
    def __init__(self, context: Context) -> None:
        self.context = context
        self._guard = context.guard or Guard(context.stats)

    def guarded(self, hook: str, call: Callable[..., object]) -> Callable[..., None]:
        """`call` behind the guard, for the timers and tasks an extension starts itself: an
        exception is logged (rate-limited), counted in `extension_errors` as `name.hook`."""

        def run(*args: object) -> None:
            self._guard.call(self.name, hook, partial(call, *args))

        return run

    def failed(self, hook: str) -> None:
        """From an `except Exception:` block in the extension's own task: log and count."""
        self._guard.failed(self.name, hook)

    @property
    def name(self) -> str:
        """For the log and `extension_errors`: the class name in snake case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def start(self) -> None:
        """Called once the event loop runs, before the first datagram."""

    async def stop(self) -> None:
        """Called at shutdown, before the MQTT connection closes: flush what is pending."""

    def on_connect(self) -> None:
        """Called on every MQTT (re)connect: publish retained messages again."""

    def on_event(self, event: Event, received_at: float) -> None:
        """Called for each new event (duplicates already folded)."""

    def on_change(self, change: Change) -> None:
        """Called after each state change."""

    def on_qix_performance(self, event: QixPerfEvent, received_at: float) -> None:
        """Called for each QIX performance line (`/qseow-qix-perf/`): no state, no event."""

    def on_forget(self, slug: str) -> None:
        """Called when a server was forgotten: remove what was published for it."""

    def subscriptions(self) -> tuple[str, ...]:
        """MQTT topics this extension wants `on_message` for."""
        return ()

    def on_message(self, topic: str, payload: bytes) -> None:
        """Called for a message on one of the extension's subscriptions, sent just now."""

    def on_retained(self, topic: str, payload: bytes) -> None:
        """Called for a retained message on one of the subscriptions: the broker kept it from
        before and sent it as the subscription was made (at every connect). The same as a
        message unless the extension says otherwise (a command must not run again)."""
        self.on_message(topic, payload)


class SiteUsers:
    """Whether the site's users may have changed since the last look: each server (the same
    object) and its `membership` (bumped when a session starts or ends). Lets an extension
    keep what it rendered from the users (a count, a list of names) until they change."""

    def __init__(self) -> None:
        self._seen: list[tuple[ServerState, int]] | None = None
        """None: not looked at yet (changed, the first time)."""

    def changed(self, state: BridgeState) -> bool:
        seen = [(server, server.membership) for server in state.servers.values()]
        last = self._seen
        same = (
            last is not None
            and len(seen) == len(last)
            and all(
                server is was and membership == then
                for (server, membership), (was, then) in zip(seen, last, strict=True)
            )
        )
        self._seen = seen
        return not same
