"""Posting to Slack: an incoming webhook, or the Web API's chat.postMessage with a bot token.

Blocking (slack_sdk's urllib clients, no aiohttp): the Slack sink calls it from a worker
thread. It never raises and never puts a URL or a token into what it returns.

Every answer becomes an Outcome: posted, or a failure that says whether trying again can help.
The Web API reports its errors as HTTP 200 with `{"ok": false, "error": …}`: those are
failures too (`ratelimited` and Slack's own server errors are worth retrying, the rest are not).
"""

from __future__ import annotations

import http.client
import logging
import math
import traceback
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bridge.config import SlackConfig
from bridge.slack.messages import KINDS, Kind, SlackMessage

RETRYABLE_API_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)
"""Web API errors that another try may cure (Slack's documentation calls them transient)."""

# slack_sdk logs each failed request itself, unthrottled and quoting the URL (a webhook's URL
# is its secret). The sink logs every failure, rate-limited and scrubbed, so this stays quiet.
_SDK_LOG = logging.getLogger("qlik2mqtt.slack_sdk")
_SDK_LOG.setLevel(logging.CRITICAL + 1)
_SDK_LOG.propagate = False


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    retry_after: float | None = None
    retryable: bool = False
    unexpected: bool = False
    """The client raised something that is neither a network fault nor an answer from Slack."""


Route = Literal["own webhook", "channel", "webhook"]


def route_of(config: SlackConfig, kind: Kind) -> Route:
    """How a kind posts: its own webhook, else its channel through the token (a channel named
    with a token is never ignored for the global webhook), else the global webhook."""
    settings = getattr(config, kind)
    if settings.webhook_url is not None:
        return "own webhook"
    if config.token is not None and settings.channel:
        return "channel"
    return "webhook"


def ignored_channels(config: SlackConfig) -> list[str]:
    """The kinds that are on with a `channel` their route does not use (a webhook posts to the
    channel it was made for): one line each for the log at start."""
    lines = []
    for kind in KINDS:
        settings = getattr(config, kind)
        route = route_of(config, kind)
        if settings.enabled and settings.channel and route != "channel":
            why = "its own webhook_url" if route == "own webhook" else "slack.webhook_url"
            lines.append(
                f"slack.{kind}.channel ({settings.channel}) is not used: {kind} posts through "
                f"{why}, which posts to the channel it was made for; set slack.token to post to "
                "channels"
            )
    return lines


class SlackPoster:
    def __init__(self, config: SlackConfig) -> None:
        self._config = config
        # slack_sdk takes whole seconds; a fraction is rounded up (0 would mean non-blocking).
        self.timeout = max(1, math.ceil(config.timeout))
        self._secrets = _secrets(config)

    def target(self, kind: Kind, to: int | None = None) -> str:
        """Names where a kind posts (or its route `to`), for pacing and logs (never the
        secret itself)."""
        if to is not None:
            chosen = self._config.task_events.routes[to]
            return f"route {to} webhook" if chosen.webhook_url else str(chosen.channel)
        route = route_of(self._config, kind)
        if route == "own webhook":
            return f"{kind} webhook"
        if route == "webhook":
            return "webhook"
        return str(getattr(self._config, kind).channel or "?")

    def post(self, kind: Kind, message: SlackMessage) -> Outcome:
        settings = getattr(self._config, kind)
        route = route_of(self._config, kind)
        if message.route is not None:  # slack.task_events.routes (issue 26)
            settings = self._config.task_events.routes[message.route]
            route = "own webhook" if settings.webhook_url is not None else "channel"
        try:
            if route == "channel":
                return self._web_api(settings.channel, message)
            webhook = settings.webhook_url if route == "own webhook" else self._config.webhook_url
            assert webhook is not None
            return self._webhook(webhook.get_secret_value(), message)
        except (TimeoutError, urllib.error.URLError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, TimeoutError):
                detail = f"timed out (no answer within {self.timeout} s)"
                return Outcome(False, detail, retryable=True)
            described = self._describe(reason if isinstance(reason, BaseException) else exc)
            return Outcome(False, f"network: {described}", retryable=True)
        except http.client.IncompleteRead:
            return Outcome(False, "network: the answer was cut short", retryable=True)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(False, f"network: {self._describe(exc)}", retryable=True)
        except Exception as exc:
            # slack_sdk's own refusals (SlackRequestError: an invalid URL, say) and whatever
            # else it may raise: trying the same request again would fail the same way.
            return Outcome(False, self._describe(exc, where=True), unexpected=True)

    def _webhook(self, url: str, message: SlackMessage) -> Outcome:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(url, timeout=self.timeout, retry_handlers=[], logger=_SDK_LOG)
        response = client.send(text=message.text, blocks=message.blocks)
        return _outcome(response.status_code, response.body, response.headers)

    def _web_api(self, channel: str | None, message: SlackMessage) -> Outcome:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        assert self._config.token is not None
        client = WebClient(
            token=self._config.token.get_secret_value(),
            base_url=self._config.base_url or "https://slack.com/api/",
            timeout=self.timeout,
            retry_handlers=[],
            logger=_SDK_LOG,
        )
        try:
            client.chat_postMessage(channel=channel or "", text=message.text, blocks=message.blocks)
        except SlackApiError as exc:  # a non-2xx answer, or 200 with "ok": false
            response = exc.response
            error = response.data.get("error") if isinstance(response.data, dict) else None
            return _api_outcome(response.status_code, str(error or ""), response.headers)
        return Outcome(True, "posted")

    def _describe(self, exc: BaseException, where: bool = False) -> str:
        """The exception's type and message with every secret taken out; with `where`, the
        line that raised it (for a fault nobody expected)."""
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        frames = traceback.extract_tb(exc.__traceback__)
        if where and frames:
            described += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
        return described[:300]


def _secrets(config: SlackConfig) -> list[str]:
    """The values that must never be shown: the token, each webhook URL and its path."""
    found: list[str] = []
    kinds = [getattr(config, kind).webhook_url for kind in KINDS]
    kinds += [route.webhook_url for route in config.task_events.routes]
    for secret in (config.token, config.webhook_url, *kinds):
        if secret is None or not secret.get_secret_value():
            continue
        value = secret.get_secret_value()
        found.append(value)
        path = urlsplit(value).path if "://" in value else ""
        if len(path) > 1:
            found.append(path)
    return sorted(set(found), key=len, reverse=True)  # the whole URL before its path


def _outcome(status: int, body: str, headers: dict[str, str | list[str]]) -> Outcome:
    """A webhook's answer: 200 `ok`; else the status and Slack's error code as text."""
    if 200 <= status < 300:
        return Outcome(True, "posted")
    if status == 429:
        return Outcome(
            False, "rate limited (429)", retry_after=_retry_after(headers), retryable=True
        )
    if status >= 500:
        return Outcome(False, f"HTTP {status}", retryable=True)
    return Outcome(False, f"Slack error: {body[:100]} (HTTP {status})")


def _api_outcome(status: int, error: str, headers: dict[str, str | list[str]]) -> Outcome:
    """A Web API answer that was not `"ok": true`, whatever its HTTP status."""
    detail = f"Slack error: {error or 'no error given'}"
    if status != 200:
        detail += f" (HTTP {status})"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return Outcome(False, detail, retry_after=_retry_after(headers), retryable=True)
    if status >= 500 or error in RETRYABLE_API_ERRORS:
        return Outcome(False, detail, retryable=True)
    return Outcome(False, detail)


def _retry_after(headers: dict[str, str | list[str]]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(text))
            except ValueError:
                break
    return 1.0
