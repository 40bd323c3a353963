"""What log4net does with a rendered appender file, modelled for tests: there is no .NET
runtime nor a log4net package on this machine, so the real library cannot run here.

Modelled from log4net's documented behaviour: a logger's appenders see its events; an
appender's filters are asked in order, the first decision that is not Neutral wins and an
event no filter decides on is accepted; StringMatchFilter looks in the rendered message and
PropertyFilter in one property (`stringToMatch`: substring, `regexToMatch`: Regex.Match,
i.e. anywhere unless anchored); DenyAllFilter denies. XmlLayoutSchemaLog4j output is rendered
in the exact shape of the captured datagrams in tests/fixtures.
"""

from __future__ import annotations

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

    def accepts(self, event: LogEvent) -> bool:
        for decision in (f.decide(event) for f in self.filters):
            if decision != "neutral":
                return decision == "accept"
        return True


def _value(element: ET.Element, name: str) -> str:
    child = element.find(name)
    if child is not None and child.get("value") is not None:
        return str(child.get("value"))
    for param in element.findall("param"):  # the older <param name=… value=…/> form
        if param.get("name", "").lower() == name.lower():
            return str(param.get("value"))
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
                {child.tag: str(child.get("value")) for child in f},
            )
            for f in element.findall("filter")
        )
        layout = element.find("layout")
        assert layout is not None
        appenders[str(element.get("name"))] = UdpAppender(
            name=str(element.get("name")),
            remote_address=_value(element, "remoteAddress"),
            remote_port=int(_value(element, "remotePort")),
            encoding=_value(element, "encoding"),
            layout=str(layout.get("type")),
            filters=filters,
        )
    loggers: dict[str, list[UdpAppender]] = {}
    for logger in root.findall("logger"):
        refs = [str(ref.get("ref")) for ref in logger.findall("appender-ref")]
        loggers[str(logger.get("name"))] = [appenders[ref] for ref in refs]
    return loggers


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
