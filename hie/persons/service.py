"""Linking records to persons, merging and unmerging them, and looking them up.

Called in the caller's transaction: ``link_record`` by ``ingest.store_record`` for every stored
Patient and CDA document, the rest by entry points (the CLI, the FHIR API)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from hie.errors import Conflict, InvalidInput, NotFound, Problem
from hie.normalize import NormalizedRecord, PatientIdentity
from hie.normalize.fhir import canonical_system
from hie.normalize.identity import normalize_resident_id
from hie.persons.model import (
    REGIONAL_SYSTEMS,
    RESIDENT_ID,
    Demographics,
    Key,
    Score,
    demographics_of,
    keys_of,
    score,
    verdict,
)
from hie.storage import Connection
from hie.storage import persons as store
from hie.storage.persons import KeyRow

INDEX_ACTOR = "person-index"


@dataclass(frozen=True)
class Linked:
    person_id: int
    rule: str  # the key system that linked it, "score", or "new"
    score: float | None = None
    review_id: int | None = None
    merged: tuple[int, ...] = ()  # persons merged into this one because the record bridged them


def _row(key: Key) -> KeyRow:
    return (key.system, key.value, key.institution)


def _demographics_row(demo: Demographics) -> dict[str, Any]:
    return {
        "name": demo.name,
        "birth_date": demo.birth_date,
        "gender": demo.gender,
        "address": demo.address,
    }


def link_record(
    conn: Connection, institution: str, record_id: str, identity: PatientIdentity
) -> Linked | None:
    """Link a stored record to its person: by its keys, strongest first; by score when it has no
    resident ID and no key found anyone; else to a new person. None when it carries nothing to
    link by."""
    keys = keys_of(identity, institution)
    demo = demographics_of(identity)
    if not keys and not demo.usable:
        unlink_record(conn, institution, record_id)
        return None
    locks = [f"{k.system}|{k.institution}|{k.value}" for k in keys]
    if demo.birth_date is not None:
        locks.append(f"born|{demo.birth_date.isoformat()}")
    store.lock_keys(conn, locks)
    previous = store.get_link(conn, institution, record_id)
    resident_id = identity.resident_id

    strength = {(k.system, k.value, k.institution): i for i, k in enumerate(keys)}
    found: dict[int, KeyRow] = {}
    for person_id, key in store.persons_by_keys(conn, [_row(k) for k in keys]):
        # The strongest of a person's keys names the rule (the rows come in no order of keys).
        if person_id not in found or strength[key] < strength[found[person_id]]:
            found[person_id] = key
    matches = sorted(found, key=lambda p: (strength[found[p]], p))
    if resident_id is not None:
        # A person known under another resident ID is someone else, whatever else they share.
        matches = [p for p in matches if store.values_of(conn, p, RESIDENT_ID) <= {resident_id}]

    linked: Linked
    if matches:
        person_id = matches[0]
        merged: list[int] = []
        for other in matches[1:]:
            # The record carries keys of two persons: they are one, unless their resident IDs
            # differ (then a person decides).
            ids = store.values_of(conn, person_id, RESIDENT_ID) | store.values_of(
                conn, other, RESIDENT_ID
            )
            if len(ids) <= 1:
                merge(conn, person_id, other, actor=INDEX_ACTOR, reason="shared identifier")
                merged.append(other)
        linked = Linked(person_id, found[person_id][0], merged=tuple(merged))
    else:
        best = _best_candidate(conn, demo, institution, record_id) if resident_id is None else None
        if best is not None and verdict(best[1].value) == "link":
            linked = Linked(best[0], "score", best[1].value)
        else:
            if previous is not None and previous.rule in ("new", "score") and not keys:
                person_id = previous.person_id  # an update of the same record keeps its person
            else:
                person_id = store.create_person(conn)
            review_id = None
            if best is not None and best[0] != person_id and verdict(best[1].value) == "review":
                review_id = store.add_review(
                    conn, institution, record_id, person_id, best[0], best[1].value, best[1].parts
                )
            linked = Linked(person_id, "new", None, review_id)

    store.put_link(
        conn,
        institution,
        record_id,
        linked.person_id,
        rule=linked.rule,
        score=linked.score,
        demographics=_demographics_row(demo),
        keys=[_row(k) for k in keys],
    )
    if previous is None or previous.person_id != linked.person_id:
        store.add_history(
            conn,
            "link" if previous is None else "relink",
            linked.person_id,
            actor=INDEX_ACTOR,
            other_person_id=None if previous is None else previous.person_id,
            institution_code=institution,
            record_id=record_id,
            detail={"rule": linked.rule, "score": linked.score},
        )
    return linked


def index_stored(
    conn: Connection, institution: str, record: NormalizedRecord, *, deleted: bool
) -> None:
    """The store step's hook: a written Patient or CDA document (any record with a patient)
    joins the index in the same transaction, so the index never disagrees with the records."""
    if record.patient is None:
        return
    if deleted:
        unlink_record(conn, institution, record.logical_id)
    else:
        link_record(conn, institution, record.logical_id, record.patient)


def _best_candidate(
    conn: Connection, demo: Demographics, institution: str, record_id: str
) -> tuple[int, Score] | None:
    if not demo.usable or demo.birth_date is None:
        return None
    best: tuple[int, Score] | None = None
    for link in store.born_on(conn, demo.birth_date):
        if (link.institution_code, link.record_id) == (institution, record_id):
            continue
        candidate = Demographics(link.name, link.birth_date, link.gender, link.address)
        result = score(demo, candidate)
        if best is None or result.value > best[1].value:
            best = (link.person_id, result)
    return best


def unlink_record(conn: Connection, institution: str, record_id: str) -> None:
    """A deleted record (or one that no longer names anyone) leaves its person."""
    previous = store.get_link(conn, institution, record_id)
    if previous is None:
        return
    store.delete_link(conn, institution, record_id)
    store.add_history(
        conn,
        "unlink",
        previous.person_id,
        actor=INDEX_ACTOR,
        institution_code=institution,
        record_id=record_id,
    )


def _live(conn: Connection, person_id: int) -> None:
    exists, merged_into = store.person_exists(conn, person_id)
    if not exists:
        raise NotFound(f"person {person_id} does not exist")
    if merged_into is not None:
        raise Conflict(f"person {person_id} is merged into person {merged_into}")


def merge(
    conn: Connection, survivor: int, merged: int, *, actor: str, reason: str = ""
) -> list[tuple[str, str]]:
    """Merge ``merged`` into ``survivor``: its records move, it points at the survivor, open
    reviews between them close. Refused when they carry different resident ID numbers."""
    if survivor == merged:
        raise InvalidInput("merge", [Problem("a person cannot be merged into itself")])
    _live(conn, survivor)
    _live(conn, merged)
    ids = store.values_of(conn, survivor, RESIDENT_ID) | store.values_of(conn, merged, RESIDENT_ID)
    if len(ids) > 1:
        raise Conflict(
            f"persons {survivor} and {merged} carry different resident ID numbers; not merged"
        )
    moved = store.move_links(conn, merged, survivor, None)
    store.set_merged_into(conn, merged, survivor)
    reviews = store.close_reviews(conn, survivor, merged, "merged", actor)
    store.add_history(
        conn,
        "merge",
        survivor,
        actor=actor,
        other_person_id=merged,
        detail={"records": [list(r) for r in moved], "reviews": reviews, "reason": reason},
    )
    return moved


def unmerge(conn: Connection, merged: int, *, actor: str) -> list[tuple[str, str]]:
    """Undo the merge of ``merged``: the records it brought go back to it (those still with the
    survivor) and it is a person of its own again."""
    exists, survivor = store.person_exists(conn, merged)
    if not exists:
        raise NotFound(f"person {merged} does not exist")
    entry = store.last_merge(conn, merged)
    if survivor is None or entry is None:
        raise Conflict(f"person {merged} is not merged into another")
    records = [(r[0], r[1]) for r in entry["detail"].get("records", [])]
    moved = store.move_links(conn, survivor, merged, records)
    store.set_merged_into(conn, merged, None)
    undo = store.add_history(
        conn,
        "unmerge",
        survivor,
        actor=actor,
        other_person_id=merged,
        detail={"records": [list(r) for r in moved], "merge": entry["id"]},
    )
    store.mark_undone(conn, entry["id"], undo)
    return moved


def dismiss_review(conn: Connection, review_id: int, *, actor: str) -> None:
    review = store.get_review(conn, review_id)
    if review is None:
        raise NotFound(f"review {review_id} does not exist")
    if review["status"] != "open":
        raise Conflict(f"review {review_id} is already {review['status']}")
    store.close_review(conn, review_id, "dismissed", actor)


def current_person(conn: Connection, person_id: int) -> int:
    """The person a (possibly merged) person id stands for now."""
    seen: set[int] = set()
    while True:
        exists, into = store.person_exists(conn, person_id)
        if not exists:
            raise NotFound(f"person {person_id} does not exist")
        if into is None or person_id in seen:
            return person_id
        seen.add(person_id)
        person_id = into


def person_of_record(conn: Connection, institution: str, record_id: str) -> int | None:
    link = store.get_link(conn, institution, record_id)
    return None if link is None else link.person_id


def persons_with(conn: Connection, system: str, value: str, institution: str = "") -> list[int]:
    """The persons one identifier names (a medical-record number with its institution)."""
    return sorted({p for p, _ in store.persons_by_keys(conn, [(system, value, institution)])})


def find_persons(conn: Connection, system: str, value: str, institution: str = "") -> list[int]:
    """The persons an identifier as a user writes it names: the system an OID, its URI or an
    alias; a resident ID number in either form; ``institution`` for medical-record numbers."""
    system = system.strip()
    if system and ":" not in system:
        system = f"urn:oid:{system}"
    system = canonical_system(system)
    value = value.strip()
    if system == RESIDENT_ID:
        normalized = normalize_resident_id(value)
        if normalized is None:
            return []
        value = normalized
    elif system in REGIONAL_SYSTEMS:
        value = value.upper()
    if system in REGIONAL_SYSTEMS:
        return persons_with(conn, system, value)
    if institution:
        return persons_with(conn, system, value, institution)
    # A medical-record number without its institution: whoever holds it anywhere.
    return store.persons_by_number(conn, system, value)


@dataclass(frozen=True)
class PersonView:
    person_id: int
    links: list[store.Link]
    identifiers: list[dict[str, Any]]
    history: list[dict[str, Any]]


def show(conn: Connection, person_id: int) -> PersonView:
    exists, _ = store.person_exists(conn, person_id)
    if not exists:
        raise NotFound(f"person {person_id} does not exist")
    return PersonView(
        person_id,
        store.links_of(conn, person_id),
        store.identifiers_of(conn, person_id),
        store.history_of(conn, person_id),
    )


def birth_date_of(view: PersonView) -> date | None:
    return next((link.birth_date for link in view.links if link.birth_date), None)


# What a record linked by :func:`link_records` was linked to before, and is now.
Outcome = tuple[store.Link | None, Linked | None]


def link_records(
    conn: Connection, records: list[tuple[str, str, PatientIdentity | None]]
) -> list[Outcome]:
    """Link (or, with no identity, unlink) many records in order, exactly as
    :func:`link_record` one after the other would, in a few statements: all the batch's keys,
    links and resident IDs are looked up at once, and a record its keys settle (one person
    found, or a resident ID no one has yet) is linked in memory and written with the others.
    Only the rest (scored, merging, moved or unlinked records) go through :func:`link_record`;
    before one, what it could read is written, and after one that moved links the lookups are
    done again for the records still to come."""
    outcomes: list[Outcome] = [(None, None)] * len(records)
    start = 0
    while start < len(records):
        start = _link_run(conn, records, start, outcomes)
    return outcomes


class _Pending:
    """Links decided in memory and not yet written; new persons have negative ids until they
    are made."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.links: list[store.NewLink] = []
        self.outcomes: list[tuple[int, store.Link | None, Linked]] = []  # (index, ...)
        self.new_persons = 0
        self.birth_dates: set[date] = set()

    def make_persons(self, conn: Connection) -> dict[int, int]:
        """Make the new persons, so that their ids come in the order one record at a time
        would have given them (a tie of scores, a merge's survivor go by the lower id); the
        real id of each."""
        made = store.create_persons(conn, self.new_persons)
        real = dict(zip(range(-1, -self.new_persons - 1, -1), made, strict=True))
        self.new_persons = 0
        self.links = [replace(x, person_id=real.get(x.person_id, x.person_id)) for x in self.links]
        self.outcomes = [
            (i, p, replace(linked, person_id=real.get(linked.person_id, linked.person_id)))
            for i, p, linked in self.outcomes
        ]
        return real

    def flush(self, conn: Connection, outcomes: list[Outcome]) -> dict[int, int]:
        """Write, and fill in ``outcomes``; the real id of each new person."""
        real = self.make_persons(conn)
        store.put_links(conn, self.links, actor=INDEX_ACTOR)
        for index, previous, linked in self.outcomes:
            outcomes[index] = (previous, linked)
        self.clear()
        return real


