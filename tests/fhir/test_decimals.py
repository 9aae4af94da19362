"""FHIR decimals keep their precision (FHIR R4 datatypes, decimal: "the precision of the
decimal value has significance"): a value sent as 1.50 is stored and served as 1.50, not 1.5,
and digits beyond a float's are kept; number and quantity search still compare by value."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import simplejson
from fastapi.testclient import TestClient

from tests.hospitals import Tokens, auth

JSON = {"Content-Type": "application/fhir+json"}
PRECISE = "3.14159265358979323846264338327950288"


def _exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _put(client: TestClient, token: str, body: bytes, path: str) -> None:
    answer = client.put(f"/fhir/{path}", content=body, headers=auth(token, **JSON))
    assert answer.status_code in (200, 201), answer.text


def _values(resource: dict[str, Any]) -> list[str]:
    return [str(c["valueQuantity"]["value"]) for c in resource["component"]]


def test_official_decimal_example_is_served_as_written(
    client: TestClient, tokens: Tokens, shared_data: Path
) -> None:
    body = (shared_data / "fhir-r4-examples" / "Observation-decimal.json").read_bytes()
    _put(client, tokens.h1, body, "Observation/decimal")
    read = client.get("/fhir/Observation/decimal", headers=auth(tokens.h1))
    assert read.status_code == 200
    values = _values(_exact(read.text))
    # 1.0, 1.00, 1.0 as sent (a float would give 1.0 three times); 1E-22 with its digit.
    assert values[:3] == ["1.0", "1.00", "1.0"]
    assert Decimal(values[3]) == Decimal("1E-22")
    assert values[4] == "1000000000000000000"
    assert Decimal(values[5]) == Decimal("1.000000000000000000E-245")  # a float would be 0
    searched = client.get("/fhir/Observation?_id=decimal", headers=auth(tokens.h1))
    found = _exact(searched.text)["entry"][0]["resource"]
    assert _values(found)[:3] == ["1.0", "1.00", "1.0"]
    assert Decimal(_values(found)[5]) == Decimal("1.000000000000000000E-245")


def test_official_example_decimals_survive_history_and_xml(
    client: TestClient, tokens: Tokens, shared_data: Path
) -> None:
    example = _exact((shared_data / "fhir-r4-examples" / "Observation-f003.json").read_text())
    for reference in ("subject", "performer"):  # to resources not stored here
        del example[reference]
    _put(client, tokens.h1, simplejson.dumps(example).encode(), "Observation/f003")
    history = client.get("/fhir/Observation/f003/_history", headers=auth(tokens.h1))
    served = _exact(history.text)["entry"][0]["resource"]
    assert str(served["referenceRange"][0]["high"]["value"]) == "6.0"
    xml = client.get("/fhir/Observation/f003?_format=xml", headers=auth(tokens.h1)).text
    assert '<value value="6.0"/>' in xml


def test_hand_written_decimals_keep_every_digit_and_are_searched_by_value(
    client: TestClient, tokens: Tokens
) -> None:
    body = (
        '{"resourceType":"Observation","id":"dec-hand","status":"final",'
        '"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},'
        '"valueQuantity":{"value":1.50,"unit":"mmol/L","system":"http://unitsofmeasure.org",'
        '"code":"mmol/L"},'
        f'"component":[{{"code":{{"text":"pi"}},"valueQuantity":{{"value":{PRECISE}}}}}]}}'
    ).encode()
    _put(client, tokens.h1, body, "Observation/dec-hand")
    read = client.get("/fhir/Observation/dec-hand", headers=auth(tokens.h1)).text
    assert '"value":1.50' in read.replace(" ", "")
    assert PRECISE in read
    # Sent again unchanged, it is recognised as the same content (the hash reads the digits).
    again = client.put("/fhir/Observation/dec-hand", content=body, headers=auth(tokens.h1, **JSON))
    assert again.headers["ETag"] == 'W/"1"'
    for query in ("value-quantity=1.5", "value-quantity=1.50", "value-quantity=gt1.49"):
        found = client.get(f"/fhir/Observation?{query}&_id=dec-hand", headers=auth(tokens.h1))
        assert found.status_code == 200, found.text
        assert found.json().get("total") == 1, query
    missed = client.get(
        "/fhir/Observation?value-quantity=1.6&_id=dec-hand", headers=auth(tokens.h1)
    )
    assert missed.json().get("total") == 0
    # Included resources are spliced from the stored text: the digits are there too.
    included = client.get(
        "/fhir/Observation?_id=dec-hand&_revinclude=Observation:has-member",
        headers=auth(tokens.h1),
    )
    assert '"value":1.50' in included.text.replace(" ", "")
    xml = client.get("/fhir/Observation?_id=dec-hand&_format=xml", headers=auth(tokens.h1)).text
    assert '<value value="1.50"/>' in xml
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Observation?_id=dec-hand"}}],
    }
    answer = client.post("/fhir", json=batch, headers=auth(tokens.h1))
    assert answer.status_code == 200, answer.text
    assert '"value":1.50' in answer.text.replace(" ", "")


def test_a_search_serves_each_resource_as_a_read_does(client: TestClient, tokens: Tokens) -> None:
    """Search pages are made from the stored JSON text by the database (not by the read's
    code): the same resource, meta (versionId, lastUpdated, the sender's tags) included."""
    body = {
        "resourceType": "Observation",
        "id": "dec-meta",
        "meta": {"tag": [{"system": "urn:test", "code": "t"}], "source": "urn:lab"},
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": 2.500},
    }
    _put(client, tokens.h1, simplejson.dumps(body).encode(), "Observation/dec-meta")
    _put(
        client,
        tokens.h1,
        simplejson.dumps({**body, "status": "amended"}).encode(),
        "Observation/dec-meta",
    )
    read = _exact(client.get("/fhir/Observation/dec-meta", headers=auth(tokens.h1)).text)
    page = client.get("/fhir/Observation?_id=dec-meta", headers=auth(tokens.h1)).text
    assert _exact(page)["entry"][0]["resource"] == read
    assert read["meta"]["versionId"] == "2" and read["meta"]["tag"] == body["meta"]["tag"]
    assert list(_exact(page)["entry"][0]["resource"])[:3] == ["resourceType", "id", "meta"]
