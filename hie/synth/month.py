"""A month of uploads for a region, with realistic defects, and the figures they must produce.

Deterministic for a seed. The plan knows its truth: for every institution the records, upload
days, tables, visits, discharges, persons and rejections the platform must report, computed here
by the counting rules of report-spec.md independently of the platform's code.
"""

from __future__ import annotations

import calendar
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hie.catalog import Catalog, Table
from hie.synth.documents import (
    Person,
    cda_document,
    fhir_condition,
    fhir_encounter,
    fhir_patient,
    resident_id,
)
from hie.synth.region import REGION, Member
from hie.validators.cda_rules.content import ContentRules

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗"
GIVEN = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "强",
    "磊",
    "洋",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "霞",
    "平",
)
DIAGNOSES = (
    ("J06.900", "急性上呼吸道感染"),
    ("K29.700", "胃炎"),
    ("M54.500", "腰痛"),
    ("I10.x00", "原发性高血压"),
    ("E11.900", "2型糖尿病"),
    ("K35.800", "急性阑尾炎"),
)
HYPERTENSION = ("I10.x00", "原发性高血压")
DIABETES = ("E11.900", "2型糖尿病")
# urn:uuid fullUrls must be UUIDs: made from each resource's id, the same for the same seed.
FULL_URLS = uuid.UUID("4f1b2d0e-6a43-5c1e-9d2a-68696573796e")
DEFECTS = ("missing-section", "bad-gender", "malformed", "duplicate", "replacement", "check-digit")


@dataclass
class Upload:
    institution: str
    body: bytes
    received_at: datetime
    expect: str  # accepted | unchanged | rejected
    note: str = ""
    channel: str = "cda"  # cda: POST /cda; fhir: a transaction Bundle to POST /fhir


@dataclass
class Truth:
    """What the report must say for one institution and the month."""

    records: int = 0
    days: set[date] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    visits: set[str] = field(default_factory=set)
    discharges: set[str] = field(default_factory=set)
    persons: dict[str, set[str]] = field(
        default_factory=lambda: {"basic": set(), "hypertension": set(), "diabetes": set()}
    )
    rejected: int = 0

    def figures(self, declared: list[str] | None) -> dict[str, Any]:
        return {
            "uploaded_tables": len(self.tables),
            "undeclared_tables": sorted(self.tables - set(declared))
            if declared is not None
            else [],
            "missing_declared_tables": sorted(set(declared or ()) - self.tables),
            "records": self.records,
            "upload_days": len(self.days),
            "outpatient_visits": len(self.visits),
            "discharges": len(self.discharges),
            "health_records": {k: len(v) for k, v in self.persons.items()},
            "rejected": self.rejected,
        }


@dataclass
class MonthPlan:
    month: date
    members: tuple[Member, ...]
    declarations: dict[str, list[str] | None]
    uploads: list[Upload]
    truth: dict[str, Truth]

    def expected(self, code: str) -> dict[str, Any]:
        return self.truth[code].figures(self.declarations[code])


