"""Two hospitals and a district on the HTTP app: submitter tokens of each, clinicians at H1 and
H2, an admin and a regulator; one resident known to all three under different identifiers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.audit import flush_reads
from hie.config import Settings
from hie.persons import service as persons
from hie.registry import Institution
from hie.storage import Database, open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
HEALTH_RECORD = "urn:oid:2.16.156.10011.1.2"
INSTITUTION = "urn:oid:2.16.156.10011.1.5"
ZHANG_ID = "11010519491231002X"
OTHER_ID = "110105194912310046"  # another resident (valid check character)


@dataclass(frozen=True)
class Tokens:
    h1: str
    h2: str
    d1: str
    clinician_h1: str
    clinician_h2: str
    admin: str
    regulator: str


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    yield database
    database.close()


@pytest.fixture
def tokens(database: Database) -> Tokens:
    with database.transaction() as tx:
        for code, name, kind in (
            ("H1", "鼓楼医院", "hospital"),
            ("H2", "省人民医院", "hospital"),
            ("D1", "玄武区卫生服务中心", "district"),
        ):
            add_institution(tx.conn, Institution(code, name, kind), actor="t")

        def token(role: str, institution: str | None) -> str:
            return create_token(
                tx.conn, role=role, institution_code=institution, label="", actor="t"
            )[1]

        return Tokens(
            token("submitter", "H1"),
            token("submitter", "H2"),
            token("submitter", "D1"),
            token("clinician", "H1"),
            token("clinician", "H2"),
            token("admin", None),
            token("regulator", None),
        )


@pytest.fixture
def client(settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def patient(
    pid: str, *identifiers: tuple[str, str], address: str = "江苏省南京市玄武区北京东路1号"
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"text": "张伟"}],
        "gender": "male",
        "birthDate": "1949-12-31",
        "address": [{"text": address}],
    }


def condition(cid: str, patient_id: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def consent(
    cid: str,
    patient_id: str,
    *,
    status: str = "active",
    actors: tuple[str, ...] = ("H2",),
    classes: tuple[str, ...] = (),
    period: dict[str, str] | None = None,
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "permit"}
    if actors:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": INSTITUTION, "value": code}},
            }
            for code in actors
        ]
    if classes:
        provision["class"] = [
            {"system": "http://hl7.org/fhir/resource-types", "code": c} for c in classes
        ]
    if period:
        provision["period"] = period
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": provision,
    }


def audit_entries(database: Database, **where: str) -> list[dict[str, Any]]:
    flush_reads()  # the app's queued read entries
    with database.connection() as conn:
        rows = conn.execute("select * from audit_event order by id").fetchall()
    return [dict(r) for r in rows if all(r[k] == v for k, v in where.items())]


AT_H1 = {"X-HIE-Institution": "H1"}
AT_D1 = {"X-HIE-Institution": "D1"}


def put(client: TestClient, token: str, resource: dict[str, Any]) -> None:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=auth(token))
    assert response.status_code in (200, 201), response.text


@pytest.fixture
def zhang(client: TestClient, tokens: Tokens, database: Database) -> int:
    """张伟 at H1 (resident ID and health card), H2 (health card), D1 (demographics and a
    district health-record number, linked through the review list); H1 and D1 hold a
    diagnosis each. Returns his person id."""
    put(client, tokens.h1, patient("zhang-h1", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    put(client, tokens.h2, patient("zhang-h2", (HEALTH_CARD, "HC-778")))
    put(
        client,
        tokens.d1,
        patient("zhang-d1", (HEALTH_RECORD, "JK-3201"), address="南京市玄武区孝陵卫街道200号"),
    )
    put(client, tokens.h1, condition("dx-h1", "zhang-h1", "出院诊断：冠心病"))
    put(client, tokens.d1, condition("dx-d1", "zhang-d1", "高血压"))
    with database.transaction() as tx:
        person = persons.person_of_record(tx.conn, "H1", "Patient/zhang-h1")
        assert person is not None
        assert persons.person_of_record(tx.conn, "H2", "Patient/zhang-h2") == person
        [review] = tx.conn.execute("select * from person_review where status = 'open'").fetchall()
        assert review["candidate_id"] == person
        persons.merge(tx.conn, person, review["person_id"], actor="t", reason="review")
    return person


def read_dx(client: TestClient, token: str, **headers: str) -> Any:
    return client.get("/fhir/Condition/dx-h1", headers=auth(token, **AT_H1, **headers))
