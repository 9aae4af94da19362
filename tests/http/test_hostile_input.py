"""Hostile input over HTTP: characters PostgreSQL cannot store, out-of-range values and numbers,
in every request shape that reaches the database. Each answers 400 or 422 with an
OperationOutcome naming the place, never 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.http.conftest import GULOU, Tokens, bearer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
FHIR = "application/fhir+json"
CDA = "application/hl7-cda+xml"

Shape = Callable[[TestClient, Tokens], httpx.Response]


def _patient(family: str = "Zhang", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}], **extra}


def _fhir(token: str, **extra: str) -> dict[str, str]:
    return bearer(token, **{"Content-Type": FHIR, **extra})


def _raw_json(text: str) -> bytes:
    """JSON text as sent, escapes untouched (json.dumps would escape differently)."""
    return text.encode()


def _cda(name: str = "C0002-valid.xml") -> bytes:
    return (FIXTURES / name).read_bytes()


def _assert_located(response: httpx.Response, place: str) -> None:
    assert response.status_code in (400, 422), (response.status_code, response.text[:500])
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    said = json.dumps(body, ensure_ascii=False)
    assert place in said, (place, said[:1000])
    # Nothing of the hostile character comes back either.
    assert "\\u0000" not in response.text


NUL_SHAPES: dict[str, tuple[Shape, str]] = {
    "fhir create, value": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=_raw_json('{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'),
            headers=_fhir(t.submitter),
        ),
        "Patient.name[0].family",
    ),
    "fhir create, key": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=_raw_json('{"resourceType":"Patient","gen\\u0000der":"male"}'),
            headers=_fhir(t.submitter),
        ),
        "Patient",
    ),
    "fhir create, lone surrogate": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=_raw_json('{"resourceType":"Patient","name":[{"family":"a\\ud800"}]}'),
            headers=_fhir(t.submitter),
        ),
        "Patient.name[0].family",
    ),
    "fhir update": (
        lambda c, t: c.put(
            "/fhir/Patient/p1",
            content=_raw_json(
                '{"resourceType":"Patient","id":"p1","name":[{"given":["x","a\\u0000"]}]}'
            ),
            headers=_fhir(t.submitter),
        ),
        "Patient.name[0].given[1]",
    ),
    "fhir transaction": (
        lambda c, t: c.post(
            "/fhir",
            content=_raw_json(
                '{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":'
                '"urn:uuid:0b5bd5a6-0c38-4b27-9b53-4c3a5b2d3a3f","resource":{"resourceType":'
                '"Patient","name":[{"family":"\\u0000"}]},"request":{"method":"POST","url":'
                '"Patient"}}]}'
            ),
            headers=_fhir(t.submitter),
        ),
        "Bundle.entry[0].resource",
    ),
    "fhir $validate": (
        lambda c, t: c.post(
            "/fhir/Patient/$validate",
            content=_raw_json('{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'),
            headers=_fhir(t.submitter),
        ),
        "Patient.name[0].family",
    ),
    "fhir xml body": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=b'<Patient xmlns="http://hl7.org/fhir"><name><family value="a&#0;b"/>'
            b"</name></Patient>",
            headers=bearer(t.submitter, **{"Content-Type": "application/fhir+xml"}),
        ),
        "line 1",
    ),
    "fhir search value": (
        lambda c, t: c.get("/fhir/Patient?identifier=a%00b", headers=bearer(t.submitter)),
        "identifier",
    ),
    "fhir search name": (
        lambda c, t: c.get("/fhir/Patient?iden%00tifier=ab", headers=bearer(t.submitter)),
        "iden",
    ),
    "fhir search, POST form": (
        lambda c, t: c.post(
            "/fhir/Patient/_search",
            content=b"identifier=a%00b",
            headers=bearer(t.submitter, **{"Content-Type": "application/x-www-form-urlencoded"}),
        ),
        "identifier",
    ),
    "fhir history": (
        lambda c, t: c.get("/fhir/Patient/_history?_since=%00", headers=bearer(t.submitter)),
        "_since",
    ),
    "fhir conditional create": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=json.dumps(_patient()).encode(),
            headers=_fhir(t.submitter, **{"If-None-Exist": "identifier=a%00b"}),
        ),
        "identifier",
    ),
    "fhir conditional update": (
        lambda c, t: c.put(
            "/fhir/Patient?identifier=x%00",
            content=json.dumps(_patient()).encode(),
            headers=_fhir(t.submitter),
        ),
        "identifier",
    ),
    "header X-HIE-Institution": (
        lambda c, t: c.get(
            "/fhir/Patient", headers=bearer(t.admin, **{"X-HIE-Institution": "H\x001"})
        ),
        "X-HIE-Institution",
    ),
    "header If-Match": (
        lambda c, t: c.put(
            "/fhir/Patient/p2",
            content=json.dumps(_patient(id="p2")).encode(),
            headers=_fhir(t.submitter, **{"If-Match": 'W/"1\x00"'}),
        ),
        "If-Match",
    ),
    "header Prefer": (
        lambda c, t: c.get(
            "/fhir/Patient", headers=bearer(t.submitter, Prefer="handling=\x00strict")
        ),
        "Prefer",
    ),
    "cda body": (
        lambda c, t: c.post(
            "/cda",
            content=_cda().replace(b"</ClinicalDocument>", b"<!-- \x00 --></ClinicalDocument>"),
            headers=bearer(t.submitter, **{"Content-Type": CDA}),
        ),
        "line",
    ),
    "cda character reference": (
        lambda c, t: c.post(
            "/cda",
            content=_cda().replace("<title>主诉".encode(), b"<title>&#0;"),
            headers=bearer(t.submitter, **{"Content-Type": CDA}),
        ),
        "line",
    ),
    "cda query": (
        lambda c, t: c.post(
            "/cda?institution=45%005755678",
            content=_cda(),
            headers=bearer(t.admin, **{"Content-Type": CDA}),
        ),
        "institution",
    ),
    "api institution create": (
        lambda c, t: c.post(
            "/api/institutions",
            json={"code": "N1", "name": "医\x00院", "kind": "hospital"},
            headers=bearer(t.admin),
        ),
        "name",
    ),
    "api institution create, district": (
        lambda c, t: c.post(
            "/api/institutions",
            json={"code": "N2", "name": "医院", "kind": "hospital", "district": "D\x00"},
            headers=bearer(t.admin),
        ),
        "district",
    ),
    "api institution patch": (
        lambda c, t: c.patch(
            f"/api/institutions/{GULOU}", json={"name": "\x00"}, headers=bearer(t.admin)
        ),
        "name",
    ),
    "api institution path": (
        lambda c, t: c.get("/api/institutions/H%001", headers=bearer(t.admin)),
        "path",
    ),
    "api institution list": (
        lambda c, t: c.get("/api/institutions?district=%00", headers=bearer(t.admin)),
        "district",
    ),
    "api declaration": (
        lambda c, t: c.put(
            f"/api/institutions/{GULOU}/declaration",
            json={"tables": ["C0001", "C\x00"]},
            headers=bearer(t.admin),
        ),
        "tables",
    ),
    "api institutions csv": (
        lambda c, t: c.post(
            "/api/institutions/import",
            content="code,name,kind\nN3,医\x00院,hospital\n".encode(),
            headers=bearer(t.admin, **{"Content-Type": "text/csv"}),
        ),
        "line 2",
    ),
    "api declarations csv": (
        lambda c, t: c.post(
            "/api/institutions/declarations/import",
            content=f"institution,tables\n{GULOU},C0001 C\x00\n".encode(),
            headers=bearer(t.admin, **{"Content-Type": "text/csv"}),
        ),
        "line 2",
    ),
    "api trend": (
        lambda c, t: c.get(
            "/api/reports/trend?institution=4%00&month=2019-07", headers=bearer(t.admin)
        ),
        "institution",
    ),
    "api report month": (
        lambda c, t: c.get("/api/reports/completeness?month=2019-0%007", headers=bearer(t.admin)),
        "month",
    ),
}


@pytest.mark.parametrize("shape", NUL_SHAPES, ids=list(NUL_SHAPES))
def test_unstorable_characters_are_refused_where_they_are(
    client: TestClient, tokens: Tokens, shape: str
) -> None:
    send, place = NUL_SHAPES[shape]
    _assert_located(send(client, tokens), place)


def test_a_fhir_client_asking_for_xml_gets_the_refusal_of_a_nul_in_xml(
    client: TestClient, tokens: Tokens
) -> None:
    """HAPI's clients ask for XML; the refusal made before any route must speak it too."""
    response = client.get(
        "/fhir/Patient?identifier=a%00b",
        headers={**bearer(tokens.submitter), "Accept": "application/fhir+xml"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/fhir+xml")
    assert "<OperationOutcome" in response.text
    assert "identifier" in response.text
    assert "\x00" not in response.text


OUT_OF_RANGE: dict[str, tuple[Shape, str]] = {
    "_offset=-1": (
        lambda c, t: c.get("/fhir/Patient?_offset=-1", headers=bearer(t.submitter)),
        "_offset",
    ),
    "_count=-5": (
        lambda c, t: c.get("/fhir/Patient?_count=-5", headers=bearer(t.submitter)),
        "_count",
    ),
    "_offset huge": (
        lambda c, t: c.get(
            "/fhir/Patient?_offset=99999999999999999999999", headers=bearer(t.submitter)
        ),
        "_offset",
    ),
    "_count superscript": (
        lambda c, t: c.get("/fhir/Patient?_count=%C2%B2", headers=bearer(t.submitter)),
        "_count",
    ),
    "history _count": (
        lambda c, t: c.get("/fhir/Patient/_history?_count=-1", headers=bearer(t.submitter)),
        "_count",
    ),
    "date 0001-01-01": (
        lambda c, t: c.get("/fhir/Encounter?date=0001-01-01", headers=bearer(t.submitter)),
        "date",
    ),
    "date 9999-12-31T23:59:59Z": (
        lambda c, t: c.get(
            "/fhir/Encounter?date=9999-12-31T23:59:59Z", headers=bearer(t.submitter)
        ),
        "date",
    ),
    "_lastUpdated 9999": (
        lambda c, t: c.get("/fhir/Patient?_lastUpdated=gt9999", headers=bearer(t.submitter)),
        "_lastUpdated",
    ),
    "_lastUpdated 0001": (
        lambda c, t: c.get("/fhir/Patient?_lastUpdated=lt0001-01", headers=bearer(t.submitter)),
        "_lastUpdated",
    ),
    "report month 0001-01": (
        lambda c, t: c.get("/api/reports/completeness?month=0001-01", headers=bearer(t.admin)),
        "month",
    ),
    "report month 9999-12": (
        lambda c, t: c.get("/api/reports/completeness?month=9999-12", headers=bearer(t.admin)),
        "month",
    ),
    "trend month 0001-01": (
        lambda c, t: c.get(
            f"/api/reports/trend?institution={GULOU}&month=0001-01", headers=bearer(t.admin)
        ),
        "month",
    ),
    "compute month 9999-12": (
        lambda c, t: c.post(
            "/api/reports/completeness/compute?month=9999-12", headers=bearer(t.admin)
        ),
        "month",
    ),
    "received_at year 9999": (
        lambda c, t: c.post(
            "/cda?received_at=9999-12-31T23:00:00%2B00:00",
            content=_cda(),
            headers=bearer(t.admin, **{"Content-Type": CDA}),
        ),
        "received_at",
    ),
    "received_at 1899": (
        lambda c, t: c.post(
            "/cda?received_at=1899-12-31T23:00:00%2B08:00",
            content=_cda(),
            headers=bearer(t.admin, **{"Content-Type": CDA}),
        ),
        "received_at",
    ),
    "X-HIE-Received-At year 9999": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=json.dumps(_patient()).encode(),
            headers=_fhir(
                t.admin,
                **{"X-HIE-Institution": GULOU, "X-HIE-Received-At": "9999-12-31T23:00:00+00:00"},
            ),
        ),
        "X-HIE-Received-At",
    ),
    "X-HIE-Received-At 1850": (
        lambda c, t: c.post(
            "/fhir/Patient",
            content=json.dumps(_patient()).encode(),
            headers=_fhir(
                t.admin,
                **{"X-HIE-Institution": GULOU, "X-HIE-Received-At": "1850-01-01T00:00:00+08:00"},
            ),
        ),
        "X-HIE-Received-At",
    ),
}


