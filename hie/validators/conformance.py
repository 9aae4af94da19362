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
            exact = [r for r in candidates if r.get("version") == version]
            # As HL7's validator matches versions: "0.2" names the latest 0.2.x.
            candidates = exact or [
                r for r in candidates if str(r.get("version") or "").startswith(version + ".")
            ]
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
                    conformance.add_file(file)
        return conformance

    def add_file(self, file: Path) -> dict[str, Any]:
        """Read and index the resource in ``file`` (JSON or XML), and return it.

        Raises ValueError naming the file when it is not a FHIR resource.
        """
        resource = _read(file)
        self.add(resource)
        self.sources.append(str(file))
        return resource


def _read(file: Path) -> dict[str, Any]:
    data = file.read_bytes()
    if file.suffix == ".xml":
        from hie.validators.fhir_xml import read_fhir_xml

        # As with JSON, what the reader cannot place (an element R4 lacks) is left out, not fatal.
        read = read_fhir_xml(data, max_bytes=50 * 1024 * 1024)
        resource, report = read.resource, read.report
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
    # JSON may carry // and /* */ comments (HL7's allow-comments; by default they are an error).
    json_comments: bool = False
    # A relative canonical URL (Questionnaire/q1, as the R4 examples write them) is a warning,
    # not an error as in HL7's validator.
    relative_canonicals: bool = False
    # A Coding's display that is not one of its code's displays is a warning, not an error
    # (HL7's -display-issues-are-warnings): the code carries the meaning, the display is text.
    display_warnings: bool = False
    # A code that no terminology server can know in an external code system not bundled here
    # (a SNOMED CT code that is no concept identifier) is a warning, not an error as in HL7's
    # validator: HAPI, whose verdict the server follows, checks no external terminology.
    code_warnings: bool = False
    # An Observation with a vital sign code (LOINC 8310-5, ...) is checked against R4's vital
    # signs profile for it (bodytemp, ...), as HL7's validator does; False: only a warning.
    vital_signs_profiles: bool = True
    # RESTful references (Group/1) are taken to point at a resource of the type they name, so a
    # profile's targetProfile types are checked against it (HL7's -assumeValidRestReferences).
    valid_rest_references: bool = False
    # Contained resources are validated, and dom-3 (each is referred to) checked; False: they
    # are left out entirely, as HL7's validator does with its contained-resource policy IGNORE
    # (validateContains), e.g. for senders whose contained copies are not theirs to fix.
    validate_contained: bool = True
    # A relative reference (Patient/1) made inside a Bundle or Parameters must name a resource
    # of that Bundle or Parameters, as with HL7's reference policy CHECK_EXISTS (and stronger)
    # short of a server to ask; by default (HL7's IGNORE) an unresolved reference is no error.
    check_references: bool = False
    # Rules for resources HL7 publishes (HL7's -forPublication): the owning work group.
    for_publication: bool = False


@dataclass(frozen=True)
class Context:
    conformance: Conformance = field(default_factory=Conformance)
    policy: Policy = field(default_factory=Policy)
    # Profiles every validated (top-level) resource is checked against besides those it claims,
    # as with HL7's -profile (``hie validate --profile URL``).
    profiles: tuple[str, ...] = ()
    # The platform's own rules besides FHIR validity: the catalog (which resource types and
    # Bundle types it stores), resident ID numbers, identifier systems, ICD-10 codes, CDA
    # attachments. False for ``hie validate --mode hl7`` (FHIR validity only).
    platform_rules: bool = True
    # Profiles for some entries of a Bundle, as (rule, canonical) pairs, as with HL7's
    # ``-bundle RULE PROFILE`` (``hie validate --bundle-profile RULE=URL``). The rule is
    # ``Type:n`` (the n-th entry of that type, from 0), ``Type`` (every entry of that type) or
    # ``:n`` (entry n).
    entry_profiles: tuple[tuple[str, str], ...] = ()


# The platform's server: no implementation guide loaded, extensions from any domain accepted
# (hospitals' systems carry local extensions the regulator does not define), displays in the
# hospital's own words (e.g. Chinese) only warned about, vital signs that miss R4's vital signs
# profile (category, UCUM units) only warned about (feeds that omit them still count), relative
# canonical URLs (Questionnaire/q1: they resolve on the server that holds them) only warned
# about; a relative or conditional reference (Organization/1, Organization?identifier=x) names
# a resource of its type on this server, so that type is checked against the element's
# targets; the rest as HL7.
SERVER = Context(
    policy=Policy(
        any_extension=True,
        display_warnings=True,
        code_warnings=True,
        vital_signs_profiles=False,
        relative_canonicals=True,
        valid_rest_references=True,
    )
)
STANDALONE = Context()


def entry_rule_matches(rule: str, resource_type: str, position: int, of_type: int) -> bool:
    """Whether a ``-bundle`` rule picks the entry at ``position`` of the Bundle, the
    ``of_type``-th (from 0) of its ``resource_type``."""
    rtype, colon, index = rule.partition(":")
    if not colon and rtype.isdigit():
        rtype, index = "", rtype
    if not rtype and not index:
        return False
    if rtype and rtype != resource_type:
        return False
    if index:
        return index.isdigit() and int(index) == (of_type if rtype else position)
    return True


def entry_profiles(context: Context, bundle: dict[str, Any], position: int) -> list[str]:
    """The profiles ``context.entry_profiles`` gives the resource of ``bundle``'s entry at
    ``position``."""
    if not context.entry_profiles:
        return []
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not 0 <= position < len(entries):
        return []
    types = [
        e["resource"].get("resourceType")
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        else None
        for e in entries
    ]
    rtype = types[position]
    if not isinstance(rtype, str):
        return []
    of_type = types[:position].count(rtype)
    return [
        canonical
        for rule, canonical in context.entry_profiles
        if entry_rule_matches(rule, rtype, position, of_type)
    ]


def load_context(
    paths: Iterable[Path],
    policy: Policy,
    profiles: Iterable[str] = (),
    *,
    platform_rules: bool = True,
    entry_profiles: Iterable[tuple[str, str]] = (),
) -> Context:
    return Context(
        Conformance.load(paths), policy, tuple(profiles), platform_rules, tuple(entry_profiles)
    )
