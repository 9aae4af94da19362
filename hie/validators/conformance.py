"""What a FHIR validation knows beyond the resource: conformance resources and a policy.

HL7's validator is given an implementation guide's resources (``-ig``): the Questionnaires a
QuestionnaireResponse answers, the StructureDefinitions of profiles and extensions, ValueSets and
CodeSystems. :class:`Conformance` holds such resources by canonical URL (``hie validate --ig``
loads them from files and folders); the R4 core's own definitions ship in ``schemas/fhir`` and are
read by the rule families themselves. :class:`Policy` holds the choices HL7's validator leaves to
its user (unknown extensions, security checks, example URLs). :class:`Context` is both, and is what
the rule families are given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resource types that are conformance resources: identified by a canonical URL.
CANONICAL_TYPES = frozenset(
    {
        "StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "Questionnaire",
        "NamingSystem", "SearchParameter", "OperationDefinition", "CapabilityStatement",
        "ImplementationGuide", "Measure", "Library", "PlanDefinition", "ActivityDefinition",
        "StructureMap", "GraphDefinition", "CompartmentDefinition", "MessageDefinition",
    }
)  # fmt: skip


def split_canonical(canonical: str) -> tuple[str, str | None]:
    """``url|version`` into (url, version); a fragment (``#x``) is kept with the URL."""
    url, _, version = canonical.partition("|")
    return url, version or None


class Conformance:
    """Conformance resources by canonical URL (and by ``url|version``)."""

    def __init__(self, resources: Iterable[dict[str, Any]] = ()) -> None:
        self._by_url: dict[str, list[dict[str, Any]]] = {}
        self.sources: list[str] = []  # the files loaded, for messages
        for resource in resources:
            self.add(resource)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_url.values())

    def add(self, resource: dict[str, Any]) -> None:
        """Index ``resource`` (a Bundle's entries are indexed one by one)."""
        rtype = resource.get("resourceType")
        if rtype == "Bundle":
            for entry in resource.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    self.add(entry["resource"])
            return
        url = resource.get("url")
        if rtype in CANONICAL_TYPES and isinstance(url, str) and url:
            self._by_url.setdefault(url, []).append(resource)

    def resolve(self, canonical: str, *types: str) -> dict[str, Any] | None:
        """The resource ``canonical`` names (of one of ``types`` if given), the highest version
        when the canonical names none."""
        url, version = split_canonical(canonical)
        candidates = [
            r for r in self._by_url.get(url, []) if not types or r.get("resourceType") in types
        ]
        if version is not None:
            candidates = [r for r in candidates if r.get("version") == version]
        if not candidates:
            return None
        return max(candidates, key=lambda r: str(r.get("version") or ""))

    def known(self, canonical: str) -> bool:
        return split_canonical(canonical)[0] in self._by_url

    def of_type(self, resource_type: str) -> Iterator[dict[str, Any]]:
        for resources in self._by_url.values():
            for resource in resources:
                if resource.get("resourceType") == resource_type:
                    yield resource

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Conformance:
        """Read conformance resources from JSON or XML files and folders (recursively).

        Raises ValueError naming the file that cannot be read as a FHIR resource.
        """
        conformance = cls()
        for path in paths:
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            for file in files:
                if file.is_file() and file.suffix in (".json", ".xml"):
                    conformance.add(_read(file))
                    conformance.sources.append(str(file))
        return conformance


def _read(file: Path) -> dict[str, Any]:
    data = file.read_bytes()
    if file.suffix == ".xml":
        from hie.validators.fhir_xml import parse_fhir_xml

        resource, report = parse_fhir_xml(data, max_bytes=50 * 1024 * 1024)
    else:
        from hie.validators.fhir import parse_json

        resource, report = parse_json(data)
    if resource is None:
        problem = report.issues[0].message if report.issues else "unreadable"
        raise ValueError(f"{file}: not a FHIR resource ({problem})")
    return resource


@dataclass(frozen=True)
class Policy:
    """Choices HL7's validator leaves to its user; the defaults are HL7's."""

    # An extension whose definition is neither in R4, the HL7 extensions pack nor the loaded
    # conformance resources is an error, unless its URL starts with one of these (or any is True).
    any_extension: bool = False
    extension_domains: tuple[str, ...] = ()
    # Strings that look like HTML markup are an error (HL7's -security-checks).
    security_checks: bool = False
    # URLs at example.org are allowed (HL7 refuses them with -no-examples... in IGs).
    examples: bool = True
    # Markdown may carry raw HTML tags (HL7 warns or errors with no-html-in-markdown).
    html_in_markdown: bool = True


@dataclass(frozen=True)
class Context:
    conformance: Conformance = field(default_factory=Conformance)
    policy: Policy = field(default_factory=Policy)


# The platform's server: no implementation guide loaded, extensions from any domain accepted
# (hospitals' systems carry local extensions the regulator does not define), the rest as HL7.
SERVER = Context(policy=Policy(any_extension=True))
STANDALONE = Context()


def load_context(paths: Iterable[Path], policy: Policy) -> Context:
    return Context(Conformance.load(paths), policy)
