"""A parsed CDA document as the rules see it: namespace-aware look-ups by plain element paths, and
the location (line, element path) of what an issue is about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.validators.report import Report, Severity

HL7_NS = "urn:hl7-org:v3"

LOINC = "2.16.840.1.113883.6.1"
DATA_ELEMENT_SYSTEM = "2.16.156.10011.2.2.1"
GENDER_SYSTEM = "2.16.156.10011.2.3.3.4"
ICD10_SYSTEM = "2.16.156.10011.2.3.3.11"
ID_ROOT_PREFIX = "2.16.156.10011.1."
DOCUMENT_ID_ROOT = "2.16.156.10011.1.1"
RESIDENT_ID_ROOT = "2.16.156.10011.1.3"
STAFF_ROOT = "2.16.156.10011.1.4"
INSTITUTION_ROOT = "2.16.156.10011.1.5"
AUTHOR_ROOT = "2.16.156.10011.1.7"


def local_name(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return str(etree.QName(tag).localname)


def element_path(element: Any) -> str:
    """``/ClinicalDocument/component/structuredBody/component[2]/section``: local names, with a
    1-based position among same-named siblings where there are several."""
    steps: list[str] = []
    current = element
    while current is not None:
        name = local_name(current)
        prefix = _prefix(current)
        parent = current.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(current) + 1}]"
        steps.append(f"{prefix}{name}")
        current = parent
    return "/" + "/".join(reversed(steps))


def _prefix(element: Any) -> str:
    """Elements outside the HL7 namespace (sdtc: and vendor extensions) keep their prefix."""
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    namespace = etree.QName(tag).namespace
    if namespace == HL7_NS:
        return ""
    return f"{element.prefix}:" if element.prefix else ""


@dataclass
class CdaDocument:
    """The tree plus the namespace its ClinicalDocument root is in (HL7's, or none for the
    namespace-less copies found in the wild, which are still classified for a precise message)."""

    tree: Any
    namespace: str

    @classmethod
    def of(cls, tree: Any) -> CdaDocument:
        root = tree.getroot()
        tag = root.tag if isinstance(root.tag, str) else ""
        namespace = etree.QName(tag).namespace or "" if tag else ""
        return cls(tree, namespace)

    @property
    def root(self) -> Any:
        return self.tree.getroot()

    @property
    def is_clinical_document(self) -> bool:
        return local_name(self.root) == "ClinicalDocument" and self.namespace in (HL7_NS, "")

    def qualify(self, path: str) -> str:
        """``a/b`` → ``{urn:hl7-org:v3}a/{urn:hl7-org:v3}b``; ``.``, ``..`` and ``*`` kept."""
        if not self.namespace:
            return path
        steps = []
        for step in path.split("/"):
            if step in ("", ".", "..", "*") or step.startswith("{"):
                steps.append(step)
            else:
                steps.append(f"{{{self.namespace}}}{step}")
        return "/".join(steps)

    def find(self, path: str, start: Any = None) -> Any:
        return (self.root if start is None else start).find(self.qualify(path))

    def findall(self, path: str, start: Any = None) -> list[Any]:
        return list((self.root if start is None else start).findall(self.qualify(path)))

    def iter(self, name: str, start: Any = None) -> list[Any]:
        tag = f"{{{self.namespace}}}{name}" if self.namespace else name
        return list((self.root if start is None else start).iter(tag))


def attribute(element: Any, name: str) -> str | None:
    """A stripped attribute value; None when absent or blank."""
    if element is None:
        return None
    value = element.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def add_at(
    report: Report,
    severity: Severity,
    rule_id: str,
    message: str,
    *,
    element: Any,
    attr: str | None = None,
    code: str = "invalid",
    path: str | None = None,
) -> None:
    """Add an issue located at ``element`` (its line and path, ``/@attr`` appended), or at
    ``path`` when the element itself is missing (then the line is its nearest existing
    ancestor's, passed as ``element``)."""
    expression = path or element_path(element)
    if attr and not path:
        expression += f"/@{attr}"
    line = element.sourceline if element is not None else None
    report.add(severity, rule_id, message, code=code, line=line, expression=expression)
