"""CDA R2 structure against an XML Schema: the project's own (``schemas/cda/CDA-CN.xsd``) or, as an
operator setting, HL7's normative ``CDA.xsd`` / ``CDA_SDTC.xsd``. Every schema error becomes a
located error issue, worded for the vendor who must fix it.

libxml2 stops checking an element's children at the first child its content model refuses, so
one run reports one unexpected child per element. To report everything at once, a copy of the
document is validated again with each refused child (or attribute) taken out, a bounded number
of rounds; every issue keeps the line and element path of the original document.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.errors import ConfigError
from hie.resources import schemas_dir
from hie.validators.cda_rules.document import element_path, local_name
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
    "urn:hl7-org:v3. Every error of the document is listed at once.",
)

MAX_SCHEMA_ISSUES = 200  # a badly broken document can yield thousands; the first 200 suffice
# Each round takes out what the previous one refused; a real document needs a handful.
MAX_ROUNDS = 20

# Header elements WS/T 500-2016 / WS/T 483-2016 add in the HL7 namespace, and where they belong
# (the 文档头 tables of each part): a misplaced one is named as such.
WST_HEADER_ELEMENTS = {
    "age": "patient",
    "nationality": "patient",
    "educationLevel": "patient",
    "educationLevelCode": "patient or patient/educationLevel",
    "occupation": "patient",
    "occupationCode": "patient/occupation",
    "employerOrganization": "patient",
    "household": "patient",
    "nativePlace": "patient",
    "patientType": "patientRole",
    "patientTypeCode": "patientRole/patientType",
    "patienttypeCode": "patientRole/patientType",
}
# Optional leading elements of every CDA class: naming them in "expected" lists only hides the
# element that is really wanted.
_INFRASTRUCTURE = ("realmCode", "typeId", "templateId")

_HL7_BRACES = re.compile(r"\{urn:hl7-org:v3\}")
_ANY_BRACES = re.compile(r"\{[^}]*\}")
_ATTRIBUTE = re.compile(r"attribute '([^']+)'")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( ([^)]*) \)")
_VALUE = re.compile(r"[Tt]he value '([^']*)'|'([^']*)' is not a valid value")
_VALUE_ERRORS = ("DATATYPE", "PATTERN", "FACET", "ENUMERATION", "VALUE")
# What a value of each simple type looks like, for the messages.
_TYPE_WORDS = {
    "Uid": "an OID (2.16.156.10011.1.1), a UUID or an HL7 RUID",
    "Timestamp": "an HL7 timestamp yyyy[MM[dd[HH[mm[ss[.f]]]]]] with an optional zone offset "
    "(+0800)",
    "xs:integer": "a whole number",
    "int": "a whole number",
    "xs:boolean": "true or false",
    "bl": "true or false",
    "ts": "an HL7 timestamp yyyyMMddHHmmss[+zzzz]",
    "uid": "an OID, a UUID or an HL7 RUID",
}


def default_schema_path() -> Path:
    return schemas_dir() / "cda" / "CDA-CN.xsd"


class _Compiled:
    """A compiled schema with the lock that guards it: an lxml XMLSchema keeps its error log on
    the object, so two threads validating at once would mix their errors. ``names``: every
    element name the schema declares, to tell an unknown element from a misplaced one."""

    def __init__(self, schema: Any, names: frozenset[str]) -> None:
        self.schema = schema
        self.names = names
        self.lock = threading.Lock()


_CACHE: dict[Path, _Compiled] = {}
_CACHE_LOCK = threading.Lock()
_XS = "{http://www.w3.org/2001/XMLSchema}"


def _compiled(path: Path) -> _Compiled:
    with _CACHE_LOCK:
        found = _CACHE.get(path)
        if found is None:
            found = _CACHE[path] = _compile(path)
        return found


def _parser() -> Any:
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)


def _compile(path: Path) -> _Compiled:
    try:
        document = etree.parse(str(path), _parser())
        return _Compiled(etree.XMLSchema(document), _declared_names(path, document))
    except OSError as exc:
        raise ConfigError(f"cannot read the CDA schema {path}: {exc}") from None
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"the CDA schema {path} does not compile: {exc}") from None


def _declared_names(path: Path, document: Any) -> frozenset[str]:
    """Element names declared in the schema and the local files it includes or imports."""
    names: set[str] = set()
    todo, done = [(path, document)], {path}
    while todo:
        current, tree = todo.pop()
        for declared in tree.iter(f"{_XS}element"):
            if declared.get("name"):
                names.add(declared.get("name"))
        for link in tree.iter(f"{_XS}include", f"{_XS}import"):
            location = link.get("schemaLocation")
            target = (current.parent / location).resolve() if location else None
            if target is None or target in done or not target.is_file():
                continue
            done.add(target)
            todo.append((target, etree.parse(str(target), _parser())))
    return frozenset(names)


@dataclass(frozen=True)
class _Error:
    """One schema error, located in the original document."""

    message: str  # lxml's, with HL7 namespace braces removed
    type_name: str
    line: int | None
    column: int | None
    element: Any  # in the original tree, or None
    attribute: str | None


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
            errors = self._errors(tree)
        if not errors:
            return True
        for error in errors[:MAX_SCHEMA_ISSUES]:
            _add(report, error, self.name)
        if len(errors) > MAX_SCHEMA_ISSUES:
            report.add(
                Severity.ERROR,
                SCHEMA.id,
                f"{len(errors) - MAX_SCHEMA_ISSUES} more schema errors are not listed",
                code="structure",
            )
        return False

    def _errors(self, tree: Any) -> list[_Error]:
        schema = self._compiled.schema
        if schema.validate(tree):
            return []
        known = self._compiled.names
        namespaces = {k: v for k, v in (tree.getroot().nsmap or {}).items() if k}
        found: list[_Error] = []
        seen: set[tuple[int | None, str]] = set()
        # Parents (of the original tree) where a known element was out of place: once it is
        # taken out, the content model of that parent is off its track, and its later
        # "not expected" / "missing child" complaints about known elements are echoes.
        derailed: set[Any] = set()
        stripped: set[tuple[Any, str]] = set()
        work = tree
        original: dict[Any, Any] | None = None
        for _ in range(MAX_ROUNDS):
            removals: list[tuple[Any, str | None]] = []
            for entry in list(schema.error_log):
                target = _element_at(work, entry.path, namespaces)
                element = target if original is None else original.get(target)
                message = _HL7_BRACES.sub("", str(entry.message)).strip()
                attribute = _ATTRIBUTE.search(message)
                unexpected = "is not expected" in message
                parent = element.getparent() if element is not None else None
                echo = (
                    (unexpected and parent in derailed and local_name(element) in known)
                    or ("Missing child" in message and element in derailed)
                    # an attribute taken out for its value is not also "missing"
                    or (attribute is not None and (element, attribute[1]) in stripped)
                )
                key = (entry.line or None, message)
                if key not in seen and not echo:
                    seen.add(key)
                    found.append(
                        _Error(
                            message,
                            str(entry.type_name or ""),
                            entry.line or (element.sourceline if element is not None else None),
                            entry.column or None,
                            element,
                            attribute[1] if attribute else None,
                        )
                    )
                if target is not None and unexpected:
                    removals.append((target, None))
                    if parent is not None and local_name(element) in known:
                        derailed.add(parent)
                elif target is not None and attribute:
                    removals.append((target, attribute[1]))
                    stripped.add((element, attribute[1]))
            if not removals or len(found) >= MAX_SCHEMA_ISSUES:
                break
            if original is None:
                # Validate a copy from now on: the caller's tree stays as it was parsed.
                work = copy.deepcopy(tree)
                pairs = list(zip(work.iter(), tree.iter(), strict=True))
                original = dict(pairs)
                copies = {old: new for new, old in pairs}
                removals = [(copies[target], name) for target, name in removals]
            for target, name in removals:
                _take_out(target, name)
            if schema.validate(work):
                break
        # Rounds find errors out of document order; the vendor reads them top to bottom.
        return sorted(found, key=lambda e: (e.line or 0, e.column or 0))


def _take_out(element: Any, attribute: str | None) -> None:
    if attribute is None:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
        return
    for name in list(element.attrib):
        if name == attribute or etree.QName(name).localname == attribute:
            del element.attrib[name]


def _add(report: Report, error: _Error, schema_name: str) -> None:
    element = error.element
    expression = element_path(element) if element is not None else None
    if expression and error.attribute:
        expression += f"/@{error.attribute}"
    code = "value" if any(t in error.type_name for t in _VALUE_ERRORS) else "structure"
    report.add(
        Severity.ERROR,
        SCHEMA.id,
        f"{explain(error.message, element, error.attribute)} (under {schema_name})",
        code=code,
        line=error.line,
        column=error.column,
        expression=expression,
    )


def explain(message: str, element: Any, attribute: str | None) -> str:
    """lxml's schema message in a vendor's words: what is wrong, on which element, and what is
    allowed there. An unrecognised message is passed on with the namespaces removed."""
    name = local_name(element) if element is not None else _named(message)
    parent = element.getparent() if element is not None else None
    where = f" in `{local_name(parent)}`" if parent is not None else ""
    expected = _expected(message)
    if "is not expected" in message:
        if name in WST_HEADER_ELEMENTS and parent is not None and _in_place(name, parent):
            # Only a schema without the WS/T additions (HL7's CDA.xsd) refuses it here.
            return (
                f"WS/T 500 header element `{name}`{where} is not in this schema (HL7's CDA R2 "
                "schema does not have the WS/T 500/483 header additions; the platform's "
                "built-in schema accepts it)"
            )
        if name in WST_HEADER_ELEMENTS:
            return (
                f"WS/T 500 header element `{name}` is not allowed here{where}; the standard "
                f"places it in `{WST_HEADER_ELEMENTS[name]}`"
            )
        text = f"element `{name}` is not allowed here{where}"
        if expected:
            text += f"; expected here: {expected} (missing, or out of CDA R2's order?)"
        return text
    if "Missing child element" in message:
        return f"`{name}` is incomplete: it lacks {expected or 'a required child element'}"
    if attribute and "is required but missing" in message:
        return f"`{name}` lacks its required attribute `{attribute}`"
    if attribute and "is not allowed" in message:
        return f"attribute `{attribute}` is not allowed on `{name}`"
    if attribute:
        value = _value_of(message)
        kind = _type_of(message)
        shown = f" {value!r}" if value is not None else ""
        text = f"`{name}/@{attribute}`{shown} is not valid"
        if value is not None and value != value.strip():
            text += ": it has leading or trailing spaces"
        elif kind:
            text += f": it must be {kind}"
        elif "enumeration" in message:
            allowed = re.search(r"set \{([^}]*)\}", message)
            if allowed:
                text += f": it must be one of {allowed[1]}"
        return text
    return _ANY_BRACES.sub("", message)


def _in_place(name: str, parent: Any) -> bool:
    """Whether ``parent`` is where the standard puts the WS/T header element ``name``."""
    places = WST_HEADER_ELEMENTS[name].replace(" or ", " ").split()
    return local_name(parent) in {place.split("/")[-1] for place in places}


def _named(message: str) -> str:
    found = re.match(r"Element '([^']+)'", message)
    return _ANY_BRACES.sub("", found[1]) if found else "?"


def _expected(message: str) -> str:
    found = _EXPECTED.search(message)
    if not found:
        return ""
    names: list[str] = []
    other = False
    for item in (part.strip() for part in found[1].split(",")):
        if item.startswith("##other"):
            other = True
        elif item:
            names.append(_ANY_BRACES.sub("", item))
    wanted = [n for n in names if n not in _INFRASTRUCTURE] or names
    text = ", ".join(f"`{n}`" for n in wanted)
    if other:
        text += (" or " if text else "") + "an extension element of another namespace"
    return text


def _value_of(message: str) -> str | None:
    found = _VALUE.search(message)
    if not found:
        return None
    return found[1] if found[1] is not None else found[2]


def _type_of(message: str) -> str | None:
    found = re.search(r"atomic type '([^']+)'", message)
    if found:
        name = found[1]
        return _TYPE_WORDS.get(name, _TYPE_WORDS.get(name.split(":")[-1], f"of type {name}"))
    if "pattern" in message:
        for type_name, words in _TYPE_WORDS.items():
            if type_name == "Timestamp" and "[0-9]{1,8}|" in message:
                return words
            if type_name == "Uid" and "[0-2](" in message:
                return words
        return "in the format the schema requires"
    return None


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
