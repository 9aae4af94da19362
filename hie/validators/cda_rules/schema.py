"""CDA R2 structure against an XML Schema: the project's own (``schemas/cda/CDA-CN.xsd``) or, as an
operator setting, HL7's normative ``CDA.xsd`` / ``CDA_SDTC.xsd``. Every schema error becomes a
located error issue."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.errors import ConfigError
from hie.resources import schemas_dir
from hie.validators.cda_rules.document import element_path
from hie.validators.report import Report, Severity
from hie.validators.rules import register

SCHEMA = register(
    "cda.schema",
    summary="The document must be valid CDA R2 under the platform's XML Schema "
    "(element names, order, cardinality and data-type formats).",
    fix="Correct the element at the line given: CDA R2 fixes the order of header elements "
    "(realmCode, typeId, templateId, id, code, title, effectiveTime, confidentialityCode, "
    "languageCode, setId, versionNumber, ..., recordTarget, author, custodian, ...) and the "
    "formats of values (timestamps yyyyMMddHHmmss[+zzzz]); all elements are in the namespace "
    "urn:hl7-org:v3.",
)

MAX_SCHEMA_ISSUES = 200  # a badly broken document can yield thousands; the first 200 suffice

_HL7_BRACES = re.compile(r"\{urn:hl7-org:v3\}")
_ATTRIBUTE = re.compile(r"attribute '([^']+)'")
_VALUE_ERRORS = ("DATATYPE", "PATTERN", "FACET", "ENUMERATION", "VALUE")


def default_schema_path() -> Path:
    return schemas_dir() / "cda" / "CDA-CN.xsd"


class _Compiled:
    """A compiled schema with the lock that guards it: an lxml XMLSchema keeps its error log on
    the object, so two threads validating at once would mix their errors."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.lock = threading.Lock()


_CACHE: dict[Path, _Compiled] = {}
_CACHE_LOCK = threading.Lock()


def _compiled(path: Path) -> _Compiled:
    with _CACHE_LOCK:
        found = _CACHE.get(path)
        if found is None:
            found = _CACHE[path] = _Compiled(_compile(path))
        return found


def _compile(path: Path) -> Any:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except OSError as exc:
        raise ConfigError(f"cannot read the CDA schema {path}: {exc}") from None
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"the CDA schema {path} does not compile: {exc}") from None


class CdaSchema:
    """An XML Schema for CDA R2 documents, compiled once per path and process."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).resolve() if path is not None else default_schema_path()
        self._compiled = _compiled(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def check(self, tree: Any, report: Report) -> bool:
        """Validate ``tree``; add one error issue per schema error. True when valid."""
        with self._compiled.lock:
            valid = bool(self._compiled.schema.validate(tree))
            entries = list(self._compiled.schema.error_log)
        if valid:
            return True
        root = tree.getroot()
        namespaces = {k: v for k, v in (root.nsmap or {}).items() if k}
        for entry in entries[:MAX_SCHEMA_ISSUES]:
            _add_entry(report, entry, tree, namespaces, self.name)
        if len(entries) > MAX_SCHEMA_ISSUES:
            report.add(
                Severity.ERROR,
                SCHEMA.id,
                f"{len(entries) - MAX_SCHEMA_ISSUES} more schema errors are not listed",
                code="structure",
            )
        return False


def _add_entry(
    report: Report, entry: Any, tree: Any, namespaces: dict[str, str], schema_name: str
) -> None:
    message = _HL7_BRACES.sub("", str(entry.message)).strip()
    element = _element_at(tree, entry.path, namespaces)
    expression = element_path(element) if element is not None else (entry.path or None)
    attribute = _ATTRIBUTE.search(message)
    if expression and attribute:
        expression += f"/@{attribute[1]}"
    type_name = str(entry.type_name or "")
    code = "value" if any(t in type_name for t in _VALUE_ERRORS) else "structure"
    line = entry.line or (element.sourceline if element is not None else None)
    report.add(
        Severity.ERROR,
        SCHEMA.id,
        f"not valid under {schema_name}: {message}",
        code=code,
        line=line or None,
        column=entry.column or None,
        expression=expression,
    )


def _element_at(tree: Any, path: str | None, namespaces: dict[str, str]) -> Any:
    if not path:
        return None
    try:
        found = tree.xpath(path, namespaces=namespaces)
    except (etree.XPathError, TypeError, ValueError):
        return None
    if isinstance(found, list) and found and etree.iselement(found[0]):
        return found[0]
    return None
