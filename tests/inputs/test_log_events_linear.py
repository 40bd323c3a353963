"""Finding 6 of issue 23 for the log-event formats: parsing a datagram costs time proportional
to its length. Not a timing target (those are in bench/): each worst case is parsed at 8 KB and
at 64 KB, and the 64 KB one may cost at most `FACTOR` times the 8 KB one (linear: 8; quadratic:
64 — the CDATA scan this replaced took 76 times as long, 1.8 s for one datagram)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bridge.inputs.parse import parse_datagram

FACTOR = 24
SMALL, LARGE = 8 * 1024, 64 * 1024 - 1
HEAD = (
    "/qseow-proxy/;1;20211109T153726.028+0200;2021-11-09 15:37:26,028;ERROR;QS1;Audit.Proxy;"
    "CORP\\svc;"
)
ELEMENT = '<qseow-engine:event logger="x" level="ERROR" username="CORP\\svc">'


def _fill(prefix: str, unit: str, suffix: str = "") -> Callable[[int], bytes]:
    def make(size: int) -> bytes:
        count = max(1, (size - len(prefix) - len(suffix)) // len(unit))
        return (prefix + unit * count + suffix).encode()[:size]

    return make


WORST: dict[str, Callable[[int], bytes]] = {
    "a tag and `;` fields": _fill("/qseow-engine/;", "a;"),
    "a sound head and `;` fields": _fill(HEAD, "a;"),
    "`;` fields and an exception that is no type": _fill(
        HEAD, "a;", ";Unable to connect;CORP;mia;Login;401;App;/a"
    ),
    "a dotted last part": _fill(HEAD + "m;", "a.", ";(null);CORP;mia;Login;401;App;/a"),
    "a QIX line of `;` fields": _fill("/qseow-qix-perf/;", "1;"),
    "XML: carriage returns and unclosed CDATA": _fill(ELEMENT + "\r", "<![CDATA[\r"),
    "XML: deep elements": _fill(ELEMENT, "<a>"),
    "XML: many properties": _fill(
        ELEMENT + "<qseow-engine:properties>",
        '<qseow-engine:data name="a" value="QQ=="/>',
        "</qseow-engine:properties></qseow-engine:event>",
    ),
    "XML: CDATA sections with carriage returns": _fill(
        ELEMENT + "<qseow-engine:exception>",
        "<![CDATA[\r]]>",
        "</qseow-engine:exception></qseow-engine:event>",
    ),
}


def _cost(data: bytes) -> float:
    """Seconds per parse: the least over 5 rounds, each of as many parses as take 5 ms."""
    best = float("inf")
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while True:
            parse_datagram(data, 65535)
            count += 1
            elapsed = time.perf_counter() - started
            if elapsed >= 0.005:
                break
        best = min(best, elapsed / count)
    return best


@pytest.mark.parametrize("make", WORST.values(), ids=list(WORST))
def test_a_64_kb_datagram_costs_at_most_a_few_times_an_8_kb_one(
    make: Callable[[int], bytes],
) -> None:
    small, large = make(SMALL), make(LARGE)
    assert len(large) >= 7 * len(small)
    ratio = _cost(large) / _cost(small)
    assert ratio < FACTOR, f"64 KB costs {ratio:.1f} times 8 KB: not linear"
