"""The exact reader of the log-event XML layout (`read_exact`) against defusedxml's
(`read_defused`): what it reads, it reads as defusedxml does; what it does not recognise
(hostile or merely unusual) it leaves to defusedxml, which refuses or reads it as before."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import Config
from bridge.core.events import LogEvent, Rejected, RejectReason
from bridge.core.path import Bridge
from bridge.core.state import BridgeState
from bridge.core.stats import Stats
from bridge.inputs.log_event_xml import LogXmlRefusedError, read_defused, read_exact
from bridge.inputs.parse import decode, parse_datagram
from tests.helpers import FIXTURES
from tests.inputs.test_log_event_xml import LAUGHS, PROPERTIES, b64, event_xml
from tests.log4net_model import LogEvent as Logged
from tests.log4net_model import render_xml_layout

CAPTURED = [
    json.loads(line)
    for line in (FIXTURES / "log4net-log-events.jsonl").read_text(encoding="utf-8").splitlines()
]


def text_of(data: bytes) -> str:
    """The text `parse_datagram` hands the log-event reader."""
    text = decode(data)
    assert text is not None
    return text.lstrip("\ufeff").rstrip("\r\n")


@pytest.mark.parametrize("fixture", CAPTURED, ids=[f["logged"]["message"][:30] for f in CAPTURED])
def test_the_exact_reader_reads_every_capture_as_defusedxml_does(fixture: dict[str, str]) -> None:
    text = text_of(bytes.fromhex(fixture["hex"]))
    prefix = f"qseow-{fixture['source']}"
    read = read_exact(text, prefix)
    assert read is not None
    assert read == read_defused(text, prefix)


_XML_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\ufffe\uffff").filter(
    lambda c: c in "\t\n\r" or ord(c) >= 0x20
)


@settings(max_examples=300, deadline=None)
@given(
    service=st.sampled_from(sorted(PROPERTIES)),
    level=st.sampled_from(["WARN", "ERROR", "FATAL", "INFO"]),
    logger=st.text(_XML_CHARS.filter(lambda c: c not in "\t\n\r"), min_size=1, max_size=40),
    message=st.text(max_size=100),
    exception=st.none() | st.text(_XML_CHARS, max_size=200),
    data=st.data(),
)
def test_the_exact_reader_reads_anything_log4net_writes(
    service: str,
    level: str,
    logger: str,
    message: str,
    exception: str | None,
    data: st.DataObject,
) -> None:
    """XmlLayout as log4net writes it (attributes escaped, the exception escaped or in CDATA
    sections, CRLF): the exact reader reads it, and as defusedxml does. (A logger is a .NET
    type's name: a tab or a line end in an attribute is left to defusedxml, which reads it
    as a space.)"""
    names = data.draw(st.lists(st.sampled_from(list(PROPERTIES[service])), unique=True))
    properties = {name: data.draw(st.text(min_size=1, max_size=30)) for name in names}
    prefix = f"qseow-{service}"
    rendered = render_xml_layout(
        Logged(logger, level, message, properties, exception), prefix, "QS1"
    )
    text = text_of(rendered)
    read = read_exact(text, prefix)
    assert read is not None
    assert read == read_defused(text, prefix)


P = "qseow-engine"
_HOST = f'<{P}:data name="log4net:HostName" value="{b64("QS1")}" />'
SOUND_ATTRIBUTES = {
    "logger": [
        "System.Engine",
        "a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; f>g",
        "line&#10;feed&#13;&#x9;tab",
        "x&#x85;y&#x10FFFF;",
        "\x85\u2028\U0001f600",
    ],
    "timestamp": ["2026-11-04T09:15:02.4170000+01:00", ""],
    "level": ["ERROR", "warn"],
    "thread": ["12"],
    "domain": ["Engine.exe"],
    "identity": ["CORP\\mia"],
    "username": ["CORP\\svc", "NT AUTHORITY\\SYSTEM"],
}
"""The event's attributes as log4net writes them: in this order, each when it has a value."""
SOUND = {
    "message": [
        "",
        f"<{P}:message>QUJD</{P}:message>",
        f"<{P}:message></{P}:message>",
        f"<{P}:message>QU\r\nJD \t</{P}:message>",
    ],
    "properties": [
        "",
        f"<{P}:properties>{_HOST}</{P}:properties>",
        f'<{P}:properties>{_HOST.replace(" />", "/>")}<{P}:data name="AppId" value="" />'
        f"</{P}:properties>",
        f'<{P}:properties>{_HOST}<{P}:data name="a &amp; b" value="{b64("x")}" /></{P}:properties>',
        f"<{P}:properties>{_HOST}{_HOST}</{P}:properties>",
        f"<{P}:properties></{P}:properties>",
    ],
    "exception": [
        "",
        f"<{P}:exception>Boom &lt;x&gt; &amp; ] ]] &quot;</{P}:exception>",
        f"<{P}:exception><![CDATA[a <b> & ]]>]]<![CDATA[> c]]></{P}:exception>",
        f"<{P}:exception>\r\nCRLF\rCR\nLF</{P}:exception>",
        f"<{P}:exception><![CDATA[x\r\ny]]>\r</{P}:exception>",
        f"<{P}:exception>&#13;&#x9;&#10;&#xD;</{P}:exception>",
        f"<{P}:exception></{P}:exception>",
        f"<{P}:exception><![CDATA[]]></{P}:exception>",
        f"<{P}:exception>\x7f\x9f\u2028</{P}:exception>",
    ],
    "end": ["", "\n", "\r\n", " \t"],
}
"""Pieces of the layout as log4net writes it."""
ODD = {
    "attribute": [
        ' logger="x&#0;y"',
        ' logger="x&#xFFFE;y"',
        ' logger="x&#1114112;y"',
        ' logger="tab\there"',
        ' logger="line\nhere"',
        ' logger="return\rhere"',
        " logger='single quotes'",
        ' xmlns:x="urn:x"',
        ' xmlns="urn:y"',
        ' xml:space="preserve"',
        ' level="ERROR" level="WARN"',
        ' logger="&undefined;"',
        ' thread="a & b"',  # an attribute the event is not made of is well-formed all the same
        ' domain="&#0;"',
        ' identity="&unknown;"',
        ' logger="a<b"',
        ' logger="\x01"',
        '  logger="two spaces"',
        ' logger = "spaced"',
        ' other="attribute"',
        " ",
    ],
    "message": [
        f"<{P}:message/>",
        f"<{P}:message>Boom!</{P}:message>",
        f"<{P}:message>&#65;QUJD</{P}:message>",
        f"<{P}:message><![CDATA[QUJD]]></{P}:message>",
        f"<{P}:message>QUJD</{P}:message><{P}:message>REVG</{P}:message>",
        f"<{P}:message>QU]]>JD</{P}:message>",
        f"<{P}:message>QUJD<b/></{P}:message>",
        "<QSEOW-ENGINE:message>QUJD</QSEOW-ENGINE:message>",
        "<message>QUJD</message>",
    ],
    "properties": [
        f'<{P}:properties><{P}:data name="log4net:HostName" value="UV Mx" /></{P}:properties>',
        f'<{P}:properties><{P}:data name="log4net:HostName" /></{P}:properties>',
        f'<{P}:properties><{P}:data value="UVMx" name="log4net:HostName" /></{P}:properties>',
        f"<{P}:properties/>",
        f'<{P}:properties><x:data name="log4net:HostName" value="UVMx" /></{P}:properties>',
        f"<{P}:properties>{_HOST}<{P}:other/></{P}:properties>",
        f"<{P}:properties>{_HOST}<{P}:data name='a' value='b' /></{P}:properties>",
    ],
    "exception": [
        f"<{P}:exception>a]]>b</{P}:exception>",
        f"<{P}:exception><![CDATA[unclosed\r</{P}:exception>",
        f"<{P}:exception>a<!-- comment -->b</{P}:exception>",
        f"<{P}:exception>a<?pi x?>b</{P}:exception>",
        f"<{P}:exception>a<b>nested</b>c</{P}:exception>",
        f"<{P}:exception/>",
        f"<{P}:exception>&#1;</{P}:exception>",
        f"<{P}:exception>\x01</{P}:exception>",
        f"<{P}:exception>\ufffe</{P}:exception>",
        f"<{P}:exception>&lol;</{P}:exception>",
        f'<{P}:exception><!DOCTYPE x [<!ENTITY a "b">]></{P}:exception>',
        f'<{P}:locationInfo class="C" method="M" file="F" line="1" />',
    ],
    "end": ["junk", "<!-- c -->", f"<{P}:event/>", "\x00", "]]>"],
}
"""Pieces log4net does not write: hostile, broken, or merely unusual XML."""


