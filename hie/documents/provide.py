"""ITI-65 Provide Document Bundle on ``POST /fhir``: a transaction Bundle holding one
SubmissionSet List, DocumentReferences and their Binary content, stored all or nothing.

The Bundle is checked before the transaction (FHIR validity of each entry, then the MHD metadata
rules of the Minimal or, when claimed, Comprehensive profile, hash and size against the Binary);
inside it, a CDA Binary is stored as a CDA record exactly as ``POST /cda`` would (so it counts
and has its registry entry), other content in ``document_content``, and each DocumentReference
becomes the registry entry; a ``relatesTo`` replace marks its target ``superseded``. Any failure
refuses the whole Bundle with an OperationOutcome locating it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from hie.catalog import Catalog
from hie.cda.submission import store_attached_cda
from hie.documents.model import (
    CDA_MEDIA_TYPE,
    ENTRY_UUID_SYSTEM,
    author_tokens,
    codeable_tokens,
    identifier_tokens,
    retrieve_path,
    sha1_base64,
    tokens,
)
from hie.fhir.calls import Call
from hie.fhir.dates import date_range, period_range
from hie.fhir.responses import Answer, bundle
from hie.fhir.server import FhirServer
from hie.fhir.session import WriteRefused, WriteSession
from hie.fhir.transactions import Upload
from hie.storage import documents as store
from hie.storage.documents import DocumentRow
from hie.storage.records import get_head
from hie.validators import Report, Severity
from hie.validators.conformance import SERVER
from hie.validators.fhir import validate_resource
from hie.validators.fhir_rules.attachments import CDA_MEDIA_TYPES
from hie.validators.rules import register
from hie.validators.xml import parse_xml

MHD = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
# FHIR validity without the platform's own rules (the catalog holds no List or Binary table):
# the CDA content is checked as a CDA upload instead.
_VALIDITY = replace(SERVER, platform_rules=False)

BUNDLE = register(
    "mhd.bundle",
    summary="An ITI-65 Provide Document Bundle is a transaction of one SubmissionSet List, "
    "DocumentReferences and the Binary each points at.",
    fix="Send Bundle.type transaction with POST entries: one List (code submissionset), each "
    "DocumentReference with content.attachment.url naming a Binary entry's fullUrl.",
)
METADATA = register(
    "mhd.metadata",
    summary="The SubmissionSet and DocumentReferences carry the elements MHD requires.",
    fix="Fill the element named (Minimal: masterIdentifier, status current, subject, "
    "attachment contentType and url; Comprehensive adds type, category, securityLabel, format, "
    "facilityType, practiceSetting, hash and size).",
)
HASH = register(
    "mhd.hash",
    summary="attachment.hash is the SHA-1 of the Binary's bytes, base64.",
    fix="Compute the SHA-1 over the exact bytes sent in the Binary and send it base64-encoded.",
)
SIZE = register(
    "mhd.size",
    summary="attachment.size is the Binary's length in bytes.",
    fix="Send the number of bytes of the decoded Binary content.",
)
PATIENT = register(
    "mhd.patient",
    summary="The documents' subject is a known Patient of the submitting institution, the same "
    "for every DocumentReference and the SubmissionSet.",
    fix="Store the Patient first (POST /fhir/Patient) and refer to it as Patient/<id>.",
)
REPLACE = register(
    "mhd.replace",
    summary="A relatesTo replace names a current DocumentReference of the same institution.",
    fix="Name the DocumentReference being replaced as DocumentReference/<id>, as returned by "
    "ITI-67; a superseded document cannot be replaced again.",
)
DUPLICATE = register(
    "mhd.duplicate",
    summary="A DocumentReference's masterIdentifier is unique in the registry.",
    fix="Give a new document a new unique id; to correct a document, replace it (relatesTo).",
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _profiles(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _is_submission_set(resource: Any) -> bool:
    if not isinstance(resource, dict) or resource.get("resourceType") != "List":
        return False
    if any(p.startswith(MHD) and "SubmissionSet" in p for p in _profiles(resource)):
        return True
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return any(
        isinstance(c, dict) and c.get("code") == "submissionset"
        for c in (codings if isinstance(codings, list) else [])
    )


def is_provide_bundle(resource: Any) -> bool:
    """A transaction Bundle carrying a SubmissionSet List: ITI-65, not a plain transaction."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Bundle":
        return False
    entries = resource.get("entry")
    return any(
        isinstance(e, dict) and _is_submission_set(e.get("resource"))
        for e in (entries if isinstance(entries, list) else [])
    )


