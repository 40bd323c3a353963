"""`privacy.user_ids`: what of a user's identity may leave the bridge (MQTT, Home Assistant
attributes, Butler topics). Applied where payloads are built; state and the state file keep the
real ids, which the bridge needs to pair a session's start with its stop."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

Mode = Literal["plain", "hashed", "omitted"]


@dataclass(frozen=True, slots=True)
class Privacy:
    mode: Mode = "plain"
    salt: str = ""

    @staticmethod
    def user_part(account: str | None) -> str | None:
        """The user id in `DOMAIN\\user` or `DOMAIN/user`."""
        if account is None:
            return None
        return account.replace("/", "\\").rpartition("\\")[2]

    @property
    def plain(self) -> bool:
        return self.mode == "plain"

    def user_id(self, user_id: str | None) -> str | None:
        """A user id as published: itself, a keyed hash (stable: the same user, the same
        token), or None."""
        if user_id is None or self.mode == "plain":
            return user_id
        if self.mode == "omitted":
            return None
        digest = hmac.new(self.salt.encode(), user_id.encode(), hashlib.sha256).hexdigest()
        return f"user-{digest[:12]}"

    def account(self, account: str | None) -> str | None:
        """`DOMAIN\\user` (or `DOMAIN/user`): the directory stays, the user id is treated."""
        if account is None or self.plain:
            return account
        for separator in ("\\", "/"):
            directory, found, user_id = account.rpartition(separator)
            if found:
                treated = self.user_id(user_id)
                return None if treated is None else f"{directory}{separator}{treated}"
        return self.user_id(account)

    def redact(self, text: str | None, *user_ids: str | None) -> str | None:
        """A log message with these users' ids replaced as `user_id` would publish them.

        Only whole occurrences (any case): the user `ad` is redacted in `CORP\\ad`, `'ad'`
        or `ad.` but not in `loaded`, `Admin`, `ad-hoc` or `x.ad`."""
        if text is None or self.plain:
            return text
        for user_id in user_ids:
            if user_id:
                pattern = re.compile(
                    _NOT_AFTER_TOKEN + re.escape(user_id) + _NOT_BEFORE_TOKEN, re.IGNORECASE
                )
                text = pattern.sub(self.user_id(user_id) or "[user]", text)
        return text


_NOT_AFTER_TOKEN = r"(?<!\w)(?<!\w[.-])"
"""Not inside a longer token: no word character before it, nor a `.` or `-` joined to one
(as user ids such as `j.doe` or `ad-admin` are joined)."""
_NOT_BEFORE_TOKEN = r"(?![\w]|[.-]\w)"


PLAIN = Privacy()
