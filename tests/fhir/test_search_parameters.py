"""Search parameters as a HAPI JPA user expects them: R4's parameters of each type, every
parameter type with its modifiers, chains and reverse chains, and a CapabilityStatement that
lists only what filters. Each test states the HAPI-equivalent answer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from hie.config import Settings
from hie.fhir.parameters import compiled_fully, index_rows, parameters_of
from hie.fhir.reindex import reindex
from hie.fhir.search import SearchError, parse_search
from hie.storage import open_database
from hie.storage.search import _Builder
from tests.hospitals import Tokens, auth

SHANGHAI = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


@pytest.fixture(scope="module")
def fhir_settings(fhir_settings: Settings) -> Settings:
    """These tests are about search: their resources refer to ids that were never stored, as
    a server with the write check off (HAPI's setting) accepts; tests/fhir/test_integrity.py
    covers the check itself."""
    return fhir_settings.model_copy(update={"enforce_referential_integrity_on_write": False})


def create(client: TestClient, token: str, resource: dict[str, Any]) -> str:
    answer = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=auth(token))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def found(client: TestClient, token: str, url: str, **headers: str) -> set[str]:
    answer = client.get(url, headers=auth(token, **headers))
    assert answer.status_code == 200, answer.text
    return {
        e["resource"]["id"]
        for e in answer.json().get("entry", [])
        if e["search"]["mode"] == "match"
    }


def status(client: TestClient, token: str, url: str) -> int:
    return client.get(url, headers=auth(token)).status_code


def quantity(code: str, value: float, unit: str = "mm[Hg]") -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


@pytest.fixture(scope="module")
def people(client: TestClient, tokens: Tokens) -> dict[str, str]:
    """Patients, an organization, observations at H1; a look-alike patient at H2."""
    tag = uuid.uuid4().hex[:8]
    h1 = tokens.h1
    made: dict[str, str] = {"tag": tag}
    made["org"] = create(
        client, h1, {"resourceType": "Organization", "name": f"Gulou Hospital {tag}"}
    )
    made["muller"] = create(
        client,
        h1,
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                    "system": "urn:mrn",
                    "value": f"MR-{tag}",
                }
            ],
            "name": [
                {
                    "family": f"Müller{tag}",
                    "given": ["Peter", "James"],
                    "prefix": ["Dr"],
                    "suffix": ["Junior"],
                    "text": f"Dr Peter Müller{tag}",
                }
            ],
            "gender": "male",
            "birthDate": "1970-03-04",
            "telecom": [
                {"system": "phone", "value": f"555-{tag}"},
                {"system": "email", "value": f"{tag}@example.org"},
            ],
            "address": [{"line": ["1 Zhongshan Road"], "city": "Nanjing", "postalCode": "210008"}],
            "managingOrganization": {"reference": f"Organization/{made['org']}"},
        },
    )
    made["wang"] = create(
        client,
        h1,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": f"W-{tag}"}],
            "name": [{"family": f"Wang{tag}", "given": ["Li"]}],
            "gender": "female",
            "address": [{"city": "Suzhou"}],
        },
    )
    made["nogender"] = create(
        client,
        h1,
        {"resourceType": "Patient", "name": [{"family": f"Zhao{tag}"}]},
    )
    made["other"] = create(
        client,
        tokens.h2,
        {
            "resourceType": "Patient",
            "name": [{"family": f"Müller{tag}"}],
            "gender": "male",
        },
    )
    # Blood pressure: systolic 150 / diastolic 90, and 110 / 150.
    for key, patient, (systolic, diastolic) in (
        ("high", "muller", (150, 90)),
        ("normal", "wang", (110, 150)),
    ):
        made[key] = create(
            client,
            h1,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure"}],
                    "text": "BP panel",
                },
                "subject": {
                    "reference": f"Patient/{made[patient]}",
                    "identifier": {"system": "urn:mrn", "value": f"{patient}-{tag}"},
                },
                "effectiveDateTime": "2019-07-01T10:00:00+08:00",
                "component": [quantity("8480-6", systolic), quantity("8462-4", diastolic)],
            },
        )
    made["glucose"] = create(
        client,
        h1,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "2339-0", "display": "Glucose"}]},
            "subject": {"reference": f"Patient/{made['muller']}"},
            "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
            "meta": {"source": f"http://lab.example/{tag}/analyser#1"},
        },
    )
    made["weight"] = create(
        client,
        h1,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{made['wang']}"},
            "valueQuantity": {"value": 60, "unit": "kg", "system": UCUM, "code": "kg"},
        },
    )
    h2_obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
        "subject": {"reference": f"Patient/{made['other']}"},
    }
    made["h2obs"] = create(client, tokens.h2, h2_obs)
    return made


# -- string ---------------------------------------------------------------------------------------


def test_string_search_is_a_case_and_accent_insensitive_prefix(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """HAPI: ``family=mul`` finds Müller (normalized starts-with); not a match in the middle."""
    tag = people["tag"]
    assert found(client, tokens.h1, f"/fhir/Patient?family=MULLER{tag}") == {people["muller"]}
    assert found(client, tokens.h1, f"/fhir/Patient?family=mül&family=MULLER{tag}") == {
        people["muller"]
    }
    assert found(client, tokens.h1, f"/fhir/Patient?family=ller{tag}") == set()


def test_string_exact_and_contains(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """``:exact`` compares the value as written (case and accents count); ``:contains`` finds
    the text anywhere, normalized."""
    tag = people["tag"]
    muller = {people["muller"]}
    assert found(client, tokens.h1, f"/fhir/Patient?family:exact=Müller{tag}") == muller
    assert found(client, tokens.h1, f"/fhir/Patient?family:exact=muller{tag}") == set()
    assert found(client, tokens.h1, "/fhir/Patient?family:exact=Müller") == set()
    assert found(client, tokens.h1, f"/fhir/Patient?family:contains=LLER{tag}") == muller


def test_name_covers_family_given_prefix_suffix_and_text(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """R4 ``name`` (HumanName): HAPI indexes family, given, prefix, suffix and text."""
    tag, muller = people["tag"], {people["muller"]}
    base = f"/fhir/Patient?family=m%C3%BCller{tag}"
    for value in ("James", "Dr", "junior", "dr peter"):
        assert found(client, tokens.h1, f"{base}&name={quote(value)}") == muller, value
    assert found(client, tokens.h1, f"{base}&given=jam") == muller
    assert found(client, tokens.h1, f"{base}&name=Smith") == set()


def test_address_covers_its_parts(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    tag = people["tag"]
    mine = f"/fhir/Patient?name=m%C3%BCller{tag},wang{tag}"
    assert found(client, tokens.h1, f"{mine}&address=nanj") == {people["muller"]}
    assert found(client, tokens.h1, f"{mine}&address=1%20zhongshan") == {people["muller"]}
    # A prefix of the whole line, not of a word in it (as HAPI); :contains finds the word.
    assert found(client, tokens.h1, f"{mine}&address=zhongshan") == set()
    assert found(client, tokens.h1, f"{mine}&address:contains=zhongshan") == {people["muller"]}
    assert found(client, tokens.h1, f"{mine}&address-city=Suzhou") == {people["wang"]}
    assert found(client, tokens.h1, f"{mine}&address-postalcode=210008") == {people["muller"]}


# -- token ----------------------------------------------------------------------------------------


def test_token_not_includes_resources_without_the_value(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """R4 ``:not``: every resource that does not have the value, those without any included."""
    tag = people["tag"]
    mine = f"/fhir/Patient?name=m%C3%BCller{tag},wang{tag},zhao{tag}"
    assert found(client, tokens.h1, f"{mine}&gender:not=male") == {
        people["wang"],
        people["nogender"],
    }
    assert found(client, tokens.h1, f"{mine}&gender=male") == {people["muller"]}


def test_token_text_and_missing(client: TestClient, tokens: Tokens, people: dict[str, str]) -> None:
    """``:text`` searches Coding.display and CodeableConcept.text (normalized prefix);
    ``:missing`` whether the resource has the element at all."""
    tag = people["tag"]
    pressure = {people["high"], people["normal"]}
    mine = f"/fhir/Observation?subject=Patient/{people['muller']},Patient/{people['wang']}"
    assert found(client, tokens.h1, f"{mine}&code:text=blood") == pressure
    assert found(client, tokens.h1, f"{mine}&code:text=bp%20pan") == pressure
    assert found(client, tokens.h1, f"{mine}&code:text=gluc") == {people["glucose"]}
    named = f"/fhir/Patient?name=m%C3%BCller{tag},wang{tag},zhao{tag}"
    assert found(client, tokens.h1, f"{named}&gender:missing=true") == {people["nogender"]}
    assert people["nogender"] not in found(client, tokens.h1, f"{named}&gender:missing=false")


def test_identifier_of_type_and_telecom(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """``identifier:of-type=system|code|value`` (R4); ``phone``/``email``/``telecom`` are
    ContactPoint tokens (HAPI: the ContactPoint's system as the token's system)."""
    tag, muller = people["tag"], {people["muller"]}
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    assert found(client, tokens.h1, f"/fhir/Patient?identifier:of-type={v2}|MR|MR-{tag}") == muller
    assert found(client, tokens.h1, f"/fhir/Patient?identifier:of-type={v2}|DL|MR-{tag}") == set()
    assert status(client, tokens.h1, "/fhir/Patient?identifier:of-type=MR") == 400
    assert found(client, tokens.h1, f"/fhir/Patient?phone=555-{tag}") == muller
    assert found(client, tokens.h1, f"/fhir/Patient?email={tag}@example.org") == muller
    assert found(client, tokens.h1, f"/fhir/Patient?telecom=email|{tag}@example.org") == muller
    assert found(client, tokens.h1, f"/fhir/Patient?telecom=phone|{tag}@example.org") == set()


# -- reference ------------------------------------------------------------------------------------


def test_reference_forms(client: TestClient, tokens: Tokens, people: dict[str, str]) -> None:
    """``subject=Patient/1``, the type modifier ``subject:Patient=1``, a bare id (HAPI: any
    target type with that id), ``:identifier`` on Reference.identifier."""
    tag, pid = people["tag"], people["muller"]
    mine = {people["high"], people["glucose"]}
    assert found(client, tokens.h1, f"/fhir/Observation?subject=Patient/{pid}") == mine
    assert found(client, tokens.h1, f"/fhir/Observation?subject:Patient={pid}") == mine
    assert found(client, tokens.h1, f"/fhir/Observation?subject={pid}") == mine
    assert found(client, tokens.h1, f"/fhir/Observation?patient={pid}") == mine
    assert found(client, tokens.h1, f"/fhir/Observation?subject:Group={pid}") == set()
    assert found(
        client, tokens.h1, f"/fhir/Observation?subject:identifier=urn:mrn|muller-{tag}"
    ) == {people["high"]}
    assert status(client, tokens.h1, f"/fhir/Observation?subject:Practitioner={pid}") == 400


# -- quantity, number, uri ------------------------------------------------------------------------


def test_quantity_prefixes_and_units(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """HAPI: eq is the range the precision implies (5.4 is [5.35, 5.45)), ap is within 10 %,
    ``number|system|code`` must match the unit, ``number||code`` matches code or unit."""
    glucose, weight = {people["glucose"]}, {people["weight"]}
    mine = f"/fhir/Observation?subject=Patient/{people['muller']},Patient/{people['wang']}"
    cases = {
        "5.4": glucose,
        "5.40": glucose,
        "5": glucose,  # [4.5, 5.5)
        "5.0": set(),  # [4.95, 5.05)
        "eq5.4": glucose,
        "ne5.4": weight,
        "gt5.4": weight,
        "ge5.4": glucose | weight,
        "lt60": glucose,
        "le60": glucose | weight,
        "ap5": glucose,
        "ap65": weight,
        "sa5": glucose | weight,
        "eb6": glucose,
        f"5.4|{UCUM}|mmol/L": glucose,
        f"5.4|{UCUM}|kg": set(),
        "60||kg": weight,
        "gt1|http://other|kg": set(),
    }
    for value, expected in cases.items():
        url = f"{mine}&value-quantity={quote(value, safe='|')}"
        assert found(client, tokens.h1, url) == expected, value
    assert status(client, tokens.h1, "/fhir/Observation?value-quantity=gtfive") == 400


def test_number_parameter(client: TestClient, tokens: Tokens) -> None:
    """RiskAssessment ``probability`` (R4 number)."""
    tag = uuid.uuid4().hex[:8]
    made = {}
    for p in (0.2, 0.75):
        made[p] = create(
            client,
            tokens.h1,
            {
                "resourceType": "RiskAssessment",
                "status": "final",
                "identifier": [{"system": "urn:risk", "value": tag}],
                "subject": {"reference": "Patient/x"},
                "prediction": [{"probabilityDecimal": p}],
            },
        )
    base = f"/fhir/RiskAssessment?identifier=urn:risk|{tag}"
    assert found(client, tokens.h1, f"{base}&probability=gt0.5") == {made[0.75]}
    assert found(client, tokens.h1, f"{base}&probability=0.2") == {made[0.2]}
    assert found(client, tokens.h1, f"{base}&probability=le0.75") == set(made.values())


def test_uri_below_and_above(client: TestClient, tokens: Tokens, people: dict[str, str]) -> None:
    """``_source`` (uri): equal, ``:below`` (starts with), ``:above`` (a prefix of the value)."""
    tag = people["tag"]
    source = f"http://lab.example/{tag}/analyser#1"
    glucose = {people["glucose"]}
    assert found(client, tokens.h1, f"/fhir/Observation?_source={quote(source)}") == glucose
    assert found(client, tokens.h1, f"/fhir/Observation?_source=http://lab.example/{tag}") == set()
    below = f"/fhir/Observation?_source:below=http://lab.example/{tag}/"
    assert found(client, tokens.h1, below) == glucose
    above = f"/fhir/Observation?_source:above={quote(source + '/more')}"
    assert found(client, tokens.h1, above) == glucose


ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def test_token_below_and_above_follow_the_code_system_hierarchy(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """``class:below=v3-ActCode|IMP`` finds inpatient encounters and its children (ACUTE,
    NONAC), ``class:above=...|ACUTE`` the acute ones and those coded by an ancestor (IMP); a
    code system whose hierarchy the server does not have is refused with the reason (HAPI
    needs a terminology server there too), never answered as a plain code search."""
    tag = people["tag"]
    made = {
        code: create(
            client,
            tokens.h1,
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": ACT_CODE, "code": code},
                "identifier": [{"system": "urn:test:below", "value": tag}],
            },
        )
        for code in ("IMP", "ACUTE", "NONAC", "AMB")
    }
    base = f"/fhir/Encounter?identifier=urn:test:below|{tag}"
    below = found(client, tokens.h1, f"{base}&class:below={ACT_CODE}|IMP")
    assert below == {made["IMP"], made["ACUTE"], made["NONAC"]}
    above = found(client, tokens.h1, f"{base}&class:above={ACT_CODE}|ACUTE")
    assert above == {made["IMP"], made["ACUTE"]}
    assert found(client, tokens.h1, f"{base}&class:below={ACT_CODE}|AMB") == {made["AMB"]}
    both = found(client, tokens.h1, f"{base}&class:below={ACT_CODE}|NONAC,{ACT_CODE}|AMB")
    assert both == {made["NONAC"], made["AMB"]}
    for refused in (f"code:below={LOINC}|8480-6", "code:above=8480-6"):
        answer = client.get(f"/fhir/Observation?{refused}", headers=auth(tokens.h1))
        assert answer.status_code == 400, refused
        issue = answer.json()["issue"][0]
        assert issue["severity"] == "error"
    unknown = client.get(f"/fhir/Observation?code:below={LOINC}|8480-6", headers=auth(tokens.h1))
    assert "no hierarchy of the code system http://loinc.org" in unknown.text


def test_capability_statement_lists_token_below_and_above(
    client: TestClient, tokens: Tokens
) -> None:
    statement = client.get("/fhir/metadata").json()
    encounter = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Encounter")
    klass = next(p for p in encounter["searchParam"] if p["name"] == "class")
    text = json.dumps(klass)
    assert "below" in text and "above" in text


# -- composite ------------------------------------------------------------------------------------


def test_composite_parameters_match_within_one_component(
    client: TestClient, tokens: Tokens, people: dict[str, str]
) -> None:
    """``component-code-value-quantity=loinc|8480-6$gt140``: systolic above 140. The other
    observation has 150 only on its diastolic component, so it does not match (HAPI)."""
    mine = f"/fhir/Observation?subject=Patient/{people['muller']},Patient/{people['wang']}"
    systolic = quote(f"{LOINC}|8480-6$gt140", safe="|")
    assert found(client, tokens.h1, f"{mine}&component-code-value-quantity={systolic}") == {
        people["high"]
    }
    either = quote(f"{LOINC}|8480-6$gt140,{LOINC}|8462-4$gt140", safe="|,")
    assert found(client, tokens.h1, f"{mine}&component-code-value-quantity={either}") == {
        people["high"],
        people["normal"],
    }
    glucose = quote(f"{LOINC}|2339-0$5.4", safe="|")
    assert found(client, tokens.h1, f"{mine}&code-value-quantity={glucose}") == {people["glucose"]}
    wrong = quote(f"{LOINC}|29463-7$5.4", safe="|")
    assert found(client, tokens.h1, f"{mine}&code-value-quantity={wrong}") == set()
    assert status(client, tokens.h1, f"{mine}&code-value-quantity=8480-6") == 400


# -- chains ---------------------------------------------------------------------------------------


def test_chained_search(client: TestClient, tokens: Tokens, people: dict[str, str]) -> None:
    """``subject.name=``, ``subject:Patient.identifier=``, two links
    (``subject:Patient.organization.name=``); only the searcher's institution's resources."""
    tag = people["tag"]
    muller = {people["high"], people["glucose"]}
    assert found(client, tokens.h1, f"/fhir/Observation?subject.name=m%C3%BCller{tag}") == muller
    assert found(client, tokens.h1, f"/fhir/Observation?patient.family=wang{tag}") == {
        people["normal"],
        people["weight"],
    }
    identifier = f"/fhir/Observation?subject:Patient.identifier=urn:mrn|MR-{tag}"
    assert found(client, tokens.h1, identifier) == muller
    two = f"/fhir/Observation?subject:Patient.organization.name=gulou%20hospital%20{tag}"
    assert found(client, tokens.h1, two) == muller
    # H2's patient has the same name; H2 sees only its own observation.
    assert found(client, tokens.h2, f"/fhir/Observation?subject.name=m%C3%BCller{tag}") == {
        people["h2obs"]
    }
    # A modifier at the end of the chain: observations of patients not male.
    not_male = f"/fhir/Observation?subject:Patient.gender:not=male&subject:Patient.family=wang{tag}"
    assert found(client, tokens.h1, not_male) == {people["normal"], people["weight"]}
    not_male = (
        f"/fhir/Observation?subject:Patient.gender:not=male&subject=Patient/{people['muller']}"
    )
    assert found(client, tokens.h1, not_male) == set()
    assert status(client, tokens.h1, "/fhir/Observation?subject.nickname=x") == 400
    three = "/fhir/Observation?subject:Patient.organization.partof.name=x"
    assert found(client, tokens.h1, three) == set()
    too_deep = "/fhir/Observation?subject:Patient.organization.partof.partof.name=x"
    assert status(client, tokens.h1, too_deep) == 400
    assert status(client, tokens.h1, "/fhir/Observation?code.name=x") == 400


def test_reverse_chained_search(client: TestClient, tokens: Tokens, people: dict[str, str]) -> None:
    """``_has:Observation:patient:code=`` finds the patients having such an observation;
    a ``_has`` inside a chain and one inside another ``_has`` work too."""
    tag = people["tag"]
    mine = f"/fhir/Patient?name=m%C3%BCller{tag},wang{tag},zhao{tag}"
    assert found(client, tokens.h1, f"{mine}&_has:Observation:patient:code=2339-0") == {
        people["muller"]
    }
    assert found(client, tokens.h1, f"{mine}&_has:Observation:subject:code=85354-9") == {
        people["muller"],
        people["wang"],
    }
    quantity_has = f"{mine}&_has:Observation:patient:value-quantity=gt50"
    assert found(client, tokens.h1, quantity_has) == {people["wang"]}
    organization = (
        f"/fhir/Organization?_id={people['org']}"
        "&_has:Patient:organization:_has:Observation:patient:code=2339-0"
    )
    assert found(client, tokens.h1, organization) == {people["org"]}
    # H2's observation of code 2339-0 does not make H1's patients match, nor H2's visible.
    assert found(client, tokens.h2, "/fhir/Patient?_has:Observation:patient:code=2339-0") == {
        people["other"]
    }
    assert status(client, tokens.h1, "/fhir/Patient?_has:Observation:code:code=x") == 400
    assert status(client, tokens.h1, "/fhir/Patient?_has:Observation:patient=x") == 400


# -- the parameter table and the CapabilityStatement ----------------------------------------------


def test_parameters_come_from_r4_definitions() -> None:
    """Each type has R4's parameters (HAPI's list for Patient), compiled to fast extractors."""
    patient = parameters_of("Patient")
    for name in ("name", "family", "given", "gender", "birthdate", "organization", "address"):
        assert name in patient
    assert patient["organization"].targets == ("Organization",)
    assert patient["name"].kind == "string" and patient["birthdate"].kind == "date"
    observation = parameters_of("Observation")
    assert observation["value-quantity"].kind == "quantity"
    assert len(observation["code-value-quantity"].components) == 2
    assert "participant" in parameters_of("Encounter")
    assert all(compiled_fully(p) for p in observation.values() if p.kind != "composite"), (
        "Observation's expressions all compile"
    )


def test_parse_errors_name_the_parameter() -> None:
    def parse(*pairs: tuple[str, str]) -> Any:
        return parse_search("Observation", list(pairs), institution_code="H1", zone=SHANGHAI)

    assert parse(("foo", "1")).unknown[0].startswith('Unknown search parameter "foo"')
    with pytest.raises(SearchError, match="value-quantity=abc"):
        parse(("value-quantity", "abc"))
    with pytest.raises(SearchError, match="code:contains"):
        parse(("code:contains", "x"))


def test_capability_statement_lists_every_parameter_with_type_and_documentation(
    client: TestClient, tokens: Tokens
) -> None:
    statement = client.get("/fhir/metadata", headers=auth(tokens.h1)).json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    patient = {p["name"]: p for p in resources["Patient"]["searchParam"]}
    assert set(patient) == {"_id", "_lastUpdated", *parameters_of("Patient")}
    assert patient["family"]["type"] == "string"
    assert (
        patient["family"]["definition"] == "http://hl7.org/fhir/SearchParameter/individual-family"
    )
    assert patient["family"]["documentation"]
    composite = {p["name"]: p for p in resources["Observation"]["searchParam"]}
    assert composite["code-value-quantity"]["type"] == "composite"


# Resources rich enough to give most of their type's parameters a value.
RICH: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "meta": {
            "tag": [{"system": "urn:tags", "code": "vip"}],
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R",
                }
            ],
            "source": "http://his.example/patients",
        },
        "active": True,
        "identifier": [{"system": "urn:rich", "value": "R1"}],
        "name": [{"family": "Richman", "given": ["Ada"]}],
        "telecom": [{"system": "phone", "value": "1234"}, {"system": "email", "value": "a@b.c"}],
        "gender": "female",
        "birthDate": "1980-01-02",
        "deceasedBoolean": False,
        "address": [
            {
                "use": "home",
                "city": "Nanjing",
                "state": "Jiangsu",
                "postalCode": "210000",
                "country": "CN",
            }
        ],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "zh"}]}}],
        "generalPractitioner": [{"reference": "Practitioner/gp1"}],
        "managingOrganization": {"reference": "Organization/o1"},
        "link": [{"other": {"reference": "Patient/p0"}, "type": "seealso"}],
    },
    {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:rich", "value": "O1"}],
        "basedOn": [{"reference": "ServiceRequest/s1"}],
        "partOf": [{"reference": "Procedure/p1"}],
        "category": [{"coding": [{"system": "urn:cat", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
        "subject": {"reference": "Patient/p1"},
        "focus": [{"reference": "Patient/p2"}],
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2019-07-01",
        "performer": [{"reference": "Practitioner/pr1"}],
        "valueQuantity": {"value": 7, "system": UCUM, "code": "mm[Hg]", "unit": "mm[Hg]"},
        "method": {"coding": [{"system": "urn:m", "code": "m1"}]},
        "specimen": {"reference": "Specimen/sp1"},
        "device": {"reference": "Device/d1"},
        "hasMember": [{"reference": "Observation/o0"}],
        "derivedFrom": [{"reference": "DocumentReference/dr1"}],
        "component": [quantity("8480-6", 150)],
    },
    {
        "resourceType": "Encounter",
        "status": "finished",
        "identifier": [{"system": "urn:rich", "value": "E1"}],
        "class": {"system": "urn:class", "code": "AMB"},
        "type": [{"coding": [{"system": "urn:t", "code": "t1"}]}],
        "serviceType": {"coding": [{"system": "urn:st", "code": "st1"}]},
        "subject": {"reference": "Patient/p1"},
        "episodeOfCare": [{"reference": "EpisodeOfCare/ep1"}],
        "basedOn": [{"reference": "ServiceRequest/s1"}],
        "participant": [
            {
                "type": [{"coding": [{"system": "urn:pt", "code": "ATND"}]}],
                "individual": {"reference": "Practitioner/pr1"},
            }
        ],
        "appointment": [{"reference": "Appointment/a1"}],
        "period": {"start": "2019-07-01", "end": "2019-07-02"},
        "length": {"value": 1, "system": UCUM, "code": "d", "unit": "d"},
        "reasonCode": [{"coding": [{"system": "urn:r", "code": "r1"}]}],
        "reasonReference": [{"reference": "Condition/c1"}],
        "diagnosis": [{"condition": {"reference": "Condition/c1"}}],
        "account": [{"reference": "Account/ac1"}],
        "hospitalization": {
            "specialArrangement": [{"coding": [{"system": "urn:sa", "code": "wheel"}]}]
        },
        "location": [{"location": {"reference": "Location/l1"}, "period": {"start": "2019-07-01"}}],
        "serviceProvider": {"reference": "Organization/o1"},
        "partOf": {"reference": "Encounter/e0"},
    },
]


def _value_of(kind: str, rows: list[Any]) -> tuple[str, str] | None:
    """A search value matching the first of a parameter's rows, and one matching nothing."""
    row = rows[0]
    if kind in ("token", "reference"):
        if row.value is None:
            return None
        return (f"{row.system}|{row.value}" if row.system else row.value), "no-such-value"
    if kind == "string":
        return row.value, "zzqqx"
    if kind == "uri":
        return row.value, "urn:no-such-uri"
    if kind == "date":
        return f"ge{row.low.astimezone(SHANGHAI).date().isoformat()}", "eq1900-01-01"
    if kind in ("number", "quantity"):
        return f"{row.number}", "-99999"
    return None


