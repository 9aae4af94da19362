"""The rules of the reference family, registered once (ids ``fhir.reference.*``)."""

from __future__ import annotations

from hie.validators.rules import register

TARGET_TYPE = register(
    "fhir.reference.target-type",
    summary="A Reference names a resource of a type its element allows (R4 targetProfile), in "
    "Reference.type and in the literal reference.",
    fix="Point the reference at a resource of an allowed type (see the element on the R4 "
    "resource page), and write Reference.type as the exact resource type name (Practitioner, "
    "not practitioner).",
)
BUNDLE_RESOLVE = register(
    "fhir.reference.bundle-resolve",
    summary="In a document or message Bundle, the Composition's and MessageHeader's references "
    "resolve to exactly one entry, and no reference in any Bundle matches two entries; a "
    "relative reference resolves only against the base of the referring entry's RESTful fullUrl.",
    fix="Give the target entry the fullUrl the reference resolves to (the referring entry's base "
    "+ Type/id, or the same urn:uuid), or refer to the target by its fullUrl; remove duplicate "
    "entries or version the references (Type/id/_history/n with meta.versionId).",
)
BUNDLE_TYPE = register(
    "fhir.reference.bundle-type",
    summary="The Bundle entry a reference resolves to has the resource type the reference names.",
    fix="Correct the type in the reference, or the entry it resolves to.",
)
FULL_URL_ID = register(
    "fhir.reference.full-url-id",
    summary="A Bundle entry whose fullUrl looks like a RESTful URL (…/Type/id) holds a resource "
    "with that type and id.",
    fix="Make the fullUrl end with /<resourceType>/<id> of the entry's resource (and give the "
    "resource its id), or use a urn:uuid fullUrl.",
)
ORPHAN = register(
    "fhir.reference.document-orphan",
    summary="Every entry of a document Bundle is reachable from the Composition by following "
    "references (forwards, or backwards from a reachable entry).",
    fix="Reference the entry from the Composition (e.g. a section entry) or from a resource it "
    "references, or leave it out of the document; check the reference resolves (fullUrl rules).",
)
STYLESHEET = register(
    "fhir.reference.stylesheet",
    summary="A document's relative stylesheet link names an entry of the Bundle (Binary/id).",
    fix="Include the stylesheet as a Binary entry and link to it as Binary/<id>, or use an "
    "absolute https URL.",
)
FRAGMENT = register(
    "fhir.reference.fragment",
    summary="A narrativeLink extension (url#anchor) names a resource in the Bundle whose "
    "narrative has that anchor exactly once.",
    fix="Point the link at the fullUrl of the resource holding the narrative, and give the "
    "narrative element one unique id equal to the anchor.",
)
HYPERLINK = register(
    "fhir.reference.narrative-link",
    summary='A narrative hyperlink to an anchor (<a href="#x">) names an id or anchor of the '
    "resource (or, in a document, of the Composition), and no hyperlink is a urn: identifier.",
    fix='Give the linked element id="x" in the narrative, or link to an absolute URL; '
    "generated narratives that link to other resources must carry those anchors; show a "
    "urn:uuid as text instead of linking to it.",
)
UNRESOLVED = register(
    "fhir.reference.unresolved",
    summary="With references checked for existence (hie validate --check-references, HL7's "
    "reference policy CHECK_EXISTS), a relative reference (Patient/1) made inside a Bundle or "
    "Parameters names a resource of that Bundle or Parameters.",
    fix="Include the referenced resource (with that type and id) in the Bundle or Parameters, "
    "or correct the reference.",
)
