"""FHIR XML over the REST API, as HAPI-based clients use it: XML bodies in (stored as the JSON
form), XML answers out when Accept or _format asks for them, located OperationOutcomes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from lxml import etree  # type: ignore[import-untyped]

from hie.validators.fhir_xml import read_fhir_xml
from tests.hospitals import Tokens, auth

XML_BODY = {"Content-Type": "application/fhir+xml"}
WANTS_XML = {"Accept": "application/fhir+xml"}
NS = {"f": "http://hl7.org/fhir"}


def patient_xml(identifier: str, gender: str = "female", extra: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier>
    <system value="urn:oid:2.16.156.10011.1.2"/>
    <value value="{identifier}"/>
  </identifier>
  <name><family value="李"/><given value="Wei"/><given value="Ming"/></name>
  <gender value="{gender}"/>{extra}
  <birthDate value="1980-01-01">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1980-01-01T08:30:00+08:00"/>
    </extension>
  </birthDate>
</Patient>""".encode()


def _xml(response: Any) -> Any:
    assert response.headers["content-type"] == "application/fhir+xml; charset=utf-8"
    read = read_fhir_xml(response.content, max_bytes=1 << 24)
    assert not read.report.issues, [i.message for i in read.report.issues]
    return etree.fromstring(response.content), read.resource


def _located(outcome: dict[str, Any], rule: str) -> dict[str, Any]:
    issue: dict[str, Any] = next(
        i for i in outcome["issue"] if i["details"]["coding"][0]["code"] == rule
    )
    assert issue["location"][0].startswith("line "), issue
    return issue


def test_create_from_xml_then_read_as_json_and_as_xml(client: TestClient, tokens: Tokens) -> None:
    created = client.post(
        "/fhir/Patient", content=patient_xml("XML-1"), headers=auth(tokens.h1, **XML_BODY)
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/fhir+json")  # no Accept
    pid = created.json()["id"]
    as_json = client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).json()
    assert as_json["name"] == [{"family": "李", "given": ["Wei", "Ming"]}]
    assert as_json["birthDate"] == "1980-01-01"
    assert as_json["_birthDate"]["extension"][0]["valueDateTime"] == "1980-01-01T08:30:00+08:00"

    response = client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1, **WANTS_XML))
    assert response.status_code == 200 and response.headers["etag"] == 'W/"1"'
    root, resource = _xml(response)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    assert root.find("f:meta/f:versionId", NS).get("value") == "1"
    assert resource == as_json  # the same resource, in the other format

    # An update in XML, answered in XML.
    update = patient_xml("XML-1", gender="male").replace(
        b"<identifier>", f'<id value="{pid}"/><identifier>'.encode(), 1
    )
    updated = client.put(
        f"/fhir/Patient/{pid}", content=update, headers=auth(tokens.h1, **XML_BODY, **WANTS_XML)
    )
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert _xml(updated)[1]["gender"] == "male"