def _piece(kind: str, odd: str) -> st.SearchStrategy[str]:
    return st.sampled_from(ODD[kind] if kind == odd else SOUND[kind])


@settings(max_examples=1000, deadline=None)
@given(data=st.data(), odd=st.sampled_from(["none", "attribute", *SOUND]), ordered=st.booleans())
def test_the_exact_reader_never_reads_what_defusedxml_would_not(
    data: st.DataObject, odd: str, ordered: bool
) -> None:
    """Never guessing: whatever the exact reader reads, defusedxml reads the same; the rest it
    leaves to defusedxml, and the datagram is an event or a refusal, never an exception. The
    layout's pieces, one of them (`odd`) of another kind, in log4net's order or another."""
    attributes = [
        f' {name}="{data.draw(st.sampled_from(values))}"'
        for name, values in SOUND_ATTRIBUTES.items()
        if data.draw(st.booleans())
    ]
    if odd == "attribute":
        at = data.draw(st.integers(0, len(attributes)))
        attributes.insert(at, data.draw(st.sampled_from(ODD["attribute"])))
    parts = [data.draw(_piece(kind, odd)) for kind in ("message", "properties", "exception")]
    order = [0, 1, 2] if ordered else data.draw(st.permutations([0, 1, 2]))
    body = "".join(parts[index] for index in order)
    text = f"<{P}:event{''.join(attributes)}>{body}</{P}:event>{data.draw(_piece('end', odd))}"
    read = read_exact(text, P)
    if read is not None:
        assert read == read_defused(text, P)
    else:  # what log4net writes is always read
        assert odd != "none" or order != [0, 1, 2]
    assert isinstance(parse_datagram(text.encode()), LogEvent | Rejected)


