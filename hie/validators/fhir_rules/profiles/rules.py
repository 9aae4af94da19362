"""The rules of profile validation, registered once (ids ``fhir.profile.*``)."""

from __future__ import annotations

from hie.validators.rules import register

UNKNOWN = register(
    "fhir.profile.unknown",
    summary="A profile a resource claims (meta.profile), or is to be validated against "
    "(hie validate --profile), can be found, so that it can be checked.",
    fix="Load the implementation guide that defines the profile (hie validate --ig), or correct "
    "the canonical URL.",
)


CARDINALITY = register(
    "fhir.profile.cardinality",
    summary="Elements and slices occur as often as the profiles the resource conforms to allow.",
    fix="Add the element the profile requires, or remove the occurrences it does not allow "
    "(max 0 means the profile prohibits the element).",
)


FIXED = register(
    "fhir.profile.fixed",
    summary="Elements hold the fixed value, or contain the pattern, that the profile sets.",
    fix="Send exactly the value the profile fixes (for a pattern: at least the codes and "
    "properties it lists, e.g. the LOINC code of a vital sign).",
)


RANGE = register(
    "fhir.profile.range",
    summary="Values lie within the profile's minValue/maxValue and strings within its maxLength.",
    fix="Correct the value, or its unit, so that it lies within the limits of the profile.",
)


TYPE = register(
    "fhir.profile.type",
    summary="Choice elements and resources have one of the types the profile allows.",
    fix="Use the type the profile names (e.g. valueQuantity rather than valueString), or put "
    "the resource type the profile expects in that place.",
)


BINDING = register(
    "fhir.profile.binding",
    summary="Codes of elements the profile binds to a value set with strength required come "
    "from that value set.",
    fix="Use a code of the value set the message names (for quantities: the unit code), "
    "with its code system.",
)


CONSTRAINT = register(
    "fhir.profile.constraint",
    summary="The resource meets the constraints (invariants) the profile adds.",
    fix="Read the constraint's text in the message and change the resource to satisfy it.",
)


SLICING = register(
    "fhir.profile.slicing",
    summary="Repeating elements sliced by a profile match its slices: each occurrence at most "
    "one slice, none outside a closed slicing, and the profiles slices name exist.",
    fix="Make each occurrence match the slice meant (its discriminating code, type or URL), "
    "and remove occurrences a closed slicing does not allow.",
)


CONFORMS = register(
    "fhir.profile.conforms",
    summary="An element whose type the profile constrains to profiles (a data type, a "
    "resource in a Bundle or Parameters) conforms to at least one of them.",
    fix="Change the element so that it meets one of the profiles the message names, or put "
    "the resource type those profiles are for in that place.",
)


TARGET = register(
    "fhir.profile.target",
    summary="References point at resources of the types the profile allows (targetProfile), "
    "and resources of the same Bundle they point at conform to the target profiles.",
    fix="Reference a resource of one of the types the message lists (or correct the "
    "resource type in the reference URL).",
)


VALUE_PRESENT = register(
    "fhir.profile.value-present",
    summary="Primitive elements a profile requires a value of (mustHaveValue) carry one, and "
    "those it gives value alternatives for carry a value or one of those extensions.",
    fix="Send the element's value, or (where the profile allows) one of the extensions it "
    "lists instead, such as data-absent-reason.",
)
NARRATIVE = register(
    "fhir.profile.narrative",
    summary="A narrative follows the controls its profile sets: each part says its source "
    "(narrative-source-control), and language sections are present, absent, or include the "
    "resource's language as required (narrative-language-control).",
    fix='Mark each part of the narrative with class="generated", "original" or '
    '"boilerplate"; add or remove <div lang=".."> sections as the profile requires.',
)