class _Builder:
    def __init__(
        self,
        month: date,
        catalog: Catalog,
        rules: ContentRules,
        zone: ZoneInfo,
        rng: random.Random,
        defect_rate: float,
    ) -> None:
        self.month, self.catalog, self.rules, self.zone = month, catalog, rules, zone
        self.rng, self.defect_rate = rng, defect_rate
        self.days_in_month = calendar.monthrange(month.year, month.month)[1]
        self.uploads: list[Upload] = []
        self.truth: dict[str, Truth] = defaultdict(Truth)
        self.serial = 0

    def moment(self) -> datetime:
        day = self.rng.randrange(self.days_in_month)
        seconds = self.rng.randrange(7 * 3600, 22 * 3600)
        start = datetime(self.month.year, self.month.month, 1, tzinfo=self.zone)
        return start + timedelta(days=day, seconds=seconds)

    def person(self, member: Member) -> Person:
        self.serial += 1
        gender = self.rng.choice("12")
        birth = date(
            self.rng.randrange(1935, 2005), self.rng.randrange(1, 13), self.rng.randrange(1, 29)
        )
        area = (member.district or member.code)[:6].ljust(6, "0")
        name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN) + self.rng.choice(("", *GIVEN))
        return Person(
            resident_id(area, birth, self.serial, gender),
            f"{area}{self.serial:012d}",
            name,
            gender,
            birth,
        )

    def document(
        self,
        member: Member,
        table: Table,
        person: Person,
        *,
        diagnosis: tuple[str, str] | None = None,
        allow_defects: bool = True,
    ) -> None:
        """Plan one document of ``table`` (with perhaps a defect) and what it must count."""
        self.serial += 1
        doc_id = f"{member.code}-{table.code}-{self.month:%Y%m}-{self.serial:06d}"
        logical = f"2.16.156.10011.1.1^{doc_id}"
        received = self.moment()
        effective = received - timedelta(hours=self.rng.randrange(1, 72))
        encounter = {"C0002": "1", "C0003": "2", "C0053": "3"}.get(table.code)
        defect = (
            self.rng.choice(DEFECTS)
            if allow_defects and self.rng.random() < self.defect_rate
            else None
        )
        if defect == "check-digit":
            wrong = person.resident_id[:-1] + ("0" if person.resident_id[-1] != "0" else "1")
            person = Person(
                wrong, person.health_record_number, person.name, person.gender, person.birth
            )
        kwargs: dict[str, Any] = {
            "document_id": doc_id,
            "institution": member.code,
            "institution_name": member.name,
            "person": person,
            "effective": effective,
            "diagnosis": diagnosis or self.rng.choice(DIAGNOSES[:3]),
            "rules": self.rules,
            "encounter_code": encounter,
        }
        truth = self.truth[member.code]
        if defect in ("missing-section", "bad-gender", "malformed"):
            if defect == "missing-section":
                sections = [r.code for r in self.rules.of(table.code) if r.requirement == "section"]
                if not sections or all(
                    r.severity.value != "error"
                    for r in self.rules.of(table.code)
                    if r.requirement == "section"
                ):
                    defect = "bad-gender"  # this table has no required section to leave out
                else:
                    kwargs["omit_section"] = next(
                        r.code
                        for r in self.rules.of(table.code)
                        if r.requirement == "section" and r.severity.value == "error"
                    )
            if defect == "bad-gender":
                kwargs["gender_code"] = "M"
            body = cda_document(table, **kwargs)
            if defect == "malformed":
                body = body.replace(b"</title>", b"</titel>", 1)
            self.uploads.append(Upload(member.code, body, received, "rejected", defect))
            truth.rejected += 1
            return
        body = cda_document(table, **kwargs)
        self.uploads.append(Upload(member.code, body, received, "accepted", defect or ""))
        self._count(member, table, logical, person, received, diagnosis=kwargs["diagnosis"])
        if defect == "duplicate":
            later = min(received + timedelta(minutes=5), self._month_end())
            self.uploads.append(Upload(member.code, body, later, "unchanged", "duplicate"))
        elif defect == "replacement":
            later = min(received + timedelta(hours=2), self._month_end())
            kwargs["document_id"] = doc_id + "R"
            kwargs["replaces"] = doc_id
            self.uploads.append(
                Upload(member.code, cda_document(table, **kwargs), later, "accepted", "replacement")
            )
            truth.records += 1
            truth.days.add(later.date())

    def fhir_visit(self, member: Member, inpatient: bool) -> None:
        """A transaction Bundle from a hospital's FHIR interface: the patient, the encounter
        (outpatient, or an inpatient stay that has ended) and its diagnosis."""
        person = self.person(member)
        self.serial += 1
        # The month is in the ids: another month of the same seed adds new resources instead of
        # updating this month's.
        suffix = f"{member.code}-{self.month:%Y%m}-{self.serial:06d}"
        received = self.moment()
        start = received - timedelta(days=self.rng.randrange(1, 8) if inpatient else 0, hours=2)
        diagnosis = self.rng.choice(DIAGNOSES)
        resources = [
            fhir_patient(f"pat-{suffix}", person),
            fhir_encounter(
                f"enc-{suffix}", f"pat-{suffix}", "IMP" if inpatient else "AMB", "finished", start
            ),
            fhir_condition(f"cond-{suffix}", f"pat-{suffix}", *diagnosis, start),
        ]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": _full_url(r),
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in resources
            ],
        }
        body = json.dumps(bundle, ensure_ascii=False).encode()
        self.uploads.append(Upload(member.code, body, received, "accepted", "", "fhir"))
        truth = self.truth[member.code]
        truth.records += len(resources)
        truth.days.add(received.date())
        truth.tables |= {"FHIR.Patient", "FHIR.Encounter", "FHIR.Condition"}
        (truth.discharges if inpatient else truth.visits).add(f"Encounter/enc-{suffix}")
        key = f"id:{person.resident_id}"
        truth.persons["basic"].add(key)
        if diagnosis == HYPERTENSION:
            truth.persons["hypertension"].add(key)
        elif diagnosis == DIABETES:
            truth.persons["diabetes"].add(key)

    def _month_end(self) -> datetime:
        start = datetime(self.month.year, self.month.month, 1, tzinfo=self.zone)
        return start + timedelta(days=self.days_in_month) - timedelta(seconds=1)

    def _count(
        self,
        member: Member,
        table: Table,
        logical: str,
        person: Person,
        received: datetime,
        *,
        diagnosis: tuple[str, str],
    ) -> None:
        truth = self.truth[member.code]
        truth.records += 1
        truth.days.add(received.date())
        truth.tables.add(table.code)
        if "outpatient_visits" in table.feeds:
            truth.visits.add(logical)
        if "discharges" in table.feeds:
            truth.discharges.add(logical)
        valid_id = _valid(person.resident_id)
        key = f"id:{person.resident_id}" if valid_id else f"hr:{person.health_record_number}"
        for figure in table.feeds:
            if figure.startswith("health_records."):
                truth.persons[figure.removeprefix("health_records.")].add(key)


