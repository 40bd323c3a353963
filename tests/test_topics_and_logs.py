"""Topic safety of server names, and the reject-log rate limiter."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.topics import Topics, server_slug
from bridge.runtime.logs import RateLimiter


@given(st.text(max_size=300))
def test_no_host_name_can_leave_its_topic_level(host: str) -> None:
    slug = server_slug(host)
    assert re.fullmatch(r"[a-z0-9_-]{1,64}", slug)
    assert slug not in ("bridge", "site")
    topic = Topics("qlik2mqtt").user_event(slug)
    assert topic.count("/") == 3


def test_examples() -> None:
    assert server_slug("QSPROD02") == "qsprod02"
    assert server_slug("QS/+#\0EVIL") == "qs_evil"
    assert server_slug("qs-win.corp.example") == "qs-win_corp_example"
    assert server_slug("") == "unknown"
    assert server_slug("Site") == "server_site"


def test_rate_limiter_lets_one_through_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    limiter = RateLimiter(10.0, lambda: now[0])
    assert limiter.allow("bad_xml") == 0
    assert limiter.allow("bad_xml") is None
    assert limiter.allow("bad_xml") is None
    assert limiter.allow("empty") == 0  # per key
    now[0] = 10.5
    assert limiter.allow("bad_xml") == 2
    assert limiter.allow("bad_xml") is None