def test_every_declared_parameter_filters(
    client: TestClient, tokens: Tokens, shared_data: Path
) -> None:
    """For every parameter the CapabilityStatement declares for Patient, Observation and
    Encounter that the rich resource has a value of: the value finds the rich resource and not
    the bare one, and a value it lacks finds neither."""
    statement = client.get("/fhir/metadata", headers=auth(tokens.h1)).json()
    declared = {
        r["type"]: {p["name"]: p["type"] for p in r["searchParam"]}
        for r in statement["rest"][0]["resource"]
    }
    checked: dict[str, list[str]] = {r["resourceType"]: [] for r in RICH}
    for rich in RICH:
        resource_type = rich["resourceType"]
        tag = uuid.uuid4().hex[:8]
        rich = json.loads(json.dumps(rich).replace("urn:rich", f"urn:rich:{tag}"))
        rich_id = create(client, tokens.h1, rich)
        bare = {"resourceType": resource_type, "identifier": [{"system": "urn:bare", "value": tag}]}
        if resource_type != "Patient":
            bare["status"] = rich["status"]
        if resource_type == "Observation":
            bare["code"] = {"coding": [{"system": "urn:x", "code": "x"}]}
        if resource_type == "Encounter":
            bare["class"] = {"system": "urn:class", "code": "IMP"}
        bare_id = create(client, tokens.h1, bare)
        scope = f"_id={rich_id},{bare_id}"
        rows = index_rows(rich, SHANGHAI)
        # R4 gives some parameters a value on any resource (deceased: false): not a filter test.
        always = {r.param for r in index_rows(bare, SHANGHAI)}
        for name, kind in declared[resource_type].items():
            if name in ("_id", "_lastUpdated") or name in always:
                continue
            if kind == "composite":
                parts = parameters_of(resource_type)[name].components
                values = [r for r in rows if r.param == parts[0].param.name and r.value]
                second = [
                    r
                    for r in rows
                    if r.param == parts[1].param.name
                    and values
                    and (r.group == values[0].group or not r.group)
                ]
                if not values or not second:
                    continue
                first = _value_of("token", values)
                part = _value_of(parts[1].param.kind, second)
                assert first and part
                value, missing = f"{first[0]}${part[0]}", f"{first[0]}${part[1]}"
            else:
                values = [
                    r
                    for r in rows
                    if r.param == name and (r.value or r.low or r.number is not None)
                ]
                if not values:
                    continue
                pair = _value_of(kind, values)
                if pair is None:
                    continue
                value, missing = pair
            url = f"/fhir/{resource_type}?{scope}&{name}={quote(value, safe='|$')}"
            assert found(client, tokens.h1, url) == {rich_id}, (resource_type, name, value)
            url = f"/fhir/{resource_type}?{scope}&{name}={quote(missing, safe='|$')}"
            assert found(client, tokens.h1, url) == set(), (resource_type, name, missing)
            checked[resource_type].append(name)
    for resource_type, least in (("Patient", 22), ("Observation", 20), ("Encounter", 18)):
        assert len(checked[resource_type]) >= least, checked[resource_type]


