"""What log4net does with a rendered appender file, modelled for tests that want thousands of
cases (Hypothesis) or a bridge without Mono; tests/inputs/test_log4net.py runs the real library.

Modelled from log4net's documented behaviour: a logger's appenders see its events and, by
additivity, its ancestors' (`System` sees `System.Scheduler.…`); an appender's threshold goes
first, then its filters are asked in order, the first decision that is not Neutral wins and an
event no filter decides on is accepted; StringMatchFilter looks in the rendered message and
PropertyFilter in one property (`stringToMatch`: substring, `regexToMatch`: Regex.Match,
i.e. anywhere unless anchored); DenyAllFilter denies. XmlLayoutSchemaLog4j and XmlLayout
output is rendered in the exact shape of the datagrams real log4net sent (tests/fixtures).
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class LogEvent:
    logger: str
    level: str
    message: str
    properties: dict[str, str] = field(default_factory=dict)
    exception: str | None = None
    """The text log4net renders for the event's exception, if it has one."""


LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
"""log4net's levels Qlik Sense uses, lowest first."""


@dataclass(frozen=True)
class Filter:
    kind: str
    params: dict[str, str]

    def decide(self, event: LogEvent) -> str:
        """'accept', 'deny' or 'neutral', as log4net's filters answer."""
        if self.kind == "log4net.Filter.DenyAllFilter":
            return "deny"
        if self.kind == "log4net.Filter.StringMatchFilter":
            text: str | None = event.message
        elif self.kind == "log4net.Filter.PropertyFilter":
            text = event.properties.get(self.params["key"])
        else:
            raise AssertionError(f"filter {self.kind} is not modelled")
        if text is None:
            return "neutral"
        accept = self.params.get("acceptOnMatch", "true").lower() == "true"
        if "regexToMatch" in self.params:
            matched = re.search(self.params["regexToMatch"], text) is not None
        elif "stringToMatch" in self.params:
            matched = self.params["stringToMatch"] in text
        else:
            return "neutral"
        if not matched:
            return "neutral"
        return "accept" if accept else "deny"


@dataclass(frozen=True)
class UdpAppender:
    name: str
    remote_address: str
    remote_port: int
    encoding: str
    layout: str
    filters: tuple[Filter, ...]
    threshold: str | None = None
    prefix: str | None = None
    """XmlLayout's prefix (log4net's default: `log4net`)."""
    base64: bool = False
    """XmlLayout's base64EncodeMessage and base64EncodeProperties, both set."""

    def accepts(self, event: LogEvent) -> bool:
        if self.threshold is not None and LEVELS.index(event.level) < LEVELS.index(
            self.threshold.upper()
        ):
            return False
        for decision in (f.decide(event) for f in self.filters):
            if decision != "neutral":
                return decision == "accept"
        return True


def _value(element: ET.Element, name: str, default: str | None = None) -> str:
    child = element.find(name)
    if child is not None and child.get("value") is not None:
        return str(child.get("value"))
    for param in element.findall("param"):  # <param name=… value=…/>: what Qlik accepts
        if param.get("name", "").lower() == name.lower():
            return str(param.get("value"))
    if default is not None:
        return default
    raise AssertionError(f"{element.get('name')}: no {name}")


def load(text: str) -> dict[str, list[UdpAppender]]:
    """Logger name → the UDP appenders it feeds, from a LocalLogConfig.xml."""
    root = ET.fromstring(text.encode("utf-8"))
    appenders = {}
    for element in root.findall("appender"):
        assert element.get("type") == "log4net.Appender.UdpAppender", element.get("type")
        filters = tuple(
            Filter(
                str(f.get("type")),
                {
                    str(child.get("name")) if child.tag == "param" else child.tag: str(
                        child.get("value")
                    )
                    for child in f
                },
            )
            for f in element.findall("filter")
        )
        layout = element.find("layout")
        assert layout is not None
        threshold = _value(element, "threshold", "")
        encoded = [
            _value(layout, f"base64Encode{part}", "false") for part in ("Message", "Properties")
        ]
        assert encoded[0] == encoded[1], "the model knows both encoded or neither"
        appenders[str(element.get("name"))] = UdpAppender(
            name=str(element.get("name")),
            remote_address=_value(element, "remoteAddress"),
            remote_port=int(_value(element, "remotePort")),
            encoding=_value(element, "encoding"),
            layout=str(layout.get("type")),
            filters=filters,
            threshold=threshold or None,
            prefix=_value(layout, "prefix", "log4net"),
            base64=encoded[0].lower() == "true",
        )
    loggers: dict[str, list[UdpAppender]] = {}
    for logger in root.findall("logger"):
        refs = [str(ref.get("ref")) for ref in logger.findall("appender-ref")]
        loggers[str(logger.get("name"))] = [appenders[ref] for ref in refs]
    return loggers


