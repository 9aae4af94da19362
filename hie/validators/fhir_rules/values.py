"""Values the models accept but FHIR R4 (and HL7's validator) do not: over-long ids and strings,
attachments whose data is not base64 or whose stated size is wrong, Bundle entries without a
usable fullUrl, relative canonical URLs and code systems, malformed urn:uuid values; and, as the
:class:`~hie.validators.conformance.Policy` asks, example URLs, HTML in strings and markdown."""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter

from hie.validators.conformance import CANONICAL_TYPES, SERVER, Context
from hie.validators.fhir_rules.tree import Node, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

RESOURCE_ID = register(
    "fhir.value.id",
    summary="A resource id is 1 to 64 characters of letters, digits, '-' and '.' (FHIR id type).",
    fix="Use a shorter id, e.g. a UUID without braces, or your system's key.",
)
ATTACHMENT = register(
    "fhir.value.attachment",
    summary="Attachment.data is base64, and Attachment.size, when given, is the size of the "
    "decoded data.",
    fix="Encode the content with standard base64 (A-Z a-z 0-9 + /, padded with =) and state "
    "its size in bytes before encoding, or leave size out.",
)
FULL_URL = register(
    "fhir.value.full-url",
    summary="Outside transactions and batches, each Bundle entry has a fullUrl, and every fullUrl "
    "is an absolute URI (http(s)://…, urn:uuid:…, urn:oid:…).",
    fix="Give each entry the absolute URL of its resource, or urn:uuid:<uuid> for one with no "
    "RESTful location.",
)
LINK = register(
    "fhir.value.link",
    summary="A Bundle has at most one link of each relation (self, first, previous, next, last).",
    fix="Keep one link per relation: self is the URL that produced this Bundle, the others "
    "the pages around it.",
)

