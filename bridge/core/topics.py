"""The MQTT topic map (DESIGN §4) and topic-safe server names."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
MAX_SLUG_CHARS = 64
# Names the topic map uses below the base topic; a server so named gets a prefix.
RESERVED_SLUGS = frozenset({"bridge", "site", "tasks"})
_NOT_TASK_SLUG = re.compile(r"[^a-z0-9_]+")
_LATIN_LETTERS = str.maketrans(
    {"ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d"}
)
"""Latin letters that no accent decomposes (NFKD keeps them whole), spelled as Home
Assistant's entity ids spell them."""


@lru_cache(maxsize=4096)  # per datagram, twice; a site has a handful of host names
def server_slug(host: str) -> str:
    """A host name made topic-safe: lower case, `[a-z0-9_-]` only, never empty.

    `QS/+#\\0EVIL` becomes `qs_evil`: no wildcard, level separator or NUL can pass.
    """
    slug = _UNSAFE.sub("_", host.strip().lower()).strip("_")[:MAX_SLUG_CHARS] or "unknown"
    return f"server_{slug}" if slug in RESERVED_SLUGS else slug


def task_slug(entry: str) -> str:
    """A watched task's name in topics and entity ids: `Reload Sales; daily` is
    `reload_sales_daily`, `Försäljning` is `forsaljning`, `Straße` is `strasse` (accents
    dropped and `ß ø æ œ đ ł þ ð` spelled out, as Home Assistant's own entity ids do). Empty
    when the entry has no such letter or digit (`売上`: the entry's id names it then)."""
    text = entry.strip().lower().translate(_LATIN_LETTERS)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_TASK_SLUG.sub("_", ascii_text).strip("_")[:MAX_SLUG_CHARS]


@lru_cache(maxsize=4096)
def host_key(host: str) -> str:
    """What makes two host names the same server: Windows host names ignore case."""
    return host.strip().lower()


def distinct_slug(host: str, taken: Container[str]) -> str:
    """The slug of a host name seen for the first time, given the slugs other hosts hold.

    Without a collision it is `server_slug(host)`, so a host's topics never move when others
    come and go. A host whose slug another host already holds (`QS.01` after `qs_01`) gets
    that slug with a short hash of its own name appended: distinct, and the same every time.
    """
    slug = server_slug(host)
    if slug not in taken:
        return slug
    digest = hashlib.sha256(host_key(host).encode()).hexdigest()
    for length in range(6, len(digest) + 1, 2):  # longer only if a host is named like a hash
        suffix = f"_{digest[:length]}"
        candidate = slug[: MAX_SLUG_CHARS - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable: sha256 prefixes of every length are taken")


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic the bridge publishes or listens on, below one base topic."""

    base: str

    @property
    def bridge_state(self) -> str:
        return f"{self.base}/bridge/state"

    @property
    def bridge_info(self) -> str:
        return f"{self.base}/bridge/info"

    @property
    def bridge_stats(self) -> str:
        return f"{self.base}/bridge/stats"

    def response(self, command: str) -> str:
        """Where the bridge answers a command (zigbee2mqtt's bridge/response convention)."""
        return f"{self.base}/bridge/response/{command}"

    @property
    def site(self) -> str:
        return f"{self.base}/site"

    @property
    def site_last_event(self) -> str:
        """Plain ISO time of the last event, published only once there is one."""
        return f"{self.base}/site/last_event"

    @property
    def site_retry(self) -> str:
        """The failed task the retry button would start (`task_id` null: none)."""
        return f"{self.base}/site/retry"

    def watched_task(self, slug: str) -> str:
        """A watched task's last outcome (`tasks.watch`)."""
        return f"{self.base}/tasks/{slug}"

    def watched_task_at(self, slug: str) -> str:
        """Plain ISO time of a watched task's last outcome, published only once there is one."""
        return f"{self.base}/tasks/{slug}/last_outcome_at"

    def server(self, slug: str) -> str:
        return f"{self.base}/{slug}"

    def server_users(self, slug: str) -> str:
        """Every user with a session on the server (retained; `state.users_interval`)."""
        return f"{self.base}/{slug}/users"

    def user_event(self, slug: str) -> str:
        return f"{self.base}/{slug}/event/user"

    def task_event(self, slug: str) -> str:
        return f"{self.base}/{slug}/event/task"

    def log_event(self, slug: str) -> str:
        return f"{self.base}/{slug}/event/log"

    def qix_performance(self, slug: str) -> str:
        """Butler SOS's QIX performance lines (`log_events.qix_performance.enabled`)."""
        return f"{self.base}/{slug}/event/qix_performance"

    def task_context(self, slug: str) -> str:
        """A failed or aborted reload's context from QRS (issue 26)."""
        return f"{self.base}/{slug}/event/task_context"
