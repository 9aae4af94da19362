"""IHE PIXm (ITI-83) ``Patient/$ihe-pix``: the identifiers and Patient resources the person index
links to one source identifier, across institutions.

An administrator or a clinician may ask (the answer crosses institutions: identifiers and
Patient references, no clinical content).
An unknown source identifier is 404, a ``targetSystem`` the platform does not know is 403, as
ITI-83 asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hie.fhir.responses import Answer, error
from hie.normalize.fhir import canonical_system
from hie.persons import service
from hie.persons.model import LOCAL_SYSTEMS, REGIONAL_SYSTEMS
from hie.storage import Connection
from hie.storage import persons as store

INSTITUTION_SYSTEM = "urn:oid:2.16.156.10011.1.5"
KNOWN_SYSTEMS = (*REGIONAL_SYSTEMS, *LOCAL_SYSTEMS)


def _system(raw: str) -> str:
    raw = raw.strip()
    return canonical_system(raw if ":" in raw else f"urn:oid:{raw}")


def ihe_pix(
    conn: Connection,
    pairs: list[tuple[str, str]],
    allowed: Callable[[int, str], bool] = lambda person, institution: True,
) -> tuple[Answer, list[int]]:
    """The Parameters answer, and the persons it names (for the audit trail). What the caller
    may not see (``allowed``: a person's records at an institution) is left out; when nothing
    is left the answer is the one for an unknown identifier."""
    sources = [v for k, v in pairs if k == "sourceIdentifier"]
    targets = [_system(s) for k, v in pairs if k == "targetSystem" for s in v.split(",") if s]
    unknown = sorted({k for k, _ in pairs} - {"sourceIdentifier", "targetSystem", "_format"})
    if unknown:
        return error(400, "not-supported", f"unknown parameter {unknown[0]} for $ihe-pix"), []
    if len(sources) != 1 or "|" not in sources[0]:
        return error(400, "required", "sourceIdentifier=system|value is required, exactly once"), []
    system, _, value = sources[0].partition("|")
    system = _system(system)
    if not system or not value.strip():
        return error(400, "required", "sourceIdentifier needs both a system and a value"), []
    for target in targets:
        if target not in KNOWN_SYSTEMS:
            return error(403, "not-found", "targetSystem not found"), []
    # A medical-record number names a patient only with its institution, which ITI-83 has no
    # place for: it is looked up in every institution.
    unknown_source = error(404, "not-found", "sourceIdentifier Patient Identifier not found")
    persons = service.find_persons(conn, system, value)
    parameters: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    shown: list[int] = []
    for person in persons:
        links = [
            link for link in store.links_of(conn, person) if allowed(person, link.institution_code)
        ]
        if not links:
            continue
        shown.append(person)
        visible = {link.institution_code for link in links}
        for row in store.identifiers_of(conn, person):
            key = (row["system"], row["value"], row["key_institution"])
            if row["institution_code"] not in visible:
                continue
            if key in seen or (targets and row["system"] not in targets):
                continue
            seen.add(key)
            identifier: dict[str, Any] = {"system": row["system"], "value": row["value"]}
            if row["key_institution"]:
                identifier["assigner"] = {
                    "identifier": {"system": INSTITUTION_SYSTEM, "value": row["key_institution"]}
                }
            parameters.append({"name": "targetIdentifier", "valueIdentifier": identifier})
        for link in links:
            if link.record_id.startswith("Patient/"):
                parameters.append(
                    {
                        "name": "targetId",
                        "valueReference": {
                            "reference": link.record_id,
                            # Resource ids are an institution's own: say whose it is.
                            "identifier": {
                                "system": INSTITUTION_SYSTEM,
                                "value": link.institution_code,
                            },
                        },
                    }
                )
    if not shown:
        return unknown_source, []
    return Answer(200, {"resourceType": "Parameters", "parameter": parameters}), shown
