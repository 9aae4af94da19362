"""The platform's own FHIR rules: resident ID numbers, identifier system aliases, ICD-10 codes.

Systems and aliases are data (``schemas/fhir/identifier-systems.json``), shared with
:mod:`hie.normalize.fhir`, which rewrites aliases to the canonical system before storing.
Messages never repeat a resident ID number.
"""

from __future__ import annotations

from hie.normalize.codes import icd10_category
from hie.normalize.fhir import (
    RESIDENT_ID_SYSTEM,
    canonical_system,
    is_icd10_system,
    systems,
)
from hie.normalize.identity import resident_id_problem
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

RESIDENT_ID = register(
    "fhir.platform.resident-id",
    summary="A resident ID number (system urn:oid:2.16.156.10011.1.3) has 18 characters, a real "
    "birth date and the GB 11643 check character; an invalid one is stored but counts no person.",
    fix="Send the number from the ID card itself (17 digits and a check digit 0-9 or X; 15-digit "
    "legacy numbers are accepted); never a placeholder. Fix typing errors at registration.",
)
IDENTIFIER_SYSTEM = register(
    "fhir.platform.identifier-system",
    summary="Identifier systems are written as the platform's canonical URIs; known aliases "
    "(HL7 China's resident ID OID, bare OIDs) are accepted and rewritten.",
    fix="Write urn:oid:2.16.156.10011.1.3 for resident ID numbers and urn:oid:<OID> for the "
    "other national identifier roots (e.g. urn:oid:2.16.156.10011.1.2 health-record number).",
)
ICD10 = register(
    "fhir.platform.icd10",
    summary="Codes in an ICD-10 system (urn:oid:2.16.156.10011.2.3.3.11 and its sub-arcs, "
    "http://hl7.org/fhir/sid/icd-10, http://hl7.org/fhir/sid/icd-10-cn) are ICD-10 codes.",
    fix="Send the ICD-10 code (a letter and two digits, then an optional subdivision: I10, "
    "E11.9, I10.x00) with its system; write the national OID as urn:oid:2.16.156.10011.2.3.3.11.",
)

_BARE_ICD10 = "2.16.156.10011.2.3.3.11"


def check_platform(tree: Tree, report: Report) -> None:
    for node in tree.of_type("Identifier"):
        system = node.value.get("system")
        if not isinstance(system, str):
            continue
        canonical = canonical_system(system)
        if canonical != system:
            report.add(
                Severity.INFORMATION,
                IDENTIFIER_SYSTEM.id,
                f"{node.path}.system: {system!r} is stored as {canonical!r}",
                code="informational",
                expression=f"{node.path}.system",
            )
        value = node.value.get("value")
        if canonical == RESIDENT_ID_SYSTEM and isinstance(value, str):
            problem = resident_id_problem(value)
            if problem is not None:  # the message never repeats the number itself
                report.add(
                    Severity.WARNING,
                    RESIDENT_ID.id,
                    f"{node.path}.value: the resident ID number is not valid: {problem}; the "
                    "record is stored but counts no person by it",
                    code="value",
                    expression=f"{node.path}.value",
                )
    for node in tree.of_type("Coding"):
        system, code = node.value.get("system"), node.value.get("code")
        if system == _BARE_ICD10 or (
            isinstance(system, str) and system.startswith(_BARE_ICD10 + ".")
        ):
            report.add(
                Severity.WARNING,
                ICD10.id,
                f"{node.path}.system: write the ICD-10 OID as urn:oid:{system}; as written the "
                "code is not recognised as ICD-10",
                code="code-invalid",
                expression=f"{node.path}.system",
            )
        elif is_icd10_system(system) and isinstance(code, str) and icd10_category(code) is None:
            report.add(
                Severity.WARNING,
                ICD10.id,
                f"{node.path}.code: {code!r} is not an ICD-10 code (a letter and two digits "
                "first); it counts for no diagnosis",
                code="code-invalid",
                expression=f"{node.path}.code",
            )


__all__ = ["check_platform", "systems"]
