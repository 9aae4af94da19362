"""The issue's exchange scenario over HTTP: two hospitals and a district know one resident under
a resident ID, a health card and demographics only; a clinician at H2 reads H1's records of
him only while he consents, or by break-glass; every access is in the audit trail and in his
access history; an unmerge separates the records again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli import app as cli
from hie.persons import service as persons
from hie.storage import Database
from tests.consent.conftest import (
    AT_D1,
    AT_H1,
    HEALTH_CARD,
    OTHER_ID,
    RESIDENT_ID,
    ZHANG_ID,
    Tokens,
    audit_entries,
    auth,
    condition,
    consent,
    patient,
    put,
    read_dx,
)


def test_a_clinician_reads_another_hospitals_records_only_while_consent_is_granted(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    refused = read_dx(client, tokens.clinician_h2)
    assert refused.status_code == 403
    # No hint of existence: the same answer for a record that does not exist, and for a
    # resident the platform has never seen.
    missing = client.get("/fhir/Condition/nothing", headers=auth(tokens.clinician_h2, **AT_H1))
    nobody = client.get(
        "/fhir/Condition",
        params={"patient": "Patient/nobody"},
        headers=auth(tokens.clinician_h2, **AT_H1),
    )
    search = client.get(
        "/fhir/Condition",
        params={"patient": "Patient/zhang-h1"},
        headers=auth(tokens.clinician_h2, **AT_H1),
    )
    everything = client.get(
        "/fhir/Patient/zhang-h1/$everything", headers=auth(tokens.clinician_h2, **AT_H1)
    )
    for answer in (missing, nobody, search, everything):
        assert (answer.status_code, answer.json()) == (403, refused.json())

    put(client, tokens.h1, consent("share-1", "zhang-h1", actors=("H2",)))
    allowed = read_dx(client, tokens.clinician_h2)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["code"]["text"] == "出院诊断：冠心病"
    found = client.get(
        "/fhir/Condition",
        params={"patient": "Patient/zhang-h1"},
        headers=auth(tokens.clinician_h2, **AT_H1),
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == ["dx-h1"]
    whole = client.get(
        "/fhir/Patient/zhang-h1/$everything", headers=auth(tokens.clinician_h2, **AT_H1)
    )
    assert {e["resource"]["id"] for e in whole.json()["entry"]} == {"zhang-h1", "dx-h1", "share-1"}
    # The consent is the resident's: his records at the district are covered too.
    assert (
        client.get("/fhir/Condition/dx-d1", headers=auth(tokens.clinician_h2, **AT_D1)).status_code
        == 200
    )
    # Granted to H2 only: a clinician elsewhere still may not, and a submitter never.
    assert read_dx(client, tokens.h2).status_code == 403

    put(client, tokens.h1, consent("share-1", "zhang-h1", status="inactive"))
    again = read_dx(client, tokens.clinician_h2)
    assert (again.status_code, again.json()) == (403, refused.json())

    with database.connection() as conn:
        row = conn.execute("select * from consent").fetchone()
    assert row is not None and (row["status"], row["patient_record"]) == (
        "inactive",
        "Patient/zhang-h1",
    )


def test_consent_limited_to_classes_shows_only_those(
    client: TestClient, tokens: Tokens, zhang: int
) -> None:
    put(client, tokens.h1, consent("labs-only", "zhang-h1", actors=(), classes=("Observation",)))
    assert read_dx(client, tokens.clinician_h2).status_code == 403
    whole = client.get(
        "/fhir/Patient/zhang-h1/$everything", headers=auth(tokens.clinician_h2, **AT_H1)
    )
    assert whole.status_code == 200
    assert {e["resource"]["resourceType"] for e in whole.json()["entry"]} == {"Patient"}


def test_only_an_institution_holding_the_residents_records_records_a_consent(
    client: TestClient, tokens: Tokens, zhang: int
) -> None:
    # H2 has no Patient/zhang-h1: a consent naming it is refused whether or not H1 has one.
    response = client.put(
        "/fhir/Consent/c9", json=consent("c9", "zhang-h1"), headers=auth(tokens.h2)
    )
    assert response.status_code == 403, response.text
    assert client.get("/fhir/Consent/c9", headers=auth(tokens.h2)).status_code == 404
    # Clinicians write nothing, consents included.
    refused = client.put(
        "/fhir/Consent/c9", json=consent("c9", "zhang-h2"), headers=auth(tokens.clinician_h2)
    )
    assert refused.status_code == 403


def test_break_glass_is_allowed_flagged_and_reviewed(
    client: TestClient,
    tokens: Tokens,
    zhang: int,
    database: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    blank = read_dx(client, tokens.clinician_h2, **{"X-Break-Glass": "  "})
    assert blank.status_code == 403
    urgent = read_dx(client, tokens.clinician_h2, **{"X-Break-Glass": "unconscious, chest pain"})
    assert urgent.status_code == 200

    runner = CliRunner()
    env = {"HIE_DATABASE_URL": database_url, "HIE_DATA_DIR": str(tmp_path)}
    listed = runner.invoke(cli, ["consent", "breakglass"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "unconscious, chest pain" in listed.output and "1 to review" in listed.output
    with database.connection() as conn:
        [flagged] = conn.execute("select * from break_glass").fetchall()
    assert (flagged["person_id"], flagged["source_institution"]) == (zhang, "H1")
    assert flagged["institution_code"] == "H2" and flagged["reviewed_at"] is None
    entry_id = str(flagged["id"])
    reviewed = runner.invoke(cli, ["consent", "breakglass", "--review", entry_id], env=env)
    assert reviewed.exit_code == 0, reviewed.output
    assert "0 to review" in runner.invoke(cli, ["consent", "breakglass"], env=env).output
    twice = runner.invoke(cli, ["consent", "breakglass", "--review", entry_id], env=env)
    assert twice.exit_code == 1 and "already reviewed" in twice.output


def test_every_access_is_audited_and_in_the_residents_access_history(
    client: TestClient,
    tokens: Tokens,
    zhang: int,
    database: Database,
    tmp_path: Path,
    database_url: str,
) -> None:
    assert read_dx(client, tokens.clinician_h2).status_code == 403  # an attempt, recorded too
    put(client, tokens.h1, consent("share-1", "zhang-h1"))
    assert read_dx(client, tokens.clinician_h2).status_code == 200
    client.get(
        "/fhir/Condition",
        params={"patient": "Patient/zhang-h1"},
        headers=auth(tokens.clinician_h2, **AT_H1),
    )
    put(client, tokens.h1, consent("share-1", "zhang-h1", status="inactive"))
    assert read_dx(client, tokens.clinician_h2, **{"X-Break-Glass": "emergency"}).status_code == 200

    reads = [
        e
        for e in audit_entries(database, action="fhir.read", role="clinician")
        if e["target"] == "Condition/dx-h1"
    ]
    used = [
        (e["outcome"], e["detail"].get("consents"), e["detail"].get("break_glass")) for e in reads
    ]
    assert used == [(4, None, None), (0, ["H1/Consent/share-1"], None), (0, None, "emergency")]
    assert all(e["detail"]["persons"] == [zhang] for e in reads)
    assert [e["detail"].get("resources") for e in reads[1:]] == [["Condition/dx-h1"]] * 2
    every = json.dumps([e["detail"] for e in audit_entries(database)], ensure_ascii=False)
    assert ZHANG_ID not in every

    assert (
        client.get(
            f"/api/persons/{zhang}/access-history", headers=auth(tokens.clinician_h2)
        ).status_code
        == 403
    )
    history = client.get(f"/api/persons/{zhang}/access-history", headers=auth(tokens.admin))
    assert history.status_code == 200, history.text
    entries = history.json()["entries"]
    used = [
        (e["action"], e["consents"], e["break_glass"]) for e in entries if e["role"] == "clinician"
    ]
    assert ("fhir.read", ["H1/Consent/share-1"], None) in used
    assert ("fhir.read", [], "emergency") in used
    assert ("fhir.search", ["H1/Consent/share-1"], None) in used
    refused = [e for e in entries if e["role"] == "clinician" and e["outcome"] != 0]
    assert [(e["action"], e["target"]) for e in refused] == [("fhir.read", "Condition/dx-h1")]
    assert (
        client.get("/api/persons/999999/access-history", headers=auth(tokens.admin)).status_code
        == 404
    )

    shown = CliRunner().invoke(
        cli,
        ["persons", "access-history", str(zhang)],
        env={"HIE_DATABASE_URL": database_url, "HIE_DATA_DIR": str(tmp_path)},
    )
    assert shown.exit_code == 0, shown.output
    assert "break-glass: emergency" in shown.output and "H1/Consent/share-1" in shown.output


def test_lookups_across_institutions_show_other_hospitals_only_under_consent(
    client: TestClient, tokens: Tokens, zhang: int
) -> None:
    def pdq(token: str) -> set[str]:
        answer = client.get(
            "/fhir/Patient", params={"identifier": f"{HEALTH_CARD}|HC-778"}, headers=auth(token)
        )
        assert answer.status_code == 200, answer.text
        return {e["resource"]["id"] for e in answer.json().get("entry", [])}

    def pix(token: str) -> Any:
        return client.get(
            "/fhir/Patient/$ihe-pix",
            params={"sourceIdentifier": f"{RESIDENT_ID}|{ZHANG_ID}"},
            headers=auth(token),
        )

    assert pdq(tokens.clinician_h2) == {"zhang-h2"}
    assert pdq(tokens.admin) == {"zhang-h1", "zhang-h2", "zhang-d1"}
    targets = {
        p["valueReference"]["reference"]
        for p in pix(tokens.clinician_h2).json()["parameter"]
        if p["name"] == "targetId"
    }
    assert targets == {"Patient/zhang-h2"}
    # A resident only H1 knows: to a clinician at H2 the answer of an unknown identifier.
    put(client, tokens.h1, patient("li-h1", (RESIDENT_ID, OTHER_ID)))
    li = {"sourceIdentifier": f"{RESIDENT_ID}|{OTHER_ID}"}
    hidden = client.get("/fhir/Patient/$ihe-pix", params=li, headers=auth(tokens.clinician_h2))
    unknown = client.get(
        "/fhir/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{HEALTH_CARD}|nobody"},
        headers=auth(tokens.clinician_h2),
    )
    assert (hidden.status_code, hidden.json()) == (404, unknown.json())
    assert (
        client.get("/fhir/Patient/$ihe-pix", params=li, headers=auth(tokens.admin)).status_code
        == 200
    )
    put(client, tokens.h1, consent("share-1", "zhang-h1"))
    assert pdq(tokens.clinician_h2) == {"zhang-h1", "zhang-h2", "zhang-d1"}


def test_an_unmerge_separates_the_records_again(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    put(client, tokens.h1, consent("share-1", "zhang-h1"))
    at_district = auth(tokens.clinician_h2, **AT_D1)
    assert client.get("/fhir/Condition/dx-d1", headers=at_district).status_code == 200
    with database.transaction() as tx:
        district = tx.conn.execute(
            "select id from person where merged_into = %s", (zhang,)
        ).fetchone()
        assert district is not None
        persons.unmerge(tx.conn, district["id"], actor="t")
    # The district's record is another person's again: H1's consent no longer covers it.
    assert client.get("/fhir/Condition/dx-d1", headers=at_district).status_code == 403
    assert read_dx(client, tokens.clinician_h2).status_code == 200


def test_a_regulator_sees_figures_not_contents(
    client: TestClient, tokens: Tokens, zhang: int
) -> None:
    regulator = auth(tokens.regulator, **AT_H1)
    assert client.get("/fhir/Condition/dx-h1", headers=regulator).status_code == 403
    assert client.get("/fhir/Condition", headers=regulator).status_code == 403
    assert client.get("/fhir/Condition/dx-h1/_history", headers=regulator).status_code == 403


def test_a_consent_may_name_the_resident_by_identifier(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    by_card = consent("card-1", "unused", actors=("H1",))
    by_card["patient"] = {"identifier": {"system": HEALTH_CARD, "value": "HC-778"}}
    assert (
        client.put("/fhir/Consent/card-1", json=by_card, headers=auth(tokens.h2)).status_code == 201
    )
    with database.connection() as conn:
        row = conn.execute("select patient_record from consent").fetchone()
    assert row is not None and row["patient_record"] == "Patient/zhang-h2"
    # H2's consent lets H1's clinician read H2's records of him.
    put(client, tokens.h2, condition("dx-h2", "zhang-h2", "肺炎"))
    at_h2 = auth(tokens.clinician_h1, **{"X-HIE-Institution": "H2"})
    assert client.get("/fhir/Condition/dx-h2", headers=at_h2).status_code == 200

    put(client, tokens.h1, patient("li-h1", (RESIDENT_ID, OTHER_ID)))
    by_id = consent("li-1", "unused")
    by_id["patient"] = {"identifier": {"system": RESIDENT_ID, "value": OTHER_ID}}
    refused = client.put("/fhir/Consent/li-1", json=by_id, headers=auth(tokens.h2))
    assert refused.status_code == 403
    assert OTHER_ID not in refused.text


def test_a_consent_the_platform_cannot_apply_is_refused_with_its_location(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    # Nested exceptions are read one level deep; a deeper one is refused, located.
    deep = consent("deny-1", "zhang-h1")
    deep["provision"]["provision"] = [
        {"type": "deny", "provision": [{"type": "permit", "class": [{"code": "Observation"}]}]}
    ]
    response = client.put("/fhir/Consent/deny-1", json=deep, headers=auth(tokens.h1))
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["expression"] == ["Consent.provision.provision[0].provision"]
    assert "at most 1 level" in issue["diagnostics"]
    with database.connection() as conn:
        assert conn.execute("select count(*) as n from consent").fetchone() == {"n": 0}


def test_another_institutions_search_names_one_patient(
    client: TestClient, tokens: Tokens, zhang: int
) -> None:
    put(client, tokens.h1, consent("share-1", "zhang-h1"))
    headers = auth(tokens.clinician_h2, **AT_H1)
    assert client.get("/fhir/Condition", headers=headers).status_code == 400
    both = {"patient": ["Patient/zhang-h1", "Patient/li-h1"]}
    assert client.get("/fhir/Condition", params=both, headers=headers).status_code == 400
    rev = {"_id": "zhang-h1", "_revinclude": "Condition:subject"}
    assert client.get("/fhir/Patient", params=rev, headers=headers).status_code == 400
    # History and vread have no resident to decide on: they stay within one's own institution.
    assert client.get("/fhir/Condition/dx-h1/_history", headers=headers).status_code == 403
    assert client.get("/fhir/Condition/dx-h1/_history/1", headers=headers).status_code == 403
    found = client.get("/fhir/Patient", params={"_id": "zhang-h1"}, headers=headers)
    assert [e["resource"]["id"] for e in found.json()["entry"]] == ["zhang-h1"]


def test_break_glass_opens_a_lookup_across_institutions_too(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    answer = client.get(
        "/fhir/Patient",
        params={"identifier": f"{HEALTH_CARD}|HC-778"},
        headers=auth(tokens.clinician_h2, **{"X-Break-Glass": "unconscious, no consent on file"}),
    )
    assert {e["resource"]["id"] for e in answer.json()["entry"]} == {
        "zhang-h1",
        "zhang-h2",
        "zhang-d1",
    }
    with database.connection() as conn:
        flagged = conn.execute("select source_institution from break_glass order by 1").fetchall()
    assert [r["source_institution"] for r in flagged] == ["D1", "H1"]
    [entry] = audit_entries(database, action="fhir.pdq")
    assert entry["detail"]["persons"] == [zhang]
    assert entry["detail"]["break_glass"] == "unconscious, no consent on file"