CANONICAL = register(
    "fhir.value.canonical",
    summary="A canonical URL (a conformance resource's url, or a canonical element such as "
    "meta.profile or Measure.library) is absolute, unless it is a #fragment reference to a "
    "contained resource.",
    fix="Write the full URL the resource is published under, e.g. "
    "http://example.hospital.cn/fhir/Library/screening, not Library/screening.",
)
CODE_SYSTEM = register(
    "fhir.value.code-system",
    summary="Coding.system and ValueSet.compose.include.system are the absolute URI of a code "
    "system: not a local reference, and not a value set's URL.",
    fix="Use the code system's canonical URI (e.g. http://loinc.org, "
    "http://terminology.hl7.org/CodeSystem/...); a value set URL "
    "(http://hl7.org/fhir/ValueSet/...) names the set, not the system its codes come from.",
)
UUID = register(
    "fhir.value.uuid",
    summary="A urn:uuid: value is a valid UUID in lower case (RFC 4122: 8-4-4-4-12 hex digits).",
    fix="Write urn:uuid: followed by the UUID in lower case, e.g. "
    "urn:uuid:6a2ee390-978e-42c6-8f88-c17dff3bd8a3.",
)
STRING_LENGTH = register(
    "fhir.value.string-length",
    summary="A string is at most 1 MB (1048576 bytes).",
    fix="Send large content as an Attachment (base64 data or a url), not as a string.",
)
EXAMPLE_URL = register(
    "fhir.value.example-url",
    summary="When examples are not allowed, no URL points at example.org.",
    fix="Replace the example.org URL with the real one.",
)
HTML_IN_STRING = register(
    "fhir.value.html-string",
    summary="With security checks on, strings contain nothing that looks like an HTML tag.",
    fix="Remove the markup from the string (or escape < and >); formatted text belongs in the "
    "narrative or a markdown element.",
)
HTML_IN_MARKDOWN = register(
    "fhir.value.html-markdown",
    summary="When HTML in markdown is not allowed, markdown contains no raw HTML tags.",
    fix="Use markdown syntax instead of HTML tags, or escape the < as \\<.",
)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_BARE_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_EXAMPLE_HOST = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(?:[^/?#:]*\.)?example\.org\b"
)
_MAX_STRING = 1024 * 1024
_URI_TYPES = ("uri", "url", "canonical", "uuid", "oid")
# Resources identified by a canonical url (R4's definitional and conformance resources).
_CANONICAL_RESOURCES = CANONICAL_TYPES | {
    "ChargeItemDefinition", "EffectEvidenceSynthesis", "EventDefinition", "Evidence",
    "EvidenceVariable", "ExampleScenario", "ResearchDefinition", "ResearchElementDefinition",
    "RiskEvidenceSynthesis", "TerminologyCapabilities", "TestScript",
}  # fmt: skip
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_FREE_ENTRIES = ("transaction", "batch", "transaction-response", "batch-response")


def check_values(tree: Tree, report: Report, context: Context = SERVER) -> None:
    for resource in tree.resources:
        identifier = resource.data.get("id")
        if isinstance(identifier, str) and not _ID.fullmatch(identifier):
            shown = identifier if len(identifier) <= 80 else identifier[:77] + "..."
            report.add(
                Severity.ERROR,
                RESOURCE_ID.id,
                f"{resource.path}.id: {shown!r} ({len(identifier)} characters) is not a FHIR id",
                code="value",
                expression=f"{resource.path}.id",
            )
        if resource.type == "Bundle":
            _bundle(resource.data, resource.path, report)
    for node in tree.of_type("Attachment"):
        _attachment(node.value, node.path, report)
    _canonicals(tree, report, context)
    _code_systems(tree, report)
    for type_code in _URI_TYPES:
        for node in tree.of_type(type_code):
            _uri(node, report, context)
    if not context.policy.examples:
        for node in tree.at("Extension.url"):
            _uri(node, report, context)
    for type_code in ("string", "markdown", "System.String"):
        for node in tree.of_type(type_code):
            _string(node, report, context)


def _error(report: Report, rule: str, node: Node, message: str, code: str = "value") -> None:
    report.add(Severity.ERROR, rule, f"{node.path}: {message}", code=code, expression=node.path)


def _canonicals(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        url = resource.data.get("url")
        if (
            resource.type in _CANONICAL_RESOURCES
            and isinstance(url, str)
            and not _SCHEME.match(url)
        ):
            where = "in a contained resource " if resource.role == "contained" else ""
            report.add(
                Severity.ERROR,
                CANONICAL.id,
                f"{resource.path}.url: canonical URLs {where}must be absolute, not {url!r}",
                code="value",
                expression=f"{resource.path}.url",
            )
    severity = Severity.WARNING if context.policy.relative_canonicals else Severity.ERROR
    for node in tree.of_type("canonical"):
        if not node.value.startswith("#") and not _SCHEME.match(node.value):
            report.add(
                severity,
                CANONICAL.id,
                f"{node.path}: canonical URLs must be absolute unless they are a #fragment "
                f"reference to a contained resource, not {node.value!r}",
                code="value",
                expression=node.path,
            )


def _code_systems(tree: Tree, report: Report) -> None:
    systems = [
        node
        for node in tree.of_type("uri")
        if node.definition in ("Coding.system", "ValueSet.compose.include.system")
    ]
    for node in systems:
        system = node.value
        if _BARE_OID.fullmatch(system):
            # HL7 rejects it, but the platform's report spec accepts the bare national OIDs
            # vendors write (e.g. 2.16.156.10011.2.4 for document types): advise, do not reject.
            report.add(
                Severity.WARNING,
                CODE_SYSTEM.id,
                f"{node.path}: write the OID as urn:oid:{system}; a bare OID is not a URI",
                code="value",
                expression=node.path,
            )
        elif not _SCHEME.match(system):
            hint = (
                "; to use a contained code system, give its full url and the valueset-system "
                "extension"
                if node.definition.startswith("ValueSet")
                else ""
            )
            _error(
                report,
                CODE_SYSTEM.id,
                node,
                f"{system!r} is not an absolute URI: a code system is named by its full "
                f"canonical URI, not a local reference{hint}",
            )
        elif system.startswith(("http://hl7.org/fhir/ValueSet/", "https://hl7.org/fhir/ValueSet/")):
            _error(
                report,
                CODE_SYSTEM.id,
                node,
                f"{system!r} is a value set, not a code system",
            )


def _uri(node: Node, report: Report, context: Context) -> None:
    value = node.value
    if value[:9].lower() == "urn:uuid:":
        # A #fragment or a canonical's |version may follow the UUID.
        uuid = value.split("#", 1)[0].split("|", 1)[0]
        if not _UUID.fullmatch(uuid):
            _error(report, UUID.id, node, f"{uuid!r} is not a valid lower-case UUID")
    if not context.policy.examples and _EXAMPLE_HOST.match(value):
        _error(report, EXAMPLE_URL.id, node, f"example URLs are not allowed here ({value})")


def _string(node: Node, report: Report, context: Context) -> None:
    value = node.value
    # A UTF-8 character takes at most 4 bytes: most strings need no encoding to rule them out.
    if len(value) * 4 > _MAX_STRING and len(value.encode("utf-8")) > _MAX_STRING:
        _error(
            report,
            STRING_LENGTH.id,
            node,
            f"the value is {len(value.encode('utf-8'))} bytes, longer than the 1 MB "
            f"({_MAX_STRING} bytes) FHIR allows",
        )
        return
    if node.type == "string" and context.policy.security_checks and "<" in value:
        tag = _TAG.search(value)
        if tag is not None:
            _error(
                report,
                HTML_IN_STRING.id,
                node,
                f"the string contains what looks like an HTML tag ({tag.group()[:40]}), which "
                "is not allowed for security reasons",
                code="security",
            )
    if node.type == "markdown" and not context.policy.html_in_markdown and "<" in value:
        tag = _TAG.search(value)
        if tag is not None:
            _error(
                report,
                HTML_IN_MARKDOWN.id,
                node,
                f"the markdown contains a raw HTML tag ({tag.group()[:40]}); HTML in markdown "
                "is not allowed here",
            )


def _attachment(value: object, path: str, report: Report) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        return
    try:
        decoded = base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError):
        report.add(
            Severity.ERROR,
            ATTACHMENT.id,
            f"{path}.data is not valid base64",
            code="value",
            expression=f"{path}.data",
        )
        return
    size = value.get("size")
    if isinstance(size, int) and size != len(decoded):
        report.add(
            Severity.ERROR,
            ATTACHMENT.id,
            f"{path}.size says {size} bytes but the data holds {len(decoded)}",
            code="value",
            expression=f"{path}.size",
        )


def _bundle(bundle: dict[str, object], path: str, report: Report) -> None:
    links = bundle.get("link")
    relations = Counter(
        link.get("relation")
        for link in (links if isinstance(links, list) else [])
        if isinstance(link, dict) and isinstance(link.get("relation"), str)
    )
    for relation, count in relations.items():
        if count > 1:
            report.add(
                Severity.ERROR,
                LINK.id,
                f"{path}.link has {count} links with relation {relation!r}; one is allowed",
                code="invariant",
                expression=f"{path}.link",
            )
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    free = bundle.get("type") in _FREE_ENTRIES
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        where = f"{path}.entry[{index}].fullUrl"
        full_url = entry.get("fullUrl")
        if full_url is None:
            if not free and "resource" in entry:
                report.add(
                    Severity.ERROR,
                    FULL_URL.id,
                    f"{path}.entry[{index}] has no fullUrl; outside transactions and batches "
                    "each entry needs one",
                    code="required",
                    expression=where,
                )
        elif isinstance(full_url, str) and not _ABSOLUTE.fullmatch(full_url):
            report.add(
                Severity.ERROR,
                FULL_URL.id,
                f"{where}: {full_url!r} is not an absolute URI",
                code="value",
                expression=where,
            )