@dataclass
class Submitted:
    """One DocumentReference of the Bundle with its content."""

    position: int
    resource: dict[str, Any]
    data: bytes
    content_type: str
    cda_id: str | None  # the CDA's "<root>^<extension>" when the content is a CDA document
    subject: str  # "Patient/<id>"
    replaces: str | None  # the id of the DocumentReference it replaces


@dataclass
class Plan:
    documents: list[Submitted]
    positions: dict[int, str]  # other entries' position → their type, for the response


def _where(position: int, element: str = "") -> str:
    return f"Bundle.entry[{position}].resource" + (f".{element}" if element else "")


def _patient(reference: Any) -> str | None:
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    text: str = reference["reference"]
    if "Patient/" not in text:
        return None
    tail = text.rsplit("Patient/", 1)[1].split("/_history", 1)[0]
    return f"Patient/{tail}" if tail and "/" not in tail else None


def _cda_id(data: bytes) -> str | None:
    parsed = parse_xml(data)
    if parsed.tree is None:
        return None
    element = parsed.tree.getroot().find("{urn:hl7-org:v3}id")
    root = None if element is None else element.get("root")
    extension = None if element is None else element.get("extension")
    if not root:
        return None
    return f"{root}^{extension}" if extension else str(root)


def check_bundle(resource: dict[str, Any], catalog: Catalog) -> tuple[Plan, Report]:
    """The MHD checks that need no database: what to store, or every problem found."""
    report = Report()
    plan = Plan([], {})

    def problem(rule: str, message: str, where: str | None, code: str = "required") -> None:
        report.add(Severity.ERROR, rule, message, code=code, expression=where)

    if resource.get("type") != "transaction":
        problem(BUNDLE.id, "an ITI-65 Bundle is a transaction", "Bundle.type", "value")
    entries = _list(resource.get("entry"))
    binaries: dict[str, tuple[bytes, str]] = {}
    references: list[tuple[int, dict[str, Any]]] = []
    submission_sets: list[tuple[int, dict[str, Any]]] = []
    for position, entry in enumerate(entries):
        item = entry.get("resource") if isinstance(entry, dict) else None
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(item, dict):
            problem(BUNDLE.id, "every entry holds a resource", f"Bundle.entry[{position}]")
            continue
        kind = item.get("resourceType")
        request = _dict(entry.get("request"))
        if request.get("method") != "POST":
            problem(BUNDLE.id, "ITI-65 entries are POSTs", f"Bundle.entry[{position}].request")
        if not isinstance(full_url, str) or not full_url:
            problem(BUNDLE.id, "every entry has a fullUrl", f"Bundle.entry[{position}].fullUrl")
        for issue in validate_resource(
            item, catalog=catalog, path=_where(position), context=_VALIDITY
        ).report.errors:
            report.issues.append(issue)
        if kind == "Binary":
            data, content_type = _binary(item, position, problem)
            if isinstance(full_url, str):
                binaries[full_url] = (data, content_type)
            plan.positions[position] = "Binary"
        elif kind == "DocumentReference":
            references.append((position, item))
        elif kind == "List" and _is_submission_set(item):
            submission_sets.append((position, item))
            plan.positions[position] = "List"
        elif kind == "List":
            plan.positions[position] = "List"  # a Folder: accepted, not kept (no ITI-66 yet)
        else:
            problem(BUNDLE.id, f"an ITI-65 Bundle holds no {kind}", _where(position), "value")
    if len(submission_sets) != 1:
        problem(BUNDLE.id, "an ITI-65 Bundle holds exactly one SubmissionSet List", "Bundle")
    if not references:
        problem(BUNDLE.id, "an ITI-65 Bundle holds at least one DocumentReference", "Bundle")
    comprehensive = any("Comprehensive" in p for p in _profiles(resource))
    subjects: set[str] = set()
    for position, item in submission_sets:
        _check_submission_set(item, position, entries, references, comprehensive, problem)
        if item.get("subject") is not None:
            subjects.add(_patient(item.get("subject")) or "?")
    for position, item in references:
        comprehensive_here = comprehensive or any("Comprehensive" in p for p in _profiles(item))
        submitted = _check_reference(item, position, binaries, comprehensive_here, problem)
        if submitted is not None:
            subjects.add(submitted.subject)
            plan.documents.append(submitted)
    if len(subjects) > 1:
        problem(
            PATIENT.id,
            "every DocumentReference and the SubmissionSet name one patient",
            "Bundle",
            "value",
        )
    return plan, report