def test_conditional_create_in_xml(client: TestClient, tokens: Tokens) -> None:
    headers = auth(
        tokens.h1, **XML_BODY, **{"If-None-Exist": "identifier=urn:oid:2.16.156.10011.1.2|XML-C"}
    )
    first = client.post("/fhir/Patient", content=patient_xml("XML-C"), headers=headers)
    again = client.post("/fhir/Patient", content=patient_xml("XML-C"), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def test_a_transaction_bundle_in_xml(client: TestClient, tokens: Tokens) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = f"""<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="{patient_url}"/>
    <resource><Patient><gender value="female"/></Patient></resource>
    <request><method value="POST"/><url value="Patient"/></request>
  </entry>
  <entry>
    <resource>
      <Observation>
        <status value="final"/>
        <code><text value="体温"/></code>
        <subject><reference value="{patient_url}"/></subject>
        <valueQuantity><value value="36.8"/><unit value="Cel"/></valueQuantity>
      </Observation>
    </resource>
    <request><method value="POST"/><url value="Observation"/></request>
  </entry>
</Bundle>""".encode()
    response = client.post(
        "/fhir", content=bundle, headers=auth(tokens.h1, **XML_BODY, **WANTS_XML)
    )
    assert response.status_code == 200, response.text
    root, answer = _xml(response)
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 2
    assert root.find("f:entry/f:response/f:location", NS) is not None
    observation_path = answer["entry"][1]["response"]["location"].split("/_history/")[0]
    observation = client.get(f"/fhir/{observation_path}", headers=auth(tokens.h1)).json()
    patient_path = answer["entry"][0]["response"]["location"].split("/_history/")[0]
    assert observation["subject"]["reference"] == patient_path  # urn:uuid: rewritten
    assert observation["valueQuantity"]["value"] == 36.8


def test_xml_that_is_not_well_formed_is_refused_with_its_place(
    client: TestClient, tokens: Tokens
) -> None:
    broken = patient_xml("XML-2").replace(b"</name>", b"</nam>")
    response = client.post("/fhir/Patient", content=broken, headers=auth(tokens.h1, **XML_BODY))
    assert response.status_code == 400
    issue = _located(response.json(), "xml.well-formed")
    assert issue["location"][0].startswith("line 7, column ")
    # In XML too, when XML is asked for.
    answered = client.post(
        "/fhir/Patient", content=broken, headers=auth(tokens.h1, **XML_BODY, **WANTS_XML)
    )
    assert answered.status_code == 400
    assert _xml(answered)[1]["resourceType"] == "OperationOutcome"
    # No DTD, so no entities (billion laughs, external files).
    entity = b'<?xml version="1.0"?>\n<!DOCTYPE Patient [<!ENTITY x "female">]>\n' + (
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>'
    )
    refused = client.post("/fhir/Patient", content=entity, headers=auth(tokens.h1, **XML_BODY))
    assert refused.status_code == 400
    _located(refused.json(), "xml.doctype")


def test_an_invalid_xml_resource_is_refused_with_located_issues(
    client: TestClient, tokens: Tokens
) -> None:
    body = patient_xml("XML-3", gender="robot", extra='\n  <colour value="red"/>')
    response = client.post("/fhir/Patient", content=body, headers=auth(tokens.h1, **XML_BODY))
    assert response.status_code == 422
    outcome = response.json()
    assert _located(outcome, "fhir.xml")["location"] == ["line 9, column 3"]  # the XML format
    binding = _located(outcome, "fhir.binding.required")  # the validation, located in the XML
    assert binding["expression"] == ["Patient.gender"]
    assert binding["location"] == ["line 8, column 3"]
    wrong_type = client.post(
        "/fhir/Encounter", content=patient_xml("XML-3"), headers=auth(tokens.h1, **XML_BODY)
    )
    assert wrong_type.status_code == 400


def test_search_history_and_capabilities_answered_in_xml(
    client: TestClient, tokens: Tokens
) -> None:
    created = client.post(
        "/fhir/Patient", content=patient_xml("XML-4"), headers=auth(tokens.h1, **XML_BODY)
    )
    pid = created.json()["id"]
    found = client.get(
        "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.2|XML-4",
        headers=auth(tokens.h1, **WANTS_XML),
    )
    assert found.status_code == 200
    root, bundle = _xml(found)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert root.find("f:entry/f:resource/f:Patient/f:id", NS).get("value") == pid
    history = client.get(f"/fhir/Patient/{pid}/_history", headers=auth(tokens.h1, **WANTS_XML))
    assert _xml(history)[1]["type"] == "history"
    statement = _xml(client.get("/fhir/metadata", headers=WANTS_XML))[1]
    assert statement["format"] == ["json", "xml"]


def test_format_parameter_overrides_accept(client: TestClient, tokens: Tokens) -> None:
    # _format on a create is no condition: both requests create a Patient.
    made = [
        client.post(
            "/fhir/Patient?_format=xml",
            content=patient_xml("XML-5"),
            headers=auth(tokens.h1, **XML_BODY),
        )
        for _ in range(2)
    ]
    assert [m.status_code for m in made] == [201, 201]
    ids = [_xml(m)[1]["id"] for m in made]
    assert ids[0] != ids[1]
    for value in ("xml", "application/fhir%2Bxml", "application/fhir+xml"):
        response = client.get(
            f"/fhir/Patient/{ids[0]}?_format={value}",
            headers=auth(tokens.h1, Accept="application/fhir+json"),
        )
        assert _xml(response)[1]["id"] == ids[0]
    json_answer = client.get(
        f"/fhir/Patient/{ids[0]}?_format=json", headers=auth(tokens.h1, **WANTS_XML)
    )
    assert json_answer.json()["id"] == ids[0]


def test_validate_operation_takes_xml(client: TestClient, tokens: Tokens) -> None:
    valid = client.post(
        "/fhir/Patient/$validate",
        content=patient_xml("XML-6"),
        headers=auth(tokens.h1, **XML_BODY),
    )
    assert valid.status_code == 200
    assert all(i["severity"] not in ("error", "fatal") for i in valid.json()["issue"])
    invalid = client.post(
        "/fhir/Patient/$validate",
        content=patient_xml("XML-6", gender="robot"),
        headers=auth(tokens.h1, **XML_BODY, **WANTS_XML),
    )
    assert invalid.status_code == 412
    issues = _xml(invalid)[1]["issue"]
    assert [i["location"] for i in issues if i["severity"] == "error"] == [["line 8, column 3"]]


def test_errors_outside_the_interactions_follow_accept_too(client: TestClient) -> None:
    unauthenticated = client.get("/fhir/Patient", headers=WANTS_XML)
    assert unauthenticated.status_code == 401
    assert _xml(unauthenticated)[1]["issue"][0]["code"] == "login"
    assert client.get("/fhir/Patient").headers["content-type"].startswith("application/fhir+json")