HOSTILE = {
    "doctype": event_xml(P, extra='<!DOCTYPE x [<!ENTITY a "b">]>'),
    "doctype_first": f'<!DOCTYPE x [<!ENTITY a "b">]><{P}:event/>'.encode(),
    "entity_declaration": event_xml(P, extra='<!ENTITY a "b">'),
    "external_entity": event_xml(P, extra='<!ENTITY xxe SYSTEM "file:///etc/passwd">'),
    "entity_bomb": event_xml(P, extra=f"<!DOCTYPE lolz [{LAUGHS}]>"),
    "undefined_entity": event_xml(P, message="&lol9;"),
    "deep_nesting": event_xml(
        P, extra=f"<{P}:exception>" + "<a>" * 9000 + "</a>" * 9000 + f"</{P}:exception>"
    ),
    "nested_in_the_message": event_xml(P, message="QUJD<a><b/></a>"),
    "reference_to_nul": event_xml(P, level="ERROR&#0;"),
    "bare_ampersand_in_the_thread": event_xml(P).replace(b'thread="7"', b'thread="7 & 8"'),
    "control_character": event_xml(P, extra=f"<{P}:exception>\x01</{P}:exception>"),
    "cdata_end_in_text": event_xml(P, extra=f"<{P}:exception>a]]>b</{P}:exception>"),
    "unclosed_cdata": event_xml(P, extra=f"<{P}:exception><![CDATA[a\rb</{P}:exception>"),
    "duplicate_attribute": event_xml(P).replace(b'level="ERROR"', b'level="ERROR" level="X"'),
    "two_events": event_xml(P) + event_xml(P),
}
"""Hostile or broken XML: each refused (`bad_xml`), none read by the exact reader."""


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_xml_is_refused_and_never_read_by_the_exact_reader(data: bytes) -> None:
    text = text_of(data)
    assert read_exact(text, P) is None
    parsed = parse_datagram(data)
    assert isinstance(parsed, Rejected), parsed
    assert parsed.reason is RejectReason.BAD_XML
    with pytest.raises(LogXmlRefusedError):
        read_defused(text, P)


