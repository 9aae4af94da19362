"""Search: each parameter kind, date prefixes, _sort, _total, _summary=count, _include and
_revinclude, unknown parameters (lenient and strict), and the query plans on the index."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.fhir.search import parse_search
from hie.storage import open_database
from hie.storage.search import _Builder
from hie.validators.conformance import STANDALONE
from hie.validators.fhir import validate_resource
from tests.hospitals import Tokens, auth


@pytest.fixture(scope="module")
def data(client: TestClient, tokens: Tokens) -> dict[str, str]:
    """A patient with three encounters and two conditions, at H1."""
    h1 = auth(tokens.h1)
    tag = uuid.uuid4().hex[:8]
    pid = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": tag}]},
        headers=h1,
    ).json()["id"]
    made = {"patient": pid, "tag": tag}
    for n, (klass, status, start, end) in enumerate(
        [
            ("AMB", "finished", "2019-06-30T23:00:00+08:00", "2019-07-01T01:00:00+08:00"),
            ("IMP", "in-progress", "2019-07-15", "2019-07-20"),
            ("EMER", "finished", "2019-08-02T10:00:00+08:00", "2019-08-02T12:00:00+08:00"),
        ]
    ):
        period = {"start": start, **({"end": end} if end else {})}
        encounter = {
            "resourceType": "Encounter",
            "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
            "subject": {"reference": f"Patient/{pid}"},
            "period": period,
        }
        made[f"e{n}"] = client.post("/fhir/Encounter", json=encounter, headers=h1).json()["id"]
    for code in ("I10", "E11.9"):
        condition = {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
        }
        made[code] = client.post("/fhir/Condition", json=condition, headers=h1).json()["id"]
    return made


def ids(client: TestClient, token: str, url: str, **headers: str) -> list[str]:
    response = client.get(url, headers=auth(token, **headers))
    assert response.status_code == 200, response.text
    return [
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e["search"]["mode"] == "match"
    ]


def test_token_reference_and_date_parameters(
    client: TestClient, tokens: Tokens, data: dict[str, str]
) -> None:
    pid, h1 = data["patient"], tokens.h1
    base = f"/fhir/Encounter?patient={pid}"
    assert set(ids(client, h1, base)) == {data["e0"], data["e1"], data["e2"]}
    assert ids(client, h1, f"{base}&class=AMB,EMER&_sort=date") == [data["e0"], data["e2"]]
    assert ids(client, h1, f"{base}&status=in-progress") == [data["e1"]]
    assert ids(
        client,
        h1,
        f"/fhir/Encounter?subject=Patient/{pid}&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP",
    ) == [data["e1"]]
    assert ids(client, h1, f"{base}&class=|IMP") == []
    # Dates: the June-30-to-July-1 visit overlaps July but does not lie within it.
    assert ids(client, h1, f"{base}&date=2019-07&_sort=date") == [data["e1"]]
    assert ids(client, h1, f"{base}&date=ge2019-07-01&date=lt2019-08&_sort=date") == [
        data["e0"],
        data["e1"],
    ]
    assert ids(client, h1, f"{base}&date=sa2019-07-20") == [data["e2"]]
    assert ids(client, h1, f"{base}&date=eb2019-07-01") == []
    assert ids(client, h1, f"{base}&date=eb2019-07-02") == [data["e0"]]
    assert ids(client, h1, f"{base}&date=ap2019-08-02") == [data["e2"]]
    assert ids(client, h1, f"/fhir/Condition?code=I10&subject=Patient/{pid}") == [data["I10"]]
    assert ids(client, h1, f"/fhir/Patient?identifier=urn:s|{data['tag']}") == [pid]
    assert ids(client, h1, f"/fhir/Patient?_id={pid}") == [pid]
    assert ids(client, h1, f"/fhir/Patient?_id={pid}&_lastUpdated=lt2000-01-01") == []
    assert ids(client, h1, f"/fhir/Patient?_id={pid}&_lastUpdated=gt2000-01-01") == [pid]
    assert ids(client, h1, f"/fhir/Encounter?patient={pid}&date:missing=true") == []
    # Another institution finds nothing, even by id.
    assert ids(client, tokens.h2, f"/fhir/Patient?_id={pid}") == []
    assert ids(client, tokens.h2, base) == []


def test_sort_total_and_summary(client: TestClient, tokens: Tokens, data: dict[str, str]) -> None:
    h1 = auth(tokens.h1)
    url = f"/fhir/Encounter?patient={data['patient']}"
    page = client.get(f"{url}&_count=2&_sort=-date&_total=accurate", headers=h1).json()
    assert page["total"] == 3
    assert [e["resource"]["id"] for e in page["entry"]] == [data["e2"], data["e1"]]
    assert [link["relation"] for link in page["link"]] == ["self", "next", "last"]
    counted = client.get(f"{url}&_summary=count", headers=h1).json()
    assert counted["total"] == 3 and "entry" not in counted
    by_id = client.get(f"{url}&_sort=_id", headers=h1).json()
    assert [e["resource"]["id"] for e in by_id["entry"]] == sorted(
        [data["e0"], data["e1"], data["e2"]]
    )
    assert client.get(f"{url}&_sort=nonesuch", headers=h1).status_code == 400


def test_include_and_revinclude(client: TestClient, tokens: Tokens, data: dict[str, str]) -> None:
    h1 = auth(tokens.h1)
    pid = data["patient"]
    revinclude = client.get(
        f"/fhir/Patient?_id={pid}&_revinclude=Encounter:patient&_revinclude=Condition:subject",
        headers=h1,
    ).json()
    included = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in revinclude["entry"]}
    assert included == {("Patient", "match"), ("Encounter", "include"), ("Condition", "include")}
    assert len(revinclude["entry"]) == 6
    include = client.get(
        f"/fhir/Condition?subject=Patient/{pid}&_include=Condition:subject", headers=h1
    ).json()
    assert [e["search"]["mode"] for e in include["entry"]] == ["match", "match", "include"]
    bad = client.get("/fhir/Condition?_include=Condition:code", headers=h1)
    assert bad.status_code == 400


def test_unknown_parameters_fail_unless_lenient(
    client: TestClient, tokens: Tokens, data: dict[str, str]
) -> None:
    """HAPI JPA: an unknown parameter is 400 naming it and the valid ones; ``Prefer:
    handling=lenient`` ignores it with a warning entry."""
    url = f"/fhir/Patient?_id={data['patient']}&nickname=peter"
    refused = client.get(url, headers=auth(tokens.h1))
    assert refused.status_code == 400
    message = refused.json()["issue"][0]["diagnostics"]
    assert message.startswith(
        'Unknown search parameter "nickname" for resource type "Patient". Valid search '
        "parameters for this search are: [_id, _lastUpdated, _profile, _security, _source, "
        "_tag, active, address, address-city,"
    )
    strict = client.get(url, headers=auth(tokens.h1, Prefer="handling=strict"))
    assert strict.status_code == 400
    lenient = client.get(url, headers=auth(tokens.h1, Prefer="handling=lenient")).json()
    assert [e["resource"]["id"] for e in lenient["entry"][:1]] == [data["patient"]]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"
    assert client.get("/fhir/Encounter?date=July", headers=auth(tokens.h1)).status_code == 400
    # An unsupported modifier is refused even when lenient: ignoring it would widen the match.
    for bad in ("status:exact=x", "type:below=x", "date:text=2019"):
        answer = client.get(
            f"/fhir/Encounter?{bad}", headers=auth(tokens.h1, Prefer="handling=lenient")
        )
        assert answer.status_code == 400, bad


def test_form_encoded_post_search_answers_as_get(
    client: TestClient, tokens: Tokens, data: dict[str, str]
) -> None:
    """POST /fhir/<type>/_search with form parameters (HAPI's and fhirpy's way) is the GET
    search: same matches, order and paging, parameters from the URL and the form combined."""
    pid = data["patient"]
    form = {"patient": pid, "class": "AMB,EMER", "_sort": "date"}
    posted = client.post(
        "/fhir/Encounter/_search?_count=1",
        data=form,
        headers=auth(tokens.h1),
    )
    assert posted.status_code == 200, posted.text
    got = client.get(
        f"/fhir/Encounter?patient={pid}&class=AMB,EMER&_sort=date&_count=1",
        headers=auth(tokens.h1),
    )
    assert got.status_code == 200, got.text

    def matches(bundle: dict[str, Any]) -> list[str]:
        return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]

    assert matches(posted.json()) == matches(got.json()) == [data["e0"]]
    links = {link["relation"]: link["url"] for link in posted.json()["link"]}
    assert f"patient={pid}" in links["self"]
    following = client.get(links["next"].replace("http://testserver", ""), headers=auth(tokens.h1))
    assert matches(following.json()) == [data["e2"]]
    # A bad value is refused exactly as in a GET search.
    bad = client.post("/fhir/Encounter/_search", data={"date": "notadate"}, headers=auth(tokens.h1))
    assert bad.status_code == 400
    assert "date=notadate" in bad.json()["issue"][0]["diagnostics"]


def test_searches_use_the_index(fhir_settings: Settings, data: dict[str, str]) -> None:
    """The query plans of the supported parameters read fhir_search_index through its indexes
    (with enable_seqscan off, the planner's choice on a big table; a small test table would
    otherwise be scanned)."""

    database = open_database(fhir_settings, migrate=False)
    queries = [
        ("Encounter", [("patient", data["patient"]), ("class", "AMB")]),
        ("Encounter", [("date", "ge2019-07-01")]),
        ("Observation", [("code", "http://loinc.org|8867-4"), ("date", "lt2019-01")]),
        ("Patient", [("identifier", "urn:s|x")]),
    ]
    try:
        with database.connection() as conn, conn.transaction(force_rollback=True):
            conn.execute("set local enable_seqscan = off")
            for resource_type, pairs in queries:
                parsed = parse_search(
                    resource_type, pairs, institution_code="H1", zone=fhir_settings.zone
                )
                builder = _Builder(parsed.query)
                where = builder.build()
                statement = sql.SQL(
                    "explain select r.resource_id from fhir_resource r where {} order by {} limit 1"
                ).format(where, builder.order())
                plan = "\n".join(
                    r["QUERY PLAN"] for r in conn.execute(statement, builder.params).fetchall()
                )
                assert "Seq Scan" not in plan, plan
                assert "fhir_search_" in plan, plan
    finally:
        database.close()


def test_search_results_are_valid_search_sets(
    client: TestClient, tokens: Tokens, data: dict[str, str]
) -> None:
    """What the server answers passes its own validator, search-set rules included."""
    catalog = read_catalog(default_catalog_path())
    for url in (f"/fhir/Encounter?patient={data['patient']}&_count=2", "/fhir/Patient?_id=none"):
        found = client.get(url, headers=auth(tokens.h1)).json()
        report = validate_resource(found, catalog=catalog, context=STANDALONE).report
        issues = [i for i in report.issues if not i.rule.startswith("fhir.catalog.")]
        assert not [i for i in issues if i.severity.rejects], issues
        assert not [i for i in issues if i.rule.startswith("fhir.search-set.")], issues
