"""Rules of the FHIR REST interactions themselves (the content rules live in hie/validators).

A refused write counts as a rejection under one of these ids, so the report can say why.
"""

from __future__ import annotations

from hie.validators.rules import register

REQUEST = register(
    "fhir.request.invalid",
    summary="A FHIR request must be well formed: method, URL, resource type and id agree.",
    fix="Send the resource to /fhir/<resourceType> (create) or /fhir/<resourceType>/<id> "
    "(update) with the same resourceType and id in the body; a Bundle entry needs "
    "request.method and request.url.",
)
PRECONDITION = register(
    "fhir.request.precondition",
    summary="An If-Match version must be the current version; a condition must match at most "
    "one resource.",
    fix="Read the resource again and retry with its current ETag, or make the condition "
    "(ifNoneExist, conditional update URL) specific enough to match one resource.",
)
REFERENCE = register(
    "fhir.request.reference",
    summary="A transaction's urn:uuid: and conditional references must resolve: to an entry "
    "of the same Bundle, or to exactly one stored resource of the institution.",
    fix="Include the referenced resource in the Bundle (with that fullUrl), or load it first "
    "(for example Synthea's hospitalInformation and practitionerInformation bundles).",
)
BUNDLE = register(
    "fhir.bundle.limit",
    summary="A transaction or batch Bundle holds at most HIE_MAX_BUNDLE_ENTRIES entries.",
    fix="Split the Bundle into smaller ones.",
)
PATCH = register(
    "fhir.request.patch",
    summary="A PATCH must be a JSON Patch (application/json-patch+json) or a FHIRPath Patch "
    "(a Parameters resource) that applies to the current version of the resource.",
    fix="Check each operation's path against the resource as read now (GET it first); send "
    "If-Match with its ETag to patch only the version you read.",
)
INTEGRITY = register(
    "fhir.request.integrity",
    summary="A relative reference (<Type>/<id>) must name a resource the institution has "
    "(HIE_ENFORCE_REFERENTIAL_INTEGRITY_ON_WRITE, on by default as in HAPI FHIR).",
    fix="Upload the referenced resource first, send both in one transaction Bundle (urn:uuid: "
    "references), or use a conditional reference (Patient?identifier=system|value).",
)
REFERENCED = register(
    "fhir.request.referenced",
    summary="A resource other resources still reference cannot be deleted "
    "(HIE_ENFORCE_REFERENTIAL_INTEGRITY_ON_DELETE, on by default as in HAPI FHIR).",
    fix="Delete or update the referring resources first (the OperationOutcome names them), or "
    "delete them together in one transaction Bundle.",
)
