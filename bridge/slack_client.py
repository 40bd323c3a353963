"""Posting to Slack: an incoming webhook, or the Web API's chat.postMessage with a bot token.

Blocking (slack_sdk's urllib clients, no aiohttp): the Slack sink calls it from a worker
thread. It never raises and never puts a URL or a token into what it returns.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from typing import Literal

from bridge.config import SlackConfig
from bridge.slack_messages import SlackMessage

Kind = Literal["task_events", "user_activity"]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    retry_after: float | None = None
    retryable: bool = False


class SlackPoster:
    def __init__(self, config: SlackConfig) -> None:
        self._config = config

    def target(self, kind: Kind) -> str:
        """Names where a kind posts, for pacing and logs (never the secret itself)."""
        settings = getattr(self._config, kind)
        if settings.webhook_url is not None:
            return f"{kind} webhook"
        if self._config.webhook_url is not None:
            return "webhook"
        return f"#{settings.channel}"

    def post(self, kind: Kind, message: SlackMessage) -> Outcome:
        settings = getattr(self._config, kind)
        webhook = settings.webhook_url or self._config.webhook_url
        try:
            if webhook is not None:
                return self._webhook(webhook.get_secret_value(), message)
            return self._web_api(settings.channel, message)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Outcome(False, f"network: {type(reason).__name__}", retryable=True)

    def _webhook(self, url: str, message: SlackMessage) -> Outcome:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(url, timeout=int(self._config.timeout), retry_handlers=[])
        response = client.send(text=message.text, blocks=message.blocks)
        return _outcome(response.status_code, response.body, response.headers)

    def _web_api(self, channel: str | None, message: SlackMessage) -> Outcome:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        assert self._config.token is not None
        client = WebClient(
            token=self._config.token.get_secret_value(),
            base_url=self._config.base_url or "https://slack.com/api/",
            timeout=int(self._config.timeout),
            retry_handlers=[],
        )
        try:
            client.chat_postMessage(channel=channel or "", text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            response = exc.response
            error = response.data.get("error") if isinstance(response.data, dict) else None
            return _outcome(response.status_code, str(error or ""), response.headers)
        return Outcome(True, "posted")


def _outcome(status: int, body: str, headers: dict[str, str | list[str]]) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, "posted")
    if status == 429:
        return Outcome(
            False, "rate limited (429)", retry_after=_retry_after(headers), retryable=True
        )
    if status >= 500:
        return Outcome(False, f"HTTP {status}", retryable=True)
    return Outcome(False, f"HTTP {status}: {body[:100]}")


def _retry_after(headers: dict[str, str | list[str]]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(text))
            except ValueError:
                break
    return 1.0
