"""The rules of the extension family, registered once (ids ``fhir.extension.*``)."""

from __future__ import annotations

from hie.validators.rules import register

UNKNOWN = register(
    "fhir.extension.unknown",
    summary="Every extension's URL names a definition the validator knows: FHIR R4's, HL7's "
    "extensions pack, or one loaded with --ig (unless the policy accepts its domain).",
    fix="Check the URL's spelling; load the StructureDefinition of your own extension with "
    "--ig, or accept your domain with --extension-domain.",
)
URL = register(
    "fhir.extension.url",
    summary="Extension.url is an absolute URL without a version (only the sub-extensions of a "
    "complex extension have relative names).",
    fix="Use the extension's canonical URL (http://...), without |version.",
)
CONTEXT = register(
    "fhir.extension.context",
    summary="An extension is used only on the elements its definition lists as its contexts, "
    "and where its context invariants hold.",
    fix="Move the extension to an element its definition allows (see its context), or use an "
    "extension meant for this element.",
)
MODIFIER = register(
    "fhir.extension.modifier",
    summary="A modifier extension is sent in modifierExtension, every other extension in "
    "extension.",
    fix="Move the extension to modifierExtension if its definition says it is a modifier, to "
    "extension otherwise.",
)
CONTENT = register(
    "fhir.extension.content",
    summary="An extension has the value type or the sub-extensions its definition gives: a "
    "simple extension one value of an allowed type, a complex one its defined sub-extensions "
    "(the required ones present, none repeated beyond its maximum) and no value.",
    fix="Send the value type the definition allows, or the sub-extensions it defines with "
    "their exact names.",
)
