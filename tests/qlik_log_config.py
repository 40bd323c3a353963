"""Qlik Sense's structural rules for a LocalLogConfig.xml, as our own small checker.

The Repository, Proxy and Scheduler services validate the file against Qlik's published XML
schema and drop the whole file when it does not conform (an error in the service's System
log). Written from the documented rules (help.qlik.com, "Customized logging: XML schema" and
"Requirements"), not from the schema's text: log4net settings only as `<param name value>`,
never log4net's element form (`<remoteAddress value=…>`); an appender holds its filters, then
its evaluators, then its params, then its layout (the order Butler's and Butler SOS's files have
used in Qlik Sense for years); every appender before the first logger, as in those files
(whether Qlik's schema allows them mixed is not checked: we keep to the proven form); no
`<root>` (nothing of ours needs one); the file is under 1 MB.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

MAX_BYTES = 1024 * 1024
_APPENDER_ORDER = ("filter", "evaluator", "lossyevaluator", "param", "layout")
_AT_MOST_ONCE = {"evaluator", "lossyevaluator", "layout"}


def _params_only(element: ET.Element, where: str, also: tuple[str, ...] = ()) -> list[str]:
    problems = []
    for child in element:
        if child.tag == "param":
            problems += _param(child, where)
        elif child.tag not in also:
            problems.append(f"{where}: <{child.tag}> is not allowed here (only <param>)")
    return problems


def _param(element: ET.Element, where: str) -> list[str]:
    problems = []
    if set(element.attrib) != {"name", "value"}:
        attributes = sorted(element.attrib)
        problems.append(f"{where}: <param> needs exactly name and value, has {attributes}")
    if len(element) or (element.text or "").strip():
        problems.append(f"{where}: <param {element.get('name')}> must be empty")
    return problems


def _layout(element: ET.Element, where: str) -> list[str]:
    """Converters (each holding params), then params."""
    problems = _params_only(element, where, also=("converter",))
    tags = [child.tag for child in element]
    if "converter" in tags and "param" in tags[: len(tags) - tags[::-1].index("converter")]:
        problems.append(f"{where}: a <converter> comes after a <param>")
    for converter in element.findall("converter"):
        if converter.attrib:
            problems.append(f"{where} <converter>: no attributes allowed")
        problems += _params_only(converter, f"{where} <converter>")
    return problems


def _appender(element: ET.Element) -> list[str]:
    name = element.get("name", "")
    where = f"appender {name!r}"
    problems = []
    if not name or name.startswith("$"):
        problems.append(f"{where}: a name is required and may not start with '$'")
    seen: list[str] = []
    for child in element:
        if child.tag not in _APPENDER_ORDER:
            problems.append(f"{where}: <{child.tag}> is not allowed in an appender")
            continue
        if seen and _APPENDER_ORDER.index(child.tag) < _APPENDER_ORDER.index(seen[-1]):
            problems.append(f"{where}: <{child.tag}> comes after <{seen[-1]}>")
        if child.tag in _AT_MOST_ONCE and child.tag in seen:
            problems.append(f"{where}: more than one <{child.tag}>")
        seen.append(child.tag)
        inner = f"{where} <{child.tag}>"
        if child.tag == "param":
            problems += _param(child, where)
        elif child.tag == "layout":
            problems += _layout(child, inner)
        else:
            problems += _params_only(child, inner)
    return problems


def _logger(element: ET.Element) -> list[str]:
    where = f"logger {element.get('name')!r}"
    problems = []
    for child in element:
        if child.tag == "param":
            problems += _param(child, where)
        elif child.tag == "appender-ref":
            if set(child.attrib) != {"ref"} or len(child):
                problems.append(f"{where}: <appender-ref> holds exactly a ref attribute")
        elif child.tag == "level":
            if set(child.attrib) != {"value"} or len(child):
                problems.append(f"{where}: <level> holds exactly a value attribute")
        else:
            problems.append(f"{where}: <{child.tag}> is not allowed in a logger")
    return problems


def violations(data: bytes) -> list[str]:
    """Every way the file breaks Qlik's rules; empty when it conforms."""
    problems = []
    if len(data) >= MAX_BYTES:
        problems.append(f"{len(data)} bytes: the file must stay under 1 MB")
    root = ET.fromstring(data)
    if root.tag != "configuration":
        return [*problems, f"the root is <{root.tag}>, not <configuration>"]
    seen_logger = False
    for child in root:
        if child.tag == "appender":
            if seen_logger:
                problems.append(f"appender {child.get('name')!r} comes after a <logger>")
            problems += _appender(child)
        elif child.tag == "logger":
            seen_logger = True
            problems += _logger(child)
        else:
            problems.append(f"<{child.tag}> is not allowed in <configuration>")
    return problems
