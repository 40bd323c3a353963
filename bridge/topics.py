"""The MQTT topic map (DESIGN §4) and topic-safe server names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
MAX_SLUG_CHARS = 64
# Names the topic map uses below the base topic; a server so named gets a prefix.
RESERVED_SLUGS = frozenset({"bridge", "site"})


@lru_cache(maxsize=4096)  # per datagram, twice; a site has a handful of host names
def server_slug(host: str) -> str:
    """A host name made topic-safe: lower case, `[a-z0-9_-]` only, never empty.

    `QS/+#\\0EVIL` becomes `qs_evil`: no wildcard, level separator or NUL can pass.
    """
    slug = _UNSAFE.sub("_", host.strip().lower()).strip("_")[:MAX_SLUG_CHARS] or "unknown"
    return f"server_{slug}" if slug in RESERVED_SLUGS else slug


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

    @property
    def acknowledge(self) -> str:
        return f"{self.base}/bridge/acknowledge"

    @property
    def forget(self) -> str:
        return f"{self.base}/bridge/forget"

    @property
    def site(self) -> str:
        return f"{self.base}/site"

    @property
    def site_last_event(self) -> str:
        """Plain ISO time of the last event, published only once there is one."""
        return f"{self.base}/site/last_event"

    def server(self, slug: str) -> str:
        return f"{self.base}/{slug}"

    def user_event(self, slug: str) -> str:
        return f"{self.base}/{slug}/event/user"

    def task_event(self, slug: str) -> str:
        return f"{self.base}/{slug}/event/task"
