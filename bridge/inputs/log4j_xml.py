"""Safe reading of one log4net `XmlLayoutSchemaLog4j` event (`<log4j:event …>`).

log4net writes the `log4j:` prefix without declaring it, so the text is wrapped in an element
that declares it before a namespace-aware parser sees it. DTDs and entity declarations are
refused outright, never expanded: a DOCTYPE heading the datagram is refused by name; anywhere
else it sits inside the wrapper, where XML allows none (not well-formed), and defusedxml
(`forbid_dtd`) stands behind both. Text that merely quotes one (an exception citing an HTML
page's `<!DOCTYPE html>`, escaped or in CDATA) is an ordinary event.

Control characters follow the text policy of every format (`bridge.inputs.fields`): shown as
U+FFFD in the message and the exception (XML 1.0 lets through the C1 controls, and tab and line
breaks as character references), refused in the logger and the level (ControlCharacterError);
a property is checked where it is read as a name (`fields.name_field`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from bridge.inputs.fields import name_field, visible_controls

LOG4J_NAMESPACE = "http://jakarta.apache.org/log4j/"
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
DOCTYPE_FIRST = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?<!DOCTYPE")
"""A document type declaration heading the datagram (the only place XML allows one)."""
_WRAP_OPEN = f'<log4j:events xmlns:log4j="{LOG4J_NAMESPACE}">'
_WRAP_CLOSE = "</log4j:events>"
_EPOCH_MS = re.compile(r"[0-9]{1,13}")  # milliseconds, up to year 2286


class XmlRefusedError(ValueError):
    """The text is not one well-formed, harmless log4j event."""


@dataclass(frozen=True, slots=True)
class Log4jEvent:
    logger: str
    level: str
    timestamp_ms: int | None
    message: str
    properties: dict[str, str]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_log4j_event(text: str) -> Log4jEvent:
    """Parse one `<log4j:event>`; raise XmlRefusedError with a short reason otherwise."""
    if DOCTYPE_FIRST.match(text):
        raise XmlRefusedError("DOCTYPE and entity declarations are refused")
    body = _XML_DECLARATION.sub("", text, count=1)
    try:
        root = safe_fromstring(_WRAP_OPEN + body + _WRAP_CLOSE, forbid_dtd=True)
    except ParseError as exc:
        raise XmlRefusedError(_where(exc, text[: len(text) - len(body)])) from None
    except DefusedXmlException as exc:
        raise XmlRefusedError(f"refused: {exc}") from None
    children = list(root)
    if len(children) != 1 or _local(children[0].tag) != "event":
        raise XmlRefusedError("expected exactly one log4j:event element")
    return _read_event(children[0])


def _where(exc: ParseError, removed: str) -> str:
    """expat's reason once (`not well-formed (invalid token)`, `mismatched tag`), and where in
    the datagram as sent: 1-based, without the wrapper and the stripped XML declaration."""
    reason = str(exc).partition(": line ")[0]
    if not reason.startswith("not well-formed"):
        reason = f"not well-formed: {reason}"
    line, column = exc.position
    if line == 1:
        column -= len(_WRAP_OPEN)
        if "\n" not in removed:
            column += len(removed)
    return f"{reason} at line {line}, column {column + 1}"


def _read_event(event: Element) -> Log4jEvent:
    message = ""
    throwable = ""
    properties: dict[str, str] = {}
    for child in event:
        name = _local(child.tag)
        if name == "message":
            message = child.text or ""
        elif name == "throwable":
            throwable = child.text or ""
        elif name == "properties":
            for data in child:
                key = data.get("name")
                if key is not None and _local(data.tag) == "data":
                    properties[key] = data.get("value", "")
    if throwable:
        message = f"{message}\n{throwable}" if message else throwable
    raw_timestamp = event.get("timestamp", "")
    logger, level = event.get("logger", ""), event.get("level", "")
    name_field(logger, "the logger")  # ControlCharacterError: a name cannot show U+FFFD
    name_field(level, "the level")
    return Log4jEvent(
        logger=logger,
        level=level,
        timestamp_ms=int(raw_timestamp) if _EPOCH_MS.fullmatch(raw_timestamp) else None,
        message=visible_controls(message),
        properties=properties,
    )