def test_each_hostile_datagram_is_counted_and_the_next_event_still_published() -> None:
    """The core path counts every refusal by its reason (the `bad_xml` of bridge/stats) and
    goes on: a valid log event right after them is an event of the state."""
    bridge = Bridge(Config(), BridgeState(), Stats(), lambda: 1000.0, lambda: 0.0)
    for data in HOSTILE.values():
        bridge.handle_datagram(data, "127.0.0.1")
    assert bridge.stats.rejected == {"bad_xml": len(HOSTILE)}
    bridge.handle_datagram(event_xml(P), "127.0.0.1")
    assert bridge.stats.events == 1
    assert bridge.state.servers["qs1"].last_log_error is not None


def test_the_nesting_limit_is_the_layouts_own() -> None:
    """The layout nests event > properties > data: that depth is read, one more refused."""
    ok = event_xml(P, extra=f"<{P}:exception>a<b>c</b>d</{P}:exception>")
    assert isinstance(parse_datagram(ok), LogEvent)
    deeper = event_xml(P, extra=f"<{P}:exception>a<b><i>c</i></b>d</{P}:exception>")
    refused = parse_datagram(deeper)
    assert isinstance(refused, Rejected)
    assert "nested deeper" in refused.detail


UNUSUAL = {
    "xml_declaration": b'<?xml version="1.0" encoding="utf-8"?>\n' + event_xml(P),
    "leading_space": b"  " + event_xml(P),
    "single_quotes": event_xml(P).replace(b'level="ERROR"', b"level='ERROR'"),
    "tab_in_an_attribute": event_xml(P).replace(b'thread="7"', b'thread="\t7"'),
    "a_comment": event_xml(P, extra="<!-- a comment -->"),
    "location_info": event_xml(P, extra=f'<{P}:locationInfo class="C" line="1" />'),
    "namespace_declaration": event_xml(P).replace(b'thread="7"', b'xmlns:x="urn:x"'),
}
"""Well-formed, but not as log4net writes the shipped layout: read by defusedxml as before."""


@pytest.mark.parametrize("data", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_what_the_exact_reader_does_not_know_is_read_by_defusedxml(data: bytes) -> None:
    text = text_of(data)
    assert read_exact(text, P) is None
    assert isinstance(parse_datagram(data), LogEvent)
    assert read_defused(text.lstrip(), P)[0][2] == "ERROR"  # the level


def test_a_remembered_property_value_reads_as_the_first_time_and_a_bad_one_is_refused_again() -> (
    None
):
    """Property values are remembered decoded (a node repeats its host, its ids): the same
    event every time, and a value that is no base64 is refused every time."""
    long_name = "Reload " + "x" * 300  # longer values are decoded each time
    properties = (
        _HOST + f'<{P}:data name="ActiveUserId" value="{b64("mia")}" />'
        f'<{P}:data name="AppId" value="{b64(long_name)}" />'
    )
    first, again = (parse_datagram(event_xml(P, properties=properties)) for _ in range(2))
    assert isinstance(first, LogEvent)
    assert first == again
    assert (first.server, first.user_id, first.app_id) == ("QS1", "mia", long_name)
    bad = _HOST + f'<{P}:data name="UserId" value="bWlh!" />'
    for _ in range(2):
        refused = parse_datagram(event_xml(P, properties=bad))
        assert isinstance(refused, Rejected)
        assert "property 'UserId' is not base64" in refused.detail
