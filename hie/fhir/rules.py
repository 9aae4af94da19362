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
