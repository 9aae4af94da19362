"""Narrative controls a profile sets on a Narrative element (R5's extensions, used in R4).

``narrative-source-control``: every piece of the narrative says where it comes from, by a class
attribute (``boilerplate``, ``generated``, ``original``) on it or an enclosing element.
``narrative-language-control``: language sections (``<div lang="..">`` children of the root div)
are required (``_yes``), prohibited (``_no``), or one must be in the resource's language
(``_resource``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.validators.fhir_rules.profiles.definitions import CORE

SOURCE_CONTROL = CORE + "narrative-source-control"
LANGUAGE_CONTROL = CORE + "narrative-language-control"
_XHTML = "{http://www.w3.org/1999/xhtml}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_SOURCES = frozenset({"boilerplate", "generated", "original"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _control(extensions: Any, url: str) -> str | None:
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == url:
            code = extension.get("valueCode")
            return code if isinstance(code, str) else None
    return None


def _div(narrative: Any) -> Any:
    div = narrative.get("div") if isinstance(narrative, dict) else None
    if not isinstance(div, str):
        return None
    try:
        return etree.fromstring(div.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError:
        return None  # the structure layer reports a malformed div


def _unsourced(element: Any, sourced: bool) -> Iterator[str]:
    """The text of the narrative that no class attribute says the source of."""
    classes = set((element.get("class") or "").split())
    sourced = sourced or bool(classes & _SOURCES)
    text = (element.text or "").strip()
    if text and not sourced:
        yield text
    for child in element:
        if isinstance(child.tag, str):
            yield from _unsourced(child, sourced)
        tail = (child.tail or "").strip()
        if tail and not sourced:
            yield tail


def _sections(root: Any) -> list[str]:
    languages = []
    for child in root:
        if isinstance(child.tag, str) and child.tag == _XHTML + "div":
            language = child.get("lang") or child.get(_XML_LANG)
            if language:
                languages.append(language)
    return languages


def check_narrative(
    element_data: dict[str, Any],
    narrative: Any,
    resource: Any,
    report: Callable[[str], None],
) -> None:
    """Report (through ``report``) what the narrative controls of ``element_data`` forbid."""
    extensions = element_data.get("extension")
    source = _control(extensions, SOURCE_CONTROL)
    language = _control(extensions, LANGUAGE_CONTROL)
    if source is None and language is None:
        return
    root = _div(narrative)
    if root is None:
        return
    if source is not None:
        for text in _unsourced(root, sourced=False):
            shown = text if len(text) <= 60 else text[:57] + "..."
            report(
                f"the narrative text {shown!r} has no class attribute saying its source "
                "(boilerplate, generated or original), which the profile requires"
            )
    sections = _sections(root)
    if language == "_yes" and not sections:
        report("the narrative has no language sections, which the profile requires")
    elif language == "_no" and sections:
        report(
            f"the narrative has language sections ({', '.join(sorted(sections))}), which the "
            "profile prohibits"
        )
    elif language == "_resource":
        own = resource.get("language") if isinstance(resource, dict) else None
        if isinstance(own, str) and own not in sections:
            found = ", ".join(sorted(sections)) or "none"
            report(
                f"the profile requires a narrative section in the resource's language ({own}); "
                f"found {found}"
            )