def test_index_extraction_over_the_r4_examples(shared_data: Path) -> None:
    """Every official R4 example of a type the catalog serves is indexed without error, and
    the resource types with most parameters give rows."""
    examples = shared_data / "fhir-r4-examples"
    if not examples.is_dir():
        pytest.skip("no R4 examples")
    indexed = 0
    for path in sorted(examples.glob("*.json")):
        resource = json.loads(path.read_text("utf-8"))
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        rows = index_rows(resource, SHANGHAI)
        indexed += 1
        for row in rows:
            assert row.value or row.low or row.number is not None or row.text, (path.name, row)
    assert indexed > 500
    patient = json.loads((examples / "Patient-example.json").read_text("utf-8"))
    params = {r.param for r in index_rows(patient, SHANGHAI)}
    assert {"name", "family", "given", "gender", "birthdate", "address", "telecom"} <= params


def test_reindex_gives_stored_resources_the_new_parameters(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    """A resource stored before migration 0009 has only the old rows; ``hie db reindex``
    (``reindex``) writes its rows anew, and the new parameters find it."""
    tag = uuid.uuid4().hex[:8]
    pid = create(client, tokens.h1, {"resourceType": "Patient", "name": [{"family": f"Old{tag}"}]})
    database = open_database(fhir_settings, migrate=False)
    try:
        with database.transaction() as tx:  # as if indexed before the new parameters
            tx.conn.execute(
                "delete from fhir_search_index where institution_code = 'H1'"
                " and resource_type = 'Patient' and resource_id = %s",
                (pid,),
            )
        assert found(client, tokens.h1, f"/fhir/Patient?family=old{tag}") == set()
        done = reindex(database, fhir_settings.zone, institution="H1", resource_type="Patient")
        assert done >= 1
    finally:
        database.close()
    assert found(client, tokens.h1, f"/fhir/Patient?family=old{tag}") == {pid}


def test_new_parameter_types_use_the_index(fhir_settings: Settings, tokens: Tokens) -> None:
    """String prefixes, quantities, chains and _has read fhir_search_index through its
    indexes (enable_seqscan off, as the planner would choose on a big table)."""
    queries = [
        ("Patient", [("name", "mül")], "fhir_search_text_idx"),
        ("Patient", [("family:exact", "Müller")], "fhir_search_token_idx"),
        ("Observation", [("value-quantity", "gt495")], "fhir_search_number_idx"),
        # With a unit, its code is the selective part.
        (
            "Observation",
            [("value-quantity", "gt5.4|http://unitsofmeasure.org|mmol/L")],
            "fhir_search_token_idx",
        ),
        ("Observation", [("subject.name", "peter")], "fhir_search_text_idx"),
        ("Patient", [("_has:Observation:patient:code", "2339-0")], "fhir_search_token_idx"),
        (
            "Observation",
            [("component-code-value-quantity", "http://loinc.org|8480-6$gt140")],
            "fhir_search_",
        ),
    ]
    database = open_database(fhir_settings, migrate=False)
    try:
        with database.connection() as conn, conn.transaction(force_rollback=True):
            # Enough rows that the planner's choice is the one a real table gets (rolled back).
            conn.execute(
                """
                insert into fhir_search_index (institution_code, resource_type, resource_id,
                    param, system, value, number, text)
                select 'H1', t, 'x' || n, p, 'http://unitsofmeasure.org', md5(n::text),
                    n % 500, md5(n::text)
                from generate_series(1, 20000) n,
                    (values ('Patient', 'name'), ('Observation', 'value-quantity'),
                        ('Observation', 'code')) k(t, p)
                """
            )
            conn.execute(
                """
                insert into fhir_resource (institution_code, resource_type, resource_id, version,
                    last_updated, record_id)
                select 'H1', t, 'x' || n, 1, now(), n
                from generate_series(1, 20000) n, (values ('Patient'), ('Observation')) k(t)
                """
            )
            conn.execute("analyze fhir_search_index")
            conn.execute("analyze fhir_resource")
            conn.execute("set local enable_seqscan = off")
            for resource_type, pairs, index in queries:
                parsed = parse_search(
                    resource_type, pairs, institution_code="H1", zone=fhir_settings.zone
                )
                builder = _Builder(parsed.query)
                # A count: which index serves the criterion, without a LIMIT's ordered walk.
                statement = sql.SQL("explain select count(*) from fhir_resource r where {}").format(
                    builder.build()
                )
                plan = "\n".join(
                    r["QUERY PLAN"] for r in conn.execute(statement, builder.params).fetchall()
                )
                assert "Seq Scan" not in plan, (pairs, plan)
                assert index in plan, (pairs, plan)
    finally:
        database.close()
