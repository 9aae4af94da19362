"""Values the models accept but FHIR R4 does not: over-long ids, attachments whose data is not
base64 or whose stated size is wrong, and Bundle entries without a usable fullUrl."""

from __future__ import annotations

import base64
import binascii
import re

from hie.validators.fhir_rules.tree import Tree
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
SELF_LINK = register(
    "fhir.value.self-link",
    summary="A Bundle has at most one link with relation 'self'.",
    fix="Keep one self link: the URL that produced this Bundle.",
)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_FREE_ENTRIES = ("transaction", "batch", "transaction-response", "batch-response")


def check_values(tree: Tree, report: Report) -> None:
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
    if isinstance(links, list):
        selves = [
            link for link in links if isinstance(link, dict) and link.get("relation") == "self"
        ]
        if len(selves) > 1:
            report.add(
                Severity.ERROR,
                SELF_LINK.id,
                f"{path}.link has {len(selves)} links with relation 'self'",
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
