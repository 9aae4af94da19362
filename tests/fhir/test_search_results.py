"""The result side of search, as a HAPI-trained engineer relies on it: _include and _revinclude
(every reference parameter, target types, :iterate, *), _summary and _elements with the SUBSETTED
tag (read, vread, search), paging links (first, previous, next, last) with cursors that survive
concurrent writes and cannot be used by another caller or for another search, and _sort."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from hie.auth import hash_token
from hie.config import Settings
from hie.fhir.paging import Binding, Cursors, Position
from tests.hospitals import Tokens, auth

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")


def put(client: TestClient, token: str, resource: dict[str, Any]) -> dict[str, Any]:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=auth(token))
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def get(client: TestClient, token: str, url: str, **headers: str) -> dict[str, Any]:
    response = client.get(url, headers=auth(token, **headers))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def entries(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """``Type/id`` of the entries of one search mode, in order."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {
        link["relation"]: link["url"].replace("http://testserver", "") for link in bundle["link"]
    }


def tagged(resource: dict[str, Any]) -> bool:
    return any(
        (t.get("system"), t.get("code")) == SUBSETTED for t in resource["meta"].get("tag", [])
    )


@pytest.fixture(scope="module")
def world(client: TestClient, tokens: Tokens) -> dict[str, str]:
    """At H1 a patient, an encounter, six observations (one without a date, one with
    components) and a condition; at H2 a patient with the same id and an observation of it."""
    tag = uuid.uuid4().hex[:8]
    pid, eid = f"rs-p-{tag}", f"rs-e-{tag}"
    put(
        client,
        tokens.h1,
        {
            "resourceType": "Patient",
            "id": pid,
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">P</div>',
            },
            "identifier": [{"system": "urn:rs", "value": tag}],
            "name": [{"family": "Wang", "given": ["Fang"]}],
            "gender": "female",
            "maritalStatus": {"text": "married"},
            "contact": [{"name": {"family": "Li"}}],
            "link": [{"other": {"reference": f"Patient/{pid}"}, "type": "seealso"}],
        },
    )
    put(client, tokens.h2, {"resourceType": "Patient", "id": pid, "gender": "male"})
    put(
        client,
        tokens.h1,
        {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    made = {"patient": pid, "encounter": eid, "tag": tag}
    codes = ["8867-4", "8310-5", "8867-4", "9279-1", "8310-5", "8867-4"]
    days = ["2019-07-03", "2019-07-01", None, "2019-07-05", "2019-07-02", "2019-07-04"]
    for n, (code, day) in enumerate(zip(codes, days, strict=True)):
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"rs-o{n}-{tag}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">O</div>',
            },
            "note": [{"text": "taken at rest"}],
        }
        if day:
            observation["effectiveDateTime"] = f"{day}T08:00:00+08:00"
        if n == 0:
            observation["component"] = [
                {
                    "code": {"text": "systolic"},
                    "valueQuantity": {"value": 120},
                    "interpretation": [{"text": "normal"}],
                }
            ]
        put(client, tokens.h1, observation)
        made[f"o{n}"] = observation["id"]
    put(
        client,
        tokens.h2,
        {
            "resourceType": "Observation",
            "id": f"rs-h2-{tag}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    made["condition"] = client.post(
        "/fhir/Condition",
        json={
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        },
        headers=auth(tokens.h1),
    ).json()["id"]
    return made


def observations(world: dict[str, str], *numbers: int) -> list[str]:
    return [f"Observation/{world[f'o{n}']}" for n in numbers]


# -- _include / _revinclude -----------------------------------------------------------------


def test_include_adds_the_referenced_resource_once_as_include(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(
        client,
        tokens.h1,
        f"/fhir/Observation?patient={world['patient']}&_include=Observation:patient",
    )
    assert len(entries(bundle)) == 6
    assert entries(bundle, "include") == [f"Patient/{world['patient']}"]


def test_include_with_a_target_type_follows_only_that_type(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?_id={world['o1']}"
    patient_only = get(client, tokens.h1, f"{url}&_include=Observation:subject:Patient")
    assert entries(patient_only, "include") == [f"Patient/{world['patient']}"]
    nothing = get(client, tokens.h1, f"{url}&_include=Observation:subject:Group")
    assert entries(nothing, "include") == []


def test_include_wildcard_follows_every_reference_parameter(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(client, tokens.h1, f"/fhir/Observation?_id={world['o1']}&_include=*")
    assert sorted(entries(bundle, "include")) == sorted(
        [f"Patient/{world['patient']}", f"Encounter/{world['encounter']}"]
    )


def test_revinclude_adds_the_resources_that_point_to_the_matches(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(
        client, tokens.h1, f"/fhir/Patient?_id={world['patient']}&_revinclude=Observation:patient"
    )
    assert entries(bundle) == [f"Patient/{world['patient']}"]
    assert sorted(entries(bundle, "include")) == sorted(observations(world, 0, 1, 2, 3, 4, 5))


def test_revinclude_wildcard_adds_every_referrer(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(client, tokens.h1, f"/fhir/Patient?_id={world['patient']}&_revinclude=*")
    included = set(entries(bundle, "include"))
    assert set(observations(world, 0, 1, 2, 3, 4, 5)) <= included
    assert f"Encounter/{world['encounter']}" in included
    assert f"Condition/{world['condition']}" in included
    assert f"Patient/{world['patient']}" not in included  # a match is never also an include


def test_include_iterate_follows_references_of_included_resources(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?_id={world['o1']}&_include=Observation:encounter"
    one_hop = get(client, tokens.h1, url)
    assert entries(one_hop, "include") == [f"Encounter/{world['encounter']}"]
    iterated = get(client, tokens.h1, url + "&_include:iterate=Encounter:patient")
    assert entries(iterated, "include") == [
        f"Encounter/{world['encounter']}",
        f"Patient/{world['patient']}",
    ]


def test_revinclude_iterate_reaches_resources_two_references_away(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(
        client,
        tokens.h1,
        f"/fhir/Patient?_id={world['patient']}&_revinclude=Encounter:patient"
        "&_revinclude:iterate=Observation:encounter",
    )
    included = entries(bundle, "include")
    assert included[0] == f"Encounter/{world['encounter']}"
    assert sorted(included[1:]) == sorted(observations(world, 0, 1, 2, 3, 4, 5))


def test_includes_never_reach_another_institution(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    """H2 has a patient with the same id and an observation of it: H1's includes neither follow
    nor find them, and H2's include gives H2's own patient."""
    revinclude = get(
        client, tokens.h1, f"/fhir/Patient?_id={world['patient']}&_revinclude=Observation:patient"
    )
    assert f"Observation/rs-h2-{world['tag']}" not in entries(revinclude, "include")
    h2 = get(
        client,
        tokens.h2,
        f"/fhir/Observation?patient={world['patient']}&_include=Observation:patient",
    )
    included = [e["resource"] for e in h2["entry"] if e["search"]["mode"] == "include"]
    assert [r["gender"] for r in included] == ["male"]  # H2's patient, not H1's


def test_an_unknown_include_is_refused(client: TestClient, tokens: Tokens) -> None:
    for value in ("Observation:code", "Observation:nonesuch", "Nonesuch:patient", "Observation"):
        response = client.get(f"/fhir/Observation?_include={value}", headers=auth(tokens.h1))
        assert response.status_code == 400, value
        assert response.json()["resourceType"] == "OperationOutcome"


# -- _summary / _elements ---------------------------------------------------------------------


def test_summary_true_keeps_the_summary_elements_and_tags_the_resource(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    patient = get(client, tokens.h1, f"/fhir/Patient/{world['patient']}?_summary=true")
    assert {"id", "meta", "identifier", "name", "gender", "link"} <= patient.keys()
    assert not {"text", "maritalStatus", "contact"} & patient.keys()
    assert tagged(patient)
    assert patient["meta"]["versionId"] == "1"


def test_summary_true_filters_backbone_elements(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    observation = get(client, tokens.h1, f"/fhir/Observation/{world['o0']}?_summary=true")
    assert observation["component"] == [
        {"code": {"text": "systolic"}, "valueQuantity": {"value": 120}}
    ]
    assert "note" not in observation and "effectiveDateTime" in observation


def test_summary_text_keeps_the_narrative_and_mandatory_elements(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    observation = get(client, tokens.h1, f"/fhir/Observation/{world['o1']}?_summary=text")
    assert set(observation) == {"resourceType", "id", "meta", "text", "status", "code"}
    assert tagged(observation)


def test_summary_data_drops_only_the_narrative(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    whole = get(client, tokens.h1, f"/fhir/Observation/{world['o1']}")
    data = get(client, tokens.h1, f"/fhir/Observation/{world['o1']}?_summary=data")
    assert set(whole) - set(data) == {"text"}
    assert tagged(data) and not tagged(whole)


def test_summary_false_sends_the_whole_resource(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    whole = get(client, tokens.h1, f"/fhir/Patient/{world['patient']}")
    same = get(client, tokens.h1, f"/fhir/Patient/{world['patient']}?_summary=false")
    assert same == whole


def test_summary_count_answers_the_total_only(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(client, tokens.h1, f"/fhir/Observation?patient={world['patient']}&_summary=count")
    assert bundle["total"] == 6 and "entry" not in bundle


def test_elements_keeps_the_listed_elements_with_id_meta_and_mandatory_ones(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    observation = get(client, tokens.h1, f"/fhir/Observation/{world['o1']}?_elements=effective")
    assert set(observation) == {"resourceType", "id", "meta", "status", "code", "effectiveDateTime"}
    assert tagged(observation)
    vread = get(client, tokens.h1, f"/fhir/Patient/{world['patient']}/_history/1?_elements=name")
    assert set(vread) == {"resourceType", "id", "meta", "name"}
    assert tagged(vread)


def test_elements_exclude_leaves_out_the_listed_elements(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Patient/{world['patient']}"
    for query in ("_elements:exclude=contact,text", "_elements=-contact,-text"):
        patient = get(client, tokens.h1, f"{url}?{query}")
        assert "name" in patient and not {"contact", "text"} & patient.keys(), query
        assert tagged(patient)


def test_elements_in_a_search_subsets_matches_and_leaves_includes_whole(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(
        client,
        tokens.h1,
        f"/fhir/Observation?_id={world['o1']}&_elements=status&_include=Observation:patient",
    )
    match, include = (e["resource"] for e in bundle["entry"])
    assert set(match) == {"resourceType", "id", "meta", "status", "code"} and tagged(match)
    assert "contact" in include and not tagged(include)


def test_summary_in_a_search_applies_to_every_entry(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    bundle = get(
        client,
        tokens.h1,
        f"/fhir/Observation?_id={world['o1']}&_summary=true&_include=Observation:patient",
    )
    assert all(tagged(e["resource"]) for e in bundle["entry"])
    assert all("text" not in e["resource"] for e in bundle["entry"])


def test_a_bad_summary_is_refused(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    for url in (f"/fhir/Patient/{world['patient']}?_summary=yes", "/fhir/Patient?_summary=short"):
        response = client.get(url, headers=auth(tokens.h1))
        assert response.status_code == 400, url


# -- _sort ------------------------------------------------------------------------------------


def test_sort_by_date_both_ways_with_missing_values_last(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}"
    assert entries(get(client, tokens.h1, f"{url}&_sort=date")) == observations(
        world, 1, 4, 0, 5, 3, 2
    )
    assert entries(get(client, tokens.h1, f"{url}&_sort=-date")) == observations(
        world, 3, 5, 0, 4, 1, 2
    )


def test_sort_by_several_keys_token_then_date(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_sort=code,-date"
    # 8310-5: o4 (07-02), o1 (07-01); 8867-4: o5, o0, o2 (no date); 9279-1: o3
    assert entries(get(client, tokens.h1, url)) == observations(world, 4, 1, 5, 0, 2, 3)


def test_sort_by_id_and_last_updated(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}"
    by_id = entries(get(client, tokens.h1, f"{url}&_sort=-_id"))
    assert by_id == sorted(by_id, reverse=True)
    by_time = entries(get(client, tokens.h1, f"{url}&_sort=_lastUpdated"))
    assert by_time == observations(world, 0, 1, 2, 3, 4, 5)  # the order they were stored


def test_sort_by_string_and_quantity_parameters(client: TestClient, tokens: Tokens) -> None:
    tag = uuid.uuid4().hex[:8]
    for n, (family, value) in enumerate([("Zhou", 7.5), ("Chen", 12), ("Li", None)]):
        put(
            client,
            tokens.h1,
            {
                "resourceType": "Patient",
                "id": f"sq-p{n}-{tag}",
                "identifier": [{"system": "urn:sq", "value": tag}],
                "name": [{"family": family}],
            },
        )
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"sq-o{n}-{tag}",
            "status": "final",
            "code": {"coding": [{"system": "urn:sq", "code": tag}]},
        }
        if value is not None:
            observation["valueQuantity"] = {"value": value, "unit": "mmol/L"}
        put(client, tokens.h1, observation)
    by_family = entries(
        get(client, tokens.h1, f"/fhir/Patient?identifier=urn:sq|{tag}&_sort=family")
    )
    assert by_family == [f"Patient/sq-p{n}-{tag}" for n in (1, 2, 0)]
    url = f"/fhir/Observation?code=urn:sq|{tag}&_count=1"
    ascending = walk(client, tokens.h1, f"{url}&_sort=value-quantity", "next")
    assert ascending == [[f"Observation/sq-o{n}-{tag}"] for n in (0, 1, 2)]  # 7.5, 12, none
    descending = walk(client, tokens.h1, f"{url}&_sort=-value-quantity", "next")
    assert descending == [[f"Observation/sq-o{n}-{tag}"] for n in (1, 0, 2)]


def test_sort_by_an_unknown_parameter_is_refused(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/fhir/Observation?_sort=nonesuch", headers=auth(tokens.h1))
    assert response.status_code == 400
    assert "nonesuch" in response.json()["issue"][0]["diagnostics"]


# -- paging -----------------------------------------------------------------------------------


def walk(client: TestClient, token: str, url: str, relation: str) -> list[list[str]]:
    """The pages from ``url`` following ``relation`` links."""
    pages = []
    next_url: str | None = url
    while next_url:
        bundle = get(client, token, next_url)
        pages.append(entries(bundle))
        next_url = links(bundle).get(relation)
        assert len(pages) < 20
    return pages


def test_next_and_previous_links_walk_the_result_both_ways(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_sort=date&_count=4"
    forward = walk(client, tokens.h1, url, "next")
    assert forward == [observations(world, 1, 4, 0, 5), observations(world, 3, 2)]
    first = get(client, tokens.h1, url)
    assert set(links(first)) == {"self", "next", "last"}
    last = get(client, tokens.h1, links(first)["last"])
    assert entries(last) == observations(world, 0, 5, 3, 2)  # the last four, in order
    assert set(links(last)) == {"self", "first", "previous"}
    backward = walk(client, tokens.h1, links(first)["last"], "previous")
    assert backward == [observations(world, 0, 5, 3, 2), observations(world, 1, 4)]
    second = get(client, tokens.h1, links(first)["next"])
    assert entries(get(client, tokens.h1, links(second)["previous"])) == forward[0]
    assert entries(get(client, tokens.h1, links(second)["first"])) == forward[0]


def test_paging_survives_creates_and_deletes_between_pages(
    client: TestClient, tokens: Tokens
) -> None:
    """Resources created before the cursor and deleted from a page already sent shift nothing:
    every remaining match is sent exactly once (an offset would skip one)."""
    tag = uuid.uuid4().hex[:8]
    for n in range(10):
        put(
            client,
            tokens.h1,
            {
                "resourceType": "Patient",
                "id": f"pg-{tag}-{n}",
                "identifier": [{"system": "urn:pg", "value": tag}],
            },
        )
    url = f"/fhir/Patient?identifier=urn:pg|{tag}&_sort=_id&_count=4"
    first = get(client, tokens.h1, url)
    assert entries(first) == [f"Patient/pg-{tag}-{n}" for n in range(4)]
    # Meanwhile: two new ones sorting before the cursor, one of page one deleted.
    for name in ("a", "b"):
        put(
            client,
            tokens.h1,
            {
                "resourceType": "Patient",
                "id": f"pg-{tag}-0{name}",
                "identifier": [{"system": "urn:pg", "value": tag}],
            },
        )
    assert client.delete(f"/fhir/Patient/pg-{tag}-1", headers=auth(tokens.h1)).status_code in (
        200,
        204,
    )
    rest = walk(client, tokens.h1, links(first)["next"], "next")
    assert [i for page in rest for i in page] == [f"Patient/pg-{tag}-{n}" for n in range(4, 10)]
    offset = get(client, tokens.h1, f"{url}&_offset=4")
    assert f"Patient/pg-{tag}-3" in entries(offset)  # a bare offset sends page one's last again


def test_a_paging_link_works_only_for_its_caller_and_its_search(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_count=2"
    following = links(get(client, tokens.h1, url))["next"]
    assert client.get(following, headers=auth(tokens.h1)).status_code == 200
    other_caller = client.get(following, headers=auth(tokens.h2))
    assert other_caller.status_code == 400
    admin = client.get(following, headers=auth(tokens.admin, **{"X-HIE-Institution": "H1"}))
    assert admin.status_code == 400
    widened = following.replace(f"patient={world['patient']}", "status=final")
    assert client.get(widened, headers=auth(tokens.h1)).status_code == 400
    cursor = following.split("_cursor=")[1]
    forged = following.replace(cursor, cursor[:-8] + ("A" * 8))
    assert client.get(forged, headers=auth(tokens.h1)).status_code == 400
    # The page size may change between pages: the cursor is about the position only.
    resized = following.replace("_count=2", "_count=3")
    assert len(entries(get(client, tokens.h1, resized))) == 3


def test_a_cursor_hides_what_it_carries(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_sort=date&_count=1"
    following = links(get(client, tokens.h1, url))["next"]
    cursor = following.split("_cursor=")[1].split("&")[0].replace("%3D", "=")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert world["o1"].encode() not in raw and b"2019" not in raw


def test_an_expired_paging_link_is_gone(
    client: TestClient, tokens: Tokens, fhir_settings: Settings, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_count=2"
    following = links(get(client, tokens.h1, url))["next"]
    token_id = _token_id(client, tokens.h1)
    binding = Binding(
        "H1", token_id, "Observation", (("patient", world["patient"]), ("_count", "2"))
    )
    old = Cursors(fhir_settings.session_secret()).seal(
        binding, Position("next", None), issued_at=int(time.time()) - 2 * 24 * 3600
    )
    fresh = Cursors(fhir_settings.session_secret()).seal(binding, Position("next", None))
    base = following.split("_cursor=")[0]
    assert client.get(f"{base}_cursor={fresh}", headers=auth(tokens.h1)).status_code == 200
    expired = client.get(f"{base}_cursor={old}", headers=auth(tokens.h1))
    assert expired.status_code == 410


def _token_id(client: TestClient, token: str) -> int:
    database = client.app.state.database  # type: ignore[attr-defined]
    with database.connection() as conn:
        row = conn.execute(
            "select id from access_token where token_hash = %s", (hash_token(token),)
        ).fetchone()
    assert row is not None
    return int(row["id"])


def test_offset_paging_still_answers_with_its_links(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    url = f"/fhir/Observation?patient={world['patient']}&_sort=date&_count=2&_offset=2"
    bundle = get(client, tokens.h1, url)
    assert entries(bundle) == observations(world, 0, 5)
    found = links(bundle)
    assert "_offset=4" in found["next"] and "_offset=0" in found["previous"]
    assert "_offset=0" in found["first"]
    assert client.get(f"{url}&_cursor=x", headers=auth(tokens.h1)).status_code == 400


def test_post_search_pages_like_the_get_search(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    posted = client.post(
        "/fhir/Observation/_search",
        data={"patient": world["patient"], "_sort": "date", "_count": "4"},
        headers=auth(tokens.h1),
    ).json()
    following = get(client, tokens.h1, links(posted)["next"])
    assert entries(posted) + entries(following) == observations(world, 1, 4, 0, 5, 3, 2)


# -- through fhirpy, as an integration engineer would ----------------------------------------


@pytest.fixture(scope="module")
def fhirpy_h1(live_server: str, tokens: Tokens) -> SyncFHIRClient:
    return SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")


def test_fhirpy_fetch_all_follows_cursor_pages_in_sort_order(
    fhirpy_h1: SyncFHIRClient, world: dict[str, str]
) -> None:
    search = fhirpy_h1.resources("Observation").search(patient=world["patient"])
    found = search.sort("-date").limit(2).fetch_all()
    assert [f"Observation/{o.id}" for o in found] == observations(world, 3, 5, 0, 4, 1, 2)


def test_fhirpy_include_revinclude_and_iterate(
    fhirpy_h1: SyncFHIRClient, world: dict[str, str]
) -> None:
    observation = fhirpy_h1.resources("Observation").search(_id=world["o1"])
    included = observation.include("Observation", "patient").fetch_raw()
    assert entries(included, "include") == [f"Patient/{world['patient']}"]
    patient = fhirpy_h1.resources("Patient").search(_id=world["patient"])
    referrers = patient.revinclude("Encounter", "patient").fetch_raw()
    assert entries(referrers, "include") == [f"Encounter/{world['encounter']}"]
    two_hops = (
        observation.include("Observation", "encounter")
        .include("Encounter", "patient", iterate=True)
        .fetch_raw()
    )
    assert entries(two_hops, "include") == [
        f"Encounter/{world['encounter']}",
        f"Patient/{world['patient']}",
    ]
    everything = patient.revinclude("*").fetch_raw()
    assert f"Condition/{world['condition']}" in entries(everything, "include")


def test_fhirpy_elements(fhirpy_h1: SyncFHIRClient, world: dict[str, str]) -> None:
    found = fhirpy_h1.resources("Patient").search(_id=world["patient"]).elements("gender").fetch()
    assert set(found[0]) == {"resourceType", "id", "meta", "gender"}
    assert tagged(found[0])