def appenders_of(loggers: dict[str, list[UdpAppender]], name: str) -> list[UdpAppender]:
    """The appenders an event on logger `name` reaches: its own and, by additivity, those of
    every ancestor configured (`System` for `System.Scheduler.…`), nearest first."""
    parts = name.split(".")
    reached: list[UdpAppender] = []
    for cut in range(len(parts), 0, -1):
        reached += loggers.get(".".join(parts[:cut]), [])
    return reached


def _attr(value: str) -> str:
    return '"' + escape(value, {'"': "&quot;"}) + '"'


def render_log4j_xml(event: LogEvent, host: str, timestamp_ms: int) -> bytes:
    """XmlLayoutSchemaLog4j's output for an event, as in the captured fixtures (CRLF: Windows)."""
    properties = {
        "log4jmachinename": host,
        **event.properties,
        "log4net:HostName": host,
        "log4net:Identity": "",
        "log4japp": "Scheduler.exe",
        "log4net:UserName": "NT AUTHORITY\\SYSTEM",
    }
    data = "".join(
        f"<log4j:data name={_attr(k)} value={_attr(v)} />" for k, v in properties.items()
    )
    text = (
        f'<log4j:event logger={_attr(event.logger)} timestamp="{timestamp_ms}" '
        f'level={_attr(event.level)} thread="12">'
        f"<log4j:message>{escape(event.message)}</log4j:message>"
        f"<log4j:properties>{data}</log4j:properties></log4j:event>\r\n"
    )
    return text.encode("utf-8")


def _cdata(text: str) -> str:
    """log4net's CDATA form: a section up to each `]]>`, then `]]` as text and the `>` opens
    the next section; a `]]>` at the very end is written as escaped text."""
    out = []
    start = 0
    end = text.find("]]>")
    while end > 0:
        out.append(f"<![CDATA[{text[start:end]}]]>")
        if end == len(text) - 3:
            return "".join(out) + "]]&gt;"
        out.append("]]")
        start = end + 2
        end = text.find("]]>", start)
    return "".join(out) + (f"<![CDATA[{text[start:]}]]>" if start < len(text) else "")


def _xml_text(text: str) -> str:
    """Text as log4net's Transform.WriteEscapedXmlString writes it: escaped, or a CDATA
    section when escaping would cost more (its weights)."""
    escapes = 3 * (text.count("<") + text.count(">")) + 4 * text.count("&")
    if escapes <= 12 * (1 + text.count("]]>")):
        return escape(text)
    return _cdata(text)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def render_xml_layout(
    event: LogEvent,
    prefix: str,
    host: str,
    timestamp: str = "2026-11-04T09:15:02.4170000+01:00",
    username: str = "CORP\\qlikservice",
    thread: str = "12",
    domain: str = "Qlik.Sense.Service.exe",
    newline: str = "\r\n",
) -> bytes:
    """XmlLayout's output for an event with `prefix`, base64EncodeMessage and
    base64EncodeProperties set (the shipped log-event appenders), as real log4net sends it
    (byte for byte: tests/inputs/test_log_event_xml.py checks it against the captures)."""
    properties = event.properties  # in log4net's order (a hash table's: any)
    if "log4net:HostName" not in properties:
        properties = {"log4net:HostName": host, **properties}
    data = "".join(
        f"<{prefix}:data name={_attr(k)} value={_attr(_b64(v))} />" for k, v in properties.items()
    )
    exception = ""
    if event.exception is not None:
        exception = f"<{prefix}:exception>{_xml_text(event.exception)}</{prefix}:exception>"
    text = (
        f"<{prefix}:event logger={_attr(event.logger)} timestamp={_attr(timestamp)} "
        f"level={_attr(event.level)} thread={_attr(thread)} domain={_attr(domain)} "
        f"username={_attr(username)}>"
        f"<{prefix}:message>{_b64(event.message)}</{prefix}:message>"
        f"<{prefix}:properties>{data}</{prefix}:properties>{exception}</{prefix}:event>{newline}"
    )
    return text.encode("utf-8")