def _link_run(
    conn: Connection,
    records: list[tuple[str, str, PatientIdentity | None]],
    start: int,
    outcomes: list[Outcome],
) -> int:
    """Link records from ``start`` on until one moves links the lookups did not foresee; the
    index to go on from."""
    rest = records[start:]
    prepared = [
        (inst, rec, identity, keys_of(identity, inst), demographics_of(identity))
        if identity is not None
        else (inst, rec, None, [], Demographics())
        for inst, rec, identity in rest
    ]
    locks = {f"{k.system}|{k.institution}|{k.value}" for p in prepared for k in p[3]}
    locks |= {f"born|{p[4].birth_date.isoformat()}" for p in prepared if p[4].birth_date}
    store.lock_keys(conn, sorted(locks))
    ids = [(inst, rec) for inst, rec, *_ in prepared]
    previous_links = store.links_of_records(conn, ids)
    previous_keys = store.keys_of_records(conn, ids)
    by_key: dict[KeyRow, set[int]] = {}
    for person_id, key in store.persons_by_keys(
        conn, list({_row(k) for p in prepared for k in p[3]})
    ):
        by_key.setdefault(key, set()).add(person_id)
    resident_ids = store.values_of_persons(
        conn, sorted({p for persons in by_key.values() for p in persons}), RESIDENT_ID
    )
    pending = _Pending()
    seen: set[tuple[str, str]] = set()

    for offset, (inst, rec, identity, keys, demo) in enumerate(prepared):
        index = start + offset
        previous = previous_links.get((inst, rec))
        rows = [_row(k) for k in keys]
        if (inst, rec) in seen:
            pending.flush(conn, outcomes)
            return index  # the same record twice: look it up again
        seen.add((inst, rec))
        usable = bool(keys) or demo.usable
        if previous is None and (identity is None or not usable):
            continue  # nothing to link, nothing to unlink
        resident_id = None if identity is None else identity.resident_id
        strength = {row: i for i, row in enumerate(rows)}
        found: dict[int, KeyRow] = {}
        for row in rows:
            for person_id in by_key.get(row, ()):
                if person_id not in found or strength[row] < strength[found[person_id]]:
                    found[person_id] = row
        matches = sorted(found, key=lambda p: (strength[found[p]], p))
        if resident_id is not None:
            matches = [p for p in matches if resident_ids.get(p, set()) <= {resident_id}]
        same_keys = previous is not None and previous_keys.get((inst, rec), set()) == set(rows)

        settled: int | None = None  # the person the keys settle, 0 for a new one
        if identity is not None and usable:
            if len(matches) == 1 and (
                previous is None or (previous.person_id == matches[0] and same_keys)
            ):
                settled = matches[0]
            elif not matches and resident_id is not None and previous is None:
                settled = 0
        if settled is not None:
            if settled == 0:
                pending.new_persons += 1
                settled = -pending.new_persons
                rule = "new"
            else:
                rule = found[settled][0]
            pending.links.append(
                store.NewLink(
                    inst, rec, settled, rule, _demographics_row(demo), rows, previous is None
                )
            )
            pending.outcomes.append((index, previous, Linked(settled, rule)))
            if demo.birth_date is not None:
                pending.birth_dates.add(demo.birth_date)
            for row in rows:
                by_key.setdefault(row, set()).add(settled)
            if resident_id is not None:
                resident_ids.setdefault(settled, set()).add(resident_id)
            continue

        # The step one record at a time. It reads the index: what it could read is written.
        if matches or previous is not None or demo.birth_date in pending.birth_dates:
            real = pending.flush(conn, outcomes)
        else:
            real = pending.make_persons(conn)
        if real:
            by_key = {k: {real.get(p, p) for p in v} for k, v in by_key.items()}
            resident_ids = {real.get(p, p): v for p, v in resident_ids.items()}
        if identity is None or not usable:
            unlink_record(conn, inst, rec)
            linked = None
        else:
            linked = link_record(conn, inst, rec, identity)
        outcomes[index] = (previous, linked)
        if linked is None:
            if previous is not None:
                pending.flush(conn, outcomes)
                return index + 1  # its keys left the index
            continue
        if linked.merged or (
            previous is not None and (previous.person_id != linked.person_id or not same_keys)
        ):
            pending.flush(conn, outcomes)
            return index + 1  # links moved: look the rest up again
        for row in rows:
            by_key.setdefault(row, set()).add(linked.person_id)
        if resident_id is not None:
            resident_ids.setdefault(linked.person_id, set()).add(resident_id)
    pending.flush(conn, outcomes)
    return len(records)