def _full_url(resource: dict[str, Any]) -> str:
    return f"urn:uuid:{uuid.uuid5(FULL_URLS, resource['resourceType'] + '/' + resource['id'])}"


def _table(catalog: Catalog, code: str) -> Table:
    table = catalog.get(code)
    if table is None:
        raise ValueError(f"the catalog has no table {code}; the generator needs the default tables")
    return table


def _valid(number: str) -> bool:
    from hie.normalize.identity import resident_id_problem

    return resident_id_problem(number) is None


def plan_month(
    month: date,
    catalog: Catalog,
    rules: ContentRules,
    *,
    seed: int = 2019,
    scale: float = 1.0,
    defect_rate: float = 0.05,
    zone: ZoneInfo | None = None,
    members: tuple[Member, ...] = REGION,
) -> MonthPlan:
    """Plan a month: each institution uploads in proportion to its activity in the bulletin."""
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not secrets)
    builder = _Builder(month, catalog, rules, zone or ZoneInfo("Asia/Shanghai"), rng, defect_rate)
    declarations: dict[str, list[str] | None] = {}
    top_outpatient = max(m.outpatient_weight for m in members) or 1
    top_inpatient = max(m.inpatient_weight for m in members) or 1
    for member in members:
        required = [t.code for t in catalog.required_for(member.kind)]
        if member.declared_share is None:
            declarations[member.code] = None
            declared = rng.sample(required, max(1, len(required) // 3))
        else:
            count = max(1, round(member.declared_share * len(required)))
            declarations[member.code] = declared = sorted(rng.sample(required, count))
        builder.truth[member.code]  # every institution has a row, active or not
        if member.code == members[-1].code:
            continue  # the bulletin's last hospital uploaded nothing: keep one silent
        outpatient = round(scale * 60 * member.outpatient_weight / top_outpatient)
        inpatient = round(scale * 20 * member.inpatient_weight / top_inpatient)
        if member.kind == "hospital":
            for _ in range(outpatient):
                builder.document(member, _table(catalog, "C0002"), builder.person(member))
            for _ in range(inpatient):
                builder.document(member, _table(catalog, "C0053"), builder.person(member))
            # Some hospitals also send FHIR from a newer system.
            if rng.random() < 0.4:
                for n in range(max(1, round(scale * 8))):
                    builder.fhir_visit(member, inpatient=n % 3 == 0)
        else:
            persons = [builder.person(member) for _ in range(max(2, round(scale * 30)))]
            for person in persons:
                builder.document(member, _table(catalog, "HSDA00.01"), person)
            for person in persons[: len(persons) // 3]:
                builder.document(
                    member, _table(catalog, "HSDB04.01"), person, diagnosis=HYPERTENSION
                )
            for person in persons[len(persons) // 4 : len(persons) // 4 + len(persons) // 6 + 1]:
                follow_up = _table(catalog, "HSDB04.02")
                builder.document(member, follow_up, person, diagnosis=DIABETES)
        # A few documents of other declared tables, and now and then an undeclared one.
        others = [
            c
            for c in declared
            if c not in ("C0002", "C0053", "HSDA00.01", "HSDB04.01", "HSDB04.02")
        ]
        for code in rng.sample(others, min(len(others), max(1, round(scale * 5)))):
            builder.document(
                member, _table(catalog, code), builder.person(member), allow_defects=False
            )
        undeclared = [c for c in required if c not in declared]
        if undeclared and rng.random() < 0.3:
            builder.document(
                member,
                _table(catalog, rng.choice(undeclared)),
                builder.person(member),
                allow_defects=False,
            )
    uploads = sorted(builder.uploads, key=lambda u: u.received_at)
    return MonthPlan(month, members, declarations, uploads, dict(builder.truth))