@pytest.mark.parametrize("shape", OUT_OF_RANGE, ids=list(OUT_OF_RANGE))
def test_out_of_range_values_name_the_parameter(
    client: TestClient, tokens: Tokens, shape: str
) -> None:
    send, place = OUT_OF_RANGE[shape]
    _assert_located(send(client, tokens), place)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01", "9999"])
def test_resources_dated_at_the_edges_of_the_calendar_are_no_server_error(
    client: TestClient, tokens: Tokens, moment: str
) -> None:
    """Their search index range would pass the last (or first) datetime; they are answered
    like any other resource, never with a 500."""
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": moment},
    }
    answer = client.post(
        "/fhir/Encounter", content=json.dumps(encounter).encode(), headers=_fhir(tokens.submitter)
    )
    assert answer.status_code < 500, answer.text[:300]


@pytest.mark.parametrize(
    "path",
    [
        # str.isdigit() is true for '³' and '٣', which int() refuses (found by schemathesis).
        "/fhir/Patient/p1/_history/³",
        "/fhir/Patient/p1/_history/٣",
        "/fhir/AuditEvent/³",
    ],
)
def test_digits_of_other_scripts_in_ids_are_no_server_error(
    client: TestClient, tokens: Tokens, path: str
) -> None:
    answer = client.get(path, headers=bearer(tokens.admin, **{"X-HIE-Institution": GULOU}))
    assert answer.status_code == 404, answer.text[:300]
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_a_resident_id_number_in_superscript_digits_is_refused_not_crashed() -> None:
    from hie.normalize import resident_id_problem

    # A real birth date inside, so the check character is computed: int('³') raised there.
    assert resident_id_problem("³³³³³³19800101³³³X") is not None