def _binary(item: dict[str, Any], position: int, problem: Any) -> tuple[bytes, str]:
    content_type = item.get("contentType")
    if not isinstance(content_type, str) or not content_type:
        problem(METADATA.id, "a Binary has a contentType", _where(position, "contentType"))
        content_type = ""
    try:
        data = base64.b64decode(str(item.get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        problem(BUNDLE.id, "Binary.data is not base64", _where(position, "data"), "value")
        data = b""
    if not data:
        problem(METADATA.id, "a Binary carries its document in data", _where(position, "data"))
    return data, content_type


def _check_submission_set(
    item: dict[str, Any],
    position: int,
    entries: list[Any],
    references: list[tuple[int, dict[str, Any]]],
    comprehensive: bool,
    problem: Any,
) -> None:
    if item.get("status") != "current":
        problem(METADATA.id, "SubmissionSet.status is current", _where(position, "status"))
    if item.get("mode") != "working":
        problem(METADATA.id, "SubmissionSet.mode is working", _where(position, "mode"))
    identifiers = _list(item.get("identifier"))
    if not any(
        isinstance(i, dict) and i.get("use") == "usual" and i.get("value") for i in identifiers
    ):
        problem(
            METADATA.id,
            "SubmissionSet has its uniqueId (identifier use usual)",
            _where(position, "identifier"),
        )
    extensions = _list(item.get("extension"))
    if not any(isinstance(e, dict) and e.get("url") == SOURCE_ID for e in extensions):
        problem(
            METADATA.id, "SubmissionSet has its sourceId extension", _where(position, "extension")
        )
    if comprehensive:
        for element in ("date", "subject"):
            if not item.get(element):
                problem(
                    METADATA.id,
                    f"SubmissionSet.{element} is required (Comprehensive)",
                    _where(position, element),
                )
    listed = {
        e.get("item", {}).get("reference")
        for e in (_list(item.get("entry")))
        if isinstance(e, dict) and isinstance(e.get("item"), dict)
    }
    for ref_position, _ in references:
        full_url = entries[ref_position].get("fullUrl")
        if full_url not in listed:
            problem(
                METADATA.id,
                f"the SubmissionSet lists every DocumentReference (not {full_url})",
                _where(position, "entry"),
            )


def _check_reference(
    item: dict[str, Any],
    position: int,
    binaries: dict[str, tuple[bytes, str]],
    comprehensive: bool,
    problem: Any,
) -> Submitted | None:
    def where(element: str) -> str:
        return _where(position, element)

    ok = True

    def need(condition: bool, message: str, element: str, rule: str = METADATA.id) -> None:
        nonlocal ok
        if not condition:
            ok = False
            problem(rule, message, where(element))

    master = item.get("masterIdentifier")
    need(
        isinstance(master, dict) and bool(master.get("value")),
        "masterIdentifier is required",
        "masterIdentifier",
    )
    need(
        item.get("status") == "current",
        "a submitted DocumentReference's status is current",
        "status",
    )
    subject = _patient(item.get("subject"))
    need(
        subject is not None, "subject is a Patient reference (Patient/<id>)", "subject", PATIENT.id
    )
    contents = _list(item.get("content"))
    need(len(contents) == 1, "one content element", "content")
    content = contents[0] if contents and isinstance(contents[0], dict) else {}
    attachment = _dict(content.get("attachment"))
    url = attachment.get("url")
    need(
        isinstance(attachment.get("contentType"), str),
        "attachment.contentType is required",
        "content[0].attachment.contentType",
    )
    need(
        url in binaries,
        "attachment.url names a Binary entry of the Bundle",
        "content[0].attachment.url",
        BUNDLE.id,
    )
    if comprehensive:
        for element, present in (
            ("type", item.get("type")),
            ("category", item.get("category")),
            ("securityLabel", item.get("securityLabel")),
            ("content[0].format", content.get("format")),
            ("context.facilityType", (item.get("context") or {}).get("facilityType")),
            ("context.practiceSetting", (item.get("context") or {}).get("practiceSetting")),
            ("content[0].attachment.hash", attachment.get("hash")),
            ("content[0].attachment.size", attachment.get("size")),
        ):
            need(bool(present), f"{element} is required (Comprehensive)", element)
    replaces = None
    for relation in _list(item.get("relatesTo")):
        target = relation.get("target") if isinstance(relation, dict) else None
        reference = target.get("reference") if isinstance(target, dict) else None
        if relation.get("code") == "replaces":
            tail = (
                reference.rsplit("DocumentReference/", 1)[-1] if isinstance(reference, str) else ""
            )
            need(
                isinstance(reference, str) and "DocumentReference/" in reference and bool(tail),
                "relatesTo.target names DocumentReference/<id>",
                "relatesTo",
                REPLACE.id,
            )
            replaces = tail or None
    if url not in binaries:
        return None
    data, content_type = binaries[url]
    if attachment.get("contentType") not in (None, content_type):
        need(
            False,
            f"attachment.contentType differs from the Binary's ({content_type})",
            "content[0].attachment.contentType",
        )
    if "hash" in attachment and attachment["hash"] != sha1_base64(data):
        need(
            False,
            "attachment.hash is not the SHA-1 (base64) of the Binary's bytes",
            "content[0].attachment.hash",
            HASH.id,
        )
    if "size" in attachment and attachment["size"] != len(data):
        need(
            False,
            f"attachment.size is {attachment['size']} but the Binary has {len(data)} bytes",
            "content[0].attachment.size",
            SIZE.id,
        )
    cda_id = _cda_id(data) if content_type in CDA_MEDIA_TYPES else None
    if not ok or subject is None:
        return None
    return Submitted(position, item, data, content_type, cda_id, subject, replaces)


def provide(server: FhirServer, call: Call, body: bytes, bundle_resource: dict[str, Any]) -> Answer:
    """Store an ITI-65 Bundle all or nothing; the transaction-response, or the refusal."""
    catalog, _ = server.context(call.scope)
    plan, report = check_bundle(bundle_resource, catalog)
    count = max(1, len(plan.documents))
    if report.rejected:
        return server.refused(call, 422, report, body, count)

    def work(session: WriteSession, upload: Upload) -> Answer:
        del upload
        located: dict[int, str] = {}
        for submitted in plan.documents:
            located[submitted.position] = _store(session, catalog, submitted)
        entries = []
        for position in range(len(bundle_resource.get("entry") or [])):
            response: dict[str, Any] = {"status": "201 Created"}
            if position in located:
                response["location"] = f"DocumentReference/{located[position]}"
            entries.append({"response": response})
        return Answer(200, bundle("transaction-response", entries))

    return server.write(call, body, catalog, work, resources=count)


def _store(session: WriteSession, catalog: Catalog, submitted: Submitted) -> str:
    """One DocumentReference into the registry (its CDA as a CDA record first); its id."""
    conn, institution = session.conn, session.institution_code
    where = _where(submitted.position)
    head = get_head(conn, institution, submitted.subject)
    if head is None or head.deleted:
        raise _refused(
            PATIENT.id,
            f"{submitted.subject} is not a known Patient of {institution}",
            f"{where}.subject",
            422,
        )
    existing = None
    if submitted.cda_id is not None:
        report, status = store_attached_cda(
            conn, session.arrival, catalog, submitted.data, zone=session.zone
        )
        if report.rejected:
            located = Report()
            for issue in report.issues:
                expression = issue.expression or f"{where}.content[0].attachment.url"
                located.issues.append(dataclasses.replace(issue, expression=expression))
            raise WriteRefused(409 if status == "conflict" else 422, located)
        existing = store.by_record(conn, institution, submitted.cda_id)
    resource = submitted.resource
    master = resource["masterIdentifier"]
    master_token = f"{master.get('system', '')}|{master['value']}"
    duplicate = store.by_master_identifier(conn, institution, master_token)
    if duplicate is not None and (existing is None or duplicate.id != existing.id):
        raise _refused(
            DUPLICATE.id,
            f"masterIdentifier {master['value']!r} is already registered",
            f"{where}.masterIdentifier",
            409,
        )
    doc_id = existing.id if existing is not None else str(uuid.uuid4())
    if submitted.replaces is not None:
        target = store.get_document(conn, submitted.replaces, lock=True)
        # The CDA's own relatedDocument may have superseded it a moment ago: the same replace.
        done = existing is not None and target is not None and existing.replaces == target.id
        if (
            target is None
            or target.institution_code != institution
            or (target.status != "current" and not done)
        ):
            raise _refused(
                REPLACE.id,
                f"DocumentReference/{submitted.replaces} is not a current document of "
                f"{institution}",
                f"{where}.relatesTo",
                422,
            )
        store.set_status(conn, target.id, "superseded")
    row = _row(doc_id, institution, submitted, master_token, existing, session.zone)
    store.put_document(conn, row)
    if existing is None:
        store.put_content(conn, doc_id, submitted.data)
    session.written += 1
    session.touched.append(f"DocumentReference/{doc_id}")
    return doc_id


def _refused(rule: str, message: str, where: str, status: int) -> WriteRefused:
    report = Report()
    report.add(
        Severity.ERROR,
        rule,
        message,
        code="invalid" if status == 422 else "conflict",
        expression=where,
    )
    return WriteRefused(status, report)


def _row(
    doc_id: str,
    institution: str,
    submitted: Submitted,
    master_token: str,
    existing: DocumentRow | None,
    zone: ZoneInfo,
) -> DocumentRow:
    """The registry entry of a submitted DocumentReference: as sent, with the server's id,
    entryUUID, retrieval URL, hash and size."""
    resource = dict(submitted.resource)
    resource["id"] = doc_id
    resource.pop("meta", None)
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
    if not any(i.get("value") == f"urn:uuid:{doc_id}" for i in identifiers):
        identifiers.append(
            {"use": "official", "system": ENTRY_UUID_SYSTEM, "value": f"urn:uuid:{doc_id}"}
        )
    resource["identifier"] = identifiers
    content = dict(resource["content"][0])
    attachment = dict(content["attachment"])
    attachment.update(
        url=retrieve_path(doc_id), size=len(submitted.data), hash=sha1_base64(submitted.data)
    )
    content["attachment"] = attachment
    resource["content"] = [content]
    resource["subject"] = {"reference": submitted.subject}
    replaces = submitted.replaces or (existing.replaces if existing else None)
    if replaces:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}
        ]
    context = _dict(resource.get("context"))
    period = context.get("period") if isinstance(context.get("period"), dict) else None
    found = period_range(period, zone) if period else None
    date = resource.get("date")
    date_found = date_range(date, zone) if isinstance(date, str) else None
    authors = [a for a in resource.get("author") or [] if isinstance(a, dict)]
    return DocumentRow(
        id=doc_id,
        institution_code=institution,
        status="current",
        master_identifier=master_token,
        content_type=submitted.content_type or CDA_MEDIA_TYPE,
        size=len(submitted.data),
        hash=attachment["hash"],
        resource=resource,
        document_record=existing.document_record if existing else None,
        subject_record=submitted.subject,
        identifiers=[
            t for i in [resource["masterIdentifier"], *identifiers] for t in identifier_tokens(i)
        ],
        types=codeable_tokens(resource.get("type")),
        categories=[t for c in resource.get("category") or [] for t in codeable_tokens(c)],
        formats=tokens(
            (content.get("format") or {}).get("system"), (content.get("format") or {}).get("code")
        ),
        facilities=codeable_tokens(context.get("facilityType")),
        settings=codeable_tokens(context.get("practiceSetting")),
        authors=[t for a in authors for t in author_tokens(a)],
        related=[
            t
            for r in context.get("related") or []
            if isinstance(r, dict)
            for t in (
                identifier_tokens(r.get("identifier"))
                + ([r["reference"]] if isinstance(r.get("reference"), str) else [])
            )
        ],
        date=date_found[0] if date_found else None,
        period_low=found[0] if found else None,
        period_high=found[1] if found and period and period.get("end") else None,
        replaces=replaces,
    )
