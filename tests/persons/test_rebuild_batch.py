"""A rebuild links a batch of records in a few statements (``link_records``): it must link
exactly as the store step's ``link_record`` does one record after the other, whose order
matters (a score compares with whoever was linked before)."""

from __future__ import annotations

import random
from typing import Any

import pytest

import hie.ingest
from hie.normalize.identity import check_character
from hie.persons.rebuild import Progress, rebuild_batch
from hie.storage import Database
from tests.persons.conftest import (
    CATALOG,
    HEALTH_CARD,
    HEALTH_RECORD,
    INPATIENT,
    RESIDENT_ID,
    StoreFn,
    patient,
)

NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"]
DATES = ["1949-12-31", "1950-03-01", "1961-07-15"]


def _resident(rng: random.Random, born: str) -> str:
    first17 = f"320102{born.replace('-', '')}{rng.randrange(1000):03d}"
    return first17 + check_character(first17)


def _store_mixed(store: StoreFn, seed: int) -> None:
    """Records of few residents sharing birth dates and names: ID numbers, health cards,
    hospital numbers, demographics only (some a little different: reviews), records that
    bridge two residents, deletions and updates."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    people = []
    for n in range(14):
        born = rng.choice(DATES)
        people.append(
            {
                "id": _resident(rng, born),
                "card": f"HC-{n}",
                "record": f"JK-{n}",
                "name": rng.choice(NAMES),
                "birth": born,
                "gender": rng.choice(["male", "female"]),
                "address": f"南京市玄武区北京东路{rng.randrange(3)}号",
            }
        )
    ids: list[str] = []
    for n in range(160):
        who, other = rng.choice(people), rng.choice(people)
        kind = rng.randrange(8)
        keys: list[tuple[str, str]] = []
        if kind in (0, 1):
            keys.append((RESIDENT_ID, who["id"]))
        if kind in (1, 2):
            keys.append((HEALTH_CARD, who["card"]))
        if kind == 3:
            keys.append((HEALTH_RECORD, who["record"]))
        if kind == 4:  # bridges two residents: a merge, or a conflict of ID numbers
            keys += [(RESIDENT_ID, who["id"]), (HEALTH_CARD, other["card"])]
        if kind == 5:
            keys.append((INPATIENT, f"ZY{rng.randrange(20)}"))
        address = who["address"] if rng.random() < 0.6 else f"南京市鼓楼区{rng.randrange(9)}号"
        name = who["name"] if rng.random() < 0.8 else rng.choice(NAMES)
        institution = rng.choice(["H1", "H2", "D1"])
        pid = f"r{n}" if rng.random() < 0.85 or not ids else rng.choice(ids)  # some updates
        ids.append(pid)
        store(
            institution,
            patient(
                pid, *keys, name=name, birth=who["birth"], gender=who["gender"], address=address
            ),
            deleted=rng.random() < 0.04,
        )


def _snapshot(region: Database) -> dict[str, Any]:
    """The index with person ids replaced by the records each person has."""
    with region.connection() as conn:
        links = conn.execute(
            "select institution_code || ':' || record_id as record, person_id, rule, score,"
            " name, birth_date, gender, address from person_link"
        ).fetchall()
        keys = conn.execute(
            "select institution_code || ':' || record_id as record, system, value,"
            " key_institution from person_identifier order by 1, 2, 3, 4"
        ).fetchall()
        merged = conn.execute(
            "select id, merged_into from person where merged_into is not null"
        ).fetchall()
        reviews = conn.execute(
            "select institution_code || ':' || record_id as record, person_id, candidate_id,"
            " score, parts, status from person_review"
        ).fetchall()
        history = conn.execute(
            "select action, person_id, other_person_id, institution_code, record_id, detail"
            " from person_history"
        ).fetchall()
    groups: dict[int, list[str]] = {}
    for row in links:
        groups.setdefault(row["person_id"], []).append(row["record"])
    into = {r["id"]: r["merged_into"] for r in merged}

    def person(person_id: int | None) -> str:
        if person_id is None:
            return "-"
        if person_id in into:
            return f"merged into {person(into[person_id])}"
        return ",".join(sorted(groups.get(person_id, []))) or "(no records)"

    return {
        "links": sorted(
            (
                r["record"],
                person(r["person_id"]),
                r["rule"],
                r["score"],
                r["name"],
                str(r["birth_date"]),
                r["gender"],
                r["address"],
            )
            for r in links
        ),
        "keys": [tuple(r.values()) for r in keys],
        "reviews": sorted(
            (
                r["record"],
                person(r["person_id"]),
                person(r["candidate_id"]),
                r["score"],
                sorted(r["parts"].items()),
                r["status"],
            )
            for r in reviews
        ),
        "history": sorted(
            (
                r["action"],
                person(r["person_id"]),
                person(r["other_person_id"]),
                r["institution_code"] or "",
                r["record_id"] or "",
                repr(sorted(r["detail"].items())),
            )
            for r in history
        ),
    }


def _rebuild(region: Database, settings: Any, *, one_by_one: bool) -> Progress:
    total, after = Progress(), None
    while True:
        with region.transaction() as tx:
            done, after = rebuild_batch(
                tx.conn, CATALOG.get, after, zone=settings.zone, limit=16, one_by_one=one_by_one
            )
        total.add(done)
        if after is None:
            return total


def _empty_index(region: Database) -> None:
    with region.transaction() as tx:
        tx.conn.execute(
            "truncate person_history, person_review, person_identifier, person_link, person cascade"
        )


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_batch_rebuild_links_as_the_record_by_record_path(
    region: Database, store: StoreFn, settings: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    with monkeypatch.context() as patched:  # stored as before the index existed
        patched.setattr(hie.ingest, "index_stored", lambda *a, **k: None)
        _store_mixed(store, seed)

    old_first = _rebuild(region, settings, one_by_one=True)
    old = _snapshot(region)
    old_again = _rebuild(region, settings, one_by_one=True)
    old_twice = _snapshot(region)
    _empty_index(region)
    new_first = _rebuild(region, settings, one_by_one=False)
    new = _snapshot(region)
    new_again = _rebuild(region, settings, one_by_one=False)

    assert new == old
    assert new_first == old_first
    assert new_again == old_again
    assert _snapshot(region) == old_twice
    # The data reached every path: merges, reviews, score links and new persons.
    actions = {h[0] for h in old["history"]}
    assert {"link", "merge"} <= actions
    assert old["reviews"]
    assert {"score", "new", RESIDENT_ID, HEALTH_CARD} <= {link[2] for link in old["links"]}
    assert old_first.linked > 100 and old_first.skipped > 0
