"""IHE PDQm (ITI-78) across institutions: ``GET /fhir/Patient`` without ``X-HIE-Institution``,
for an administrator or a clinician (demographics, no clinical content).

``identifier`` is answered by the person index (any of a resident's identifiers, a resident ID
in either form); the demographic parameters by each institution's own search; both given, the
Patients that satisfy both. The persons of the matches bring their Patients at other
institutions as ``include`` entries: that is what the index is for. Resource ids belong to their
institution, so each entry's resource says whose it is in ``meta.source``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from hie.fhir.content import served_form
from hie.fhir.responses import Answer, bundle, error
from hie.fhir.search import IGNORED, SearchError, parse_search
from hie.persons import service
from hie.storage import Connection
from hie.storage import persons as store
from hie.storage.fhir import live_rows, load_resources
from hie.storage.search import LiveRow, search

DEMOGRAPHICS = frozenset({"family", "given", "name", "birthdate", "gender", "address", "telecom"})
PARAMETERS = DEMOGRAPHICS | {"identifier"}
MAX_MATCHES = 100
SOURCE = "urn:hie:institution:"

Found = tuple[str, str]  # (institution, Patient id)
# Whether the caller may see a person's Patient at an institution (the access decision).
Allowed = Callable[[int | None, str], bool]


def search_patients(
    conn: Connection,
    zone: ZoneInfo,
    base: str,
    pairs: list[tuple[str, str]],
    self_url: str,
    allowed: Allowed = lambda person, institution: True,
) -> tuple[Answer, list[int]]:
    """The searchset, and the persons it shows (for the audit trail). A Patient the caller
    may not see is left out as if it did not exist."""
    criteria = [(k, v) for k, v in pairs if k not in IGNORED]
    unknown = sorted({k.split(":")[0] for k, _ in criteria} - PARAMETERS)
    if unknown:
        message = (
            f'Unknown search parameter "{unknown[0]}" for a search across institutions.'
            f" Valid search parameters for this search are: {sorted(PARAMETERS)}"
        )
        return error(400, "processing", message), []
    if any(k.startswith("identifier:") for k, _ in criteria):
        return error(400, "not-supported", "identifier takes no modifier across institutions"), []
    if not criteria:
        return error(400, "required", f"name at least one of {sorted(PARAMETERS)}"), []
    matched: set[Found] | None = None
    for name, value in criteria:
        if name == "identifier":
            found = _by_identifier(conn, value)
            matched = found if matched is None else matched & found
    demographic = [(k, v) for k, v in criteria if k.split(":")[0] in DEMOGRAPHICS]
    if demographic:
        try:
            found = _by_demographics(conn, zone, demographic)
        except SearchError as exc:
            return error(400, "invalid", str(exc)), []
        matched = found if matched is None else matched & found
    matches: list[Found] = []
    persons: list[int] = []
    for institution, pid in sorted(matched or set()):
        person = service.person_of_record(conn, institution, f"Patient/{pid}")
        if not allowed(person, institution):
            continue
        matches.append((institution, pid))
        if person is not None and person not in persons:
            persons.append(person)
        if len(matches) == MAX_MATCHES:
            break
    included: list[Found] = []
    for person in persons:
        for link in store.links_of(conn, person):
            key = (link.institution_code, link.record_id.removeprefix("Patient/"))
            if (
                link.record_id.startswith("Patient/")
                and key not in matches + included
                and allowed(person, link.institution_code)
            ):
                included.append(key)
    entries = _entries(conn, base, matches, "match") + _entries(conn, base, included, "include")
    total = sum(1 for e in entries if e["search"]["mode"] == "match")
    return Answer(200, bundle("searchset", entries, links=[("self", self_url)], total=total)), (
        persons
    )


def _by_identifier(conn: Connection, value: str) -> set[Found]:
    system, bar, number = value.partition("|")
    if not bar:
        system, number = "", value
    persons = service.find_persons(conn, system, number) if system else []
    found: set[Found] = set()
    for person in persons:
        for link in store.links_of(conn, person):
            if link.record_id.startswith("Patient/"):
                found.add((link.institution_code, link.record_id.removeprefix("Patient/")))
    return found


def _by_demographics(conn: Connection, zone: ZoneInfo, pairs: list[tuple[str, str]]) -> set[Found]:
    institutions = [
        r["institution_code"]
        for r in conn.execute(
            "select distinct institution_code from person_link where record_id like 'Patient/%'"
            " order by 1"
        ).fetchall()
    ]
    found: set[Found] = set()
    for institution in institutions:
        parsed = parse_search("Patient", pairs, institution_code=institution, zone=zone)
        parsed.query.count = MAX_MATCHES
        found.update((institution, row.resource_id) for row in search(conn, parsed.query))
    return found


def _entries(conn: Connection, base: str, keys: list[Found], mode: str) -> list[dict[str, Any]]:
    rows: list[tuple[str, LiveRow]] = []
    for institution in sorted({k[0] for k in keys}):
        ids = [("Patient", pid) for inst, pid in keys if inst == institution]
        rows += [(institution, row) for row in live_rows(conn, institution, ids)]
    resources = load_resources(conn, [row for _, row in rows])
    entries: list[dict[str, Any]] = []
    for institution, row in sorted(rows, key=lambda r: (r[0], r[1].resource_id)):
        resource = resources.get(row.record_id)
        if resource is None:
            continue
        served = served_form(resource, row.version, row.last_updated)
        served["meta"] = {**served.get("meta", {}), "source": f"{SOURCE}{institution}"}
        entries.append(
            {
                "fullUrl": f"{base}/Patient/{row.resource_id}",
                "resource": served,
                "search": {"mode": mode},
            }
        )
    return entries
