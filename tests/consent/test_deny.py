"""Residents' opt-outs over HTTP: a Consent whose provision (or a nested exception) denies
keeps a clinician's FHIR reads out of what it names, a revoked one no longer does, and
break-glass over it is allowed but flagged as having overridden the deny."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli import app as cli
from hie.storage import Database
from tests.consent.conftest import (
    AT_D1,
    AT_H1,
    Tokens,
    audit_entries,
    auth,
    consent,
    read_dx,
)


def put_consent(client: TestClient, token: str, resource: dict[str, Any]) -> None:
    path = f"/fhir/Consent/{resource['id']}"
    response = client.put(path, json=resource, headers=auth(token))
    assert response.status_code in (200, 201), response.text


def opt_out(cid: str, patient_id: str, actor: str, *, status: str = "active") -> dict[str, Any]:
    """A base deny: the resident forbids one institution everything."""
    resource = consent(cid, patient_id, actors=(actor,), status=status)
    resource["provision"]["type"] = "deny"
    return resource


def types_in_everything(client: TestClient, token: str, headers: dict[str, str]) -> set[str]:
    answer = client.get("/fhir/Patient/zhang-h1/$everything", headers=auth(token, **headers))
    assert answer.status_code == 200, answer.text
    return {e["resource"]["resourceType"] for e in answer.json()["entry"]}


def test_permit_all_except_one_class(client: TestClient, tokens: Tokens, zhang: int) -> None:
    everything_but = consent("all-but-dx", "zhang-h1", actors=())
    everything_but["provision"]["provision"] = [
        {
            "type": "deny",
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Condition"}],
        }
    ]
    put_consent(client, tokens.h1, everything_but)
    assert read_dx(client, tokens.clinician_h2).status_code == 403
    search = client.get(
        "/fhir/Condition",
        params={"patient": "Patient/zhang-h1"},
        headers=auth(tokens.clinician_h2, **AT_H1),
    )
    assert search.status_code == 403
    # The rest is permitted: the Patient, the Consent; the Conditions are left out.
    assert (
        client.get("/fhir/Patient/zhang-h1", headers=auth(tokens.clinician_h2, **AT_H1)).status_code
        == 200
    )
    assert types_in_everything(client, tokens.clinician_h2, AT_H1) == {"Patient", "Consent"}
    # The deny is the resident's: the district's diagnosis is kept back too.
    dx_d1 = client.get("/fhir/Condition/dx-d1", headers=auth(tokens.clinician_h2, **AT_D1))
    assert dx_d1.status_code == 403


def test_deny_one_institution_and_revoke_it(
    client: TestClient, tokens: Tokens, zhang: int, database: Database
) -> None:
    put_consent(client, tokens.h1, consent("share-all", "zhang-h1", actors=()))
    assert read_dx(client, tokens.clinician_h2).status_code == 200
    # The resident opts out of H2 at the district: a deny in any active consent wins over an
    # equally broad or broader permit in another.
    put_consent(client, tokens.d1, opt_out("no-h2", "zhang-d1", "H2"))
    refused = read_dx(client, tokens.clinician_h2)
    assert refused.status_code == 403
    assert (
        client.get(
            "/fhir/Patient/zhang-h1/$everything", headers=auth(tokens.clinician_h2, **AT_H1)
        ).status_code
        == 403
    )
    # H1's clinician is not H2: the district's record is still open to it.
    assert (
        client.get("/fhir/Condition/dx-d1", headers=auth(tokens.clinician_h1, **AT_D1)).status_code
        == 200
    )
    # The audit entry says which consent refused (the caller is told nothing).
    [entry] = [e for e in audit_entries(database, role="clinician") if e["outcome"] == 4][-1:]
    assert entry["detail"]["refused"] == "the resident's consent D1/Consent/no-h2 denies it"
    # Revoked (inactive), the deny no longer counts: H1's permit applies again.
    put_consent(client, tokens.d1, opt_out("no-h2", "zhang-d1", "H2", status="inactive"))
    assert read_dx(client, tokens.clinician_h2).status_code == 200


def test_break_glass_over_a_deny_is_flagged_as_such(
    client: TestClient,
    tokens: Tokens,
    zhang: int,
    database: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    put_consent(client, tokens.h1, opt_out("no-h2", "zhang-h1", "H2"))
    assert read_dx(client, tokens.clinician_h2).status_code == 403
    urgent = read_dx(client, tokens.clinician_h2, **{"X-Break-Glass": "cardiac arrest"})
    assert urgent.status_code == 200, urgent.text
    with database.connection() as conn:
        [flagged] = conn.execute("select * from break_glass").fetchall()
    assert (flagged["reason"], flagged["overrode_deny"]) == ("cardiac arrest", "H1/Consent/no-h2")
    read = [e for e in audit_entries(database, role="clinician") if e["outcome"] == 0][-1]
    assert read["detail"]["overrode_deny"] == ["H1/Consent/no-h2"]
    env = {"HIE_DATABASE_URL": database_url, "HIE_DATA_DIR": str(tmp_path)}
    listed = CliRunner().invoke(cli, ["consent", "breakglass"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"{flagged['id']}: overrode the resident's deny in H1/Consent/no-h2" in listed.output
