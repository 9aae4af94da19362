"""Two hospitals and a district holding records of one resident, on the HTTP app, for the record
browser's tests: H1 uploaded her discharge summary (CDA), H2 knows her by her health card (a
Patient and an Encounter), D1 by demographics only; tokens of each role."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hie.registry import Institution
from hie.storage import Database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from tests.conftest import CdaFixtures

INSTITUTION = "urn:oid:2.16.156.10011.1.5"
RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
# 陈静 of the C0053 fixture: her resident ID number and health card.
CHEN_ID = "320113198906300623"
CHEN_CARD = "H32011300045678"
DISCHARGE = "2.16.156.10011.1.1^H1-C0053-20190720-0002"
FHIR_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


@dataclass(frozen=True)
class Region:
    tokens: dict[str, str]  # submitters h1, h2, d1; clinician_<code>; admin; regulator
    person: int  # 陈静's person id


def _put(client: httpx.Client, token: str, resource: dict[str, Any]) -> None:
    answer = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code in (200, 201), answer.text


def consent(status: str = "active", classes: tuple[str, ...] = ()) -> dict[str, Any]:
    """H1's record of 陈静's consent: H2 may read her records (of ``classes``, when given)."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": "chen-share",
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
        "patient": {"identifier": {"system": RESIDENT_ID, "value": CHEN_ID}},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"identifier": {"system": INSTITUTION, "value": "H2"}},
                }
            ],
        },
    }
    if classes:
        resource["provision"]["class"] = [{"code": code} for code in classes]
    return resource


def set_consent(
    client: httpx.Client, region: Region, status: str, classes: tuple[str, ...] = ()
) -> None:
    _put(client, region.tokens["h1"], consent(status, classes))


def build_region(client: httpx.Client, database: Database, cda: CdaFixtures) -> Region:
    with database.transaction() as tx:
        for code, name, kind in (
            ("H1", "鼓楼医院", "hospital"),
            ("H2", "省人民医院", "hospital"),
            ("D1", "玄武区卫生服务中心", "district"),
        ):
            add_institution(tx.conn, Institution(code, name, kind), actor="t")
        set_declaration(tx.conn, "H1", ["C0053"], actor="t")
        tokens = {
            name: create_token(tx.conn, role=role, institution_code=code, label="", actor="t")[1]
            for name, role, code in (
                ("h1", "submitter", "H1"),
                ("h2", "submitter", "H2"),
                ("d1", "submitter", "D1"),
                ("clinician_h1", "clinician", "H1"),
                ("clinician_h2", "clinician", "H2"),
                ("clinician_d1", "clinician", "D1"),
                ("admin", "admin", None),
                ("regulator", "regulator", None),
            )
        }
    document = cda.edited(
        "C0053-valid.xml",
        ('extension="455755678"/>', 'extension="H1"/>'),
        ('extension="455755678-C0053-20190720-0002"', 'extension="H1-C0053-20190720-0002"'),
    )
    answer = client.post(
        "/cda",
        content=document,
        headers={"Authorization": f"Bearer {tokens['h1']}", "Content-Type": "application/xml"},
    )
    assert answer.status_code == 201, answer.text
    _put(
        client,
        tokens["h2"],
        {
            "resourceType": "Patient",
            "id": "chen",
            "identifier": [{"system": HEALTH_CARD, "value": CHEN_CARD}],
            "name": [{"text": "陈静"}],
            "gender": "female",
            "birthDate": "1989-06-30",
        },
    )
    _put(
        client,
        tokens["h2"],
        {
            "resourceType": "Encounter",
            "id": "visit-1",
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": {"reference": "Patient/chen"},
            "period": {"start": "2019-08-02T09:30:00+08:00", "end": "2019-08-02T10:00:00+08:00"},
        },
    )
    # H2 also holds an outpatient record of hers as a FHIR document Bundle.
    bundle = json.loads((FHIR_FIXTURES / "document-c0002.json").read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].update(
                identifier=[{"system": RESIDENT_ID, "value": CHEN_ID}],
                gender="female",
                birthDate="1989-06-30",
            )
    _put(client, tokens["h2"], bundle)
    with database.connection() as conn:
        row = conn.execute(
            "select person_id from person_link where institution_code = 'H1' and record_id = %s",
            (DISCHARGE,),
        ).fetchone()
        assert row is not None
        h2 = conn.execute(
            "select person_id from person_link where institution_code = 'H2'"
            " and record_id = 'Patient/chen'"
        ).fetchone()
        assert h2 is not None and h2["person_id"] == row["person_id"]
    return Region(tokens, int(row["person_id"]))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def sign_in(client: httpx.Client, token: str) -> None:
    """A dashboard session for ``token`` in the client's cookie jar."""
    client.cookies.clear()
    form = client.get("/dashboard/login")
    answer = client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(form.text), "token": token, "next": "/dashboard/residents"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
