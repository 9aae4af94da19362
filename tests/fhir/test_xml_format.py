"""FHIR XML written from the JSON form (hie.fhir.xml_format) and the choice of answer format:
the R4 XML rules on small resources, and every official R4 example written as XML and read back
by the validators' reader into the same JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from hie.fhir.xml_format import to_fhir_xml, wants_xml
from hie.validators.fhir_xml import read_fhir_xml

NS = {"f": "http://hl7.org/fhir", "h": "http://www.w3.org/1999/xhtml"}


def _tree(resource: dict[str, Any]) -> Any:
    return etree.fromstring(to_fhir_xml(resource))


def _back(resource: dict[str, Any]) -> dict[str, Any] | None:
    read = read_fhir_xml(to_fhir_xml(resource), max_bytes=1 << 30)
    assert not read.report.issues, [i.message for i in read.report.issues]
    return read.resource


@pytest.mark.parametrize(
    ("format_parameter", "accept", "xml"),
    [
        (None, None, False),
        (None, "*/*", False),
        (None, "application/fhir+json", False),
        (None, "application/fhir+xml", True),
        (None, "application/xml", True),
        (None, "text/xml", True),
        (None, "application/fhir+xml;q=0.5, application/fhir+json", False),
        (None, "application/fhir+json;q=0.8, application/fhir+xml", True),
        # HAPI's client without a preferred encoding: equal q, XML listed first.
        (None, "application/fhir+xml;q=1.0, application/fhir+json;q=1.0", True),
        (None, "application/fhir+json, application/fhir+xml", False),
        (None, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        (None, "application/fhir+xml;q=0", False),
        ("xml", "application/fhir+json", True),
        ("application/fhir+xml", None, True),
        ("application/fhir xml", None, True),  # "+" sent unencoded in the query string
        ("json", "application/fhir+xml", False),
        ("turtle", "application/fhir+xml", True),  # unknown _format: Accept decides (as HAPI)
    ],
)
def test_the_answer_format_follows_format_then_accept(
    format_parameter: str | None, accept: str | None, xml: bool
) -> None:
    assert wants_xml(format_parameter, accept) is xml


def test_elements_follow_r4_order_with_values_in_attributes() -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "female",  # JSON order differs from R4's on purpose
        "active": True,
        "multipleBirthInteger": 2,
        "name": [{"given": ["Wei"], "family": "Li"}],
        "id": "p1",
    }
    root = _tree(patient)
    assert root.tag == "{http://hl7.org/fhir}Patient" and root.nsmap == {None: NS["f"]}
    names = [etree.QName(child).localname for child in root]
    assert names == ["id", "active", "name", "gender", "multipleBirthInteger"]
    assert root.find("f:id", NS).get("value") == "p1"  # a resource's id is an element
    assert root.find("f:active", NS).get("value") == "true"
    assert root.find("f:multipleBirthInteger", NS).get("value") == "2"
    assert [etree.QName(c).localname for c in root.find("f:name", NS)] == ["family", "given"]
    assert _back(patient) == patient


def test_primitive_extensions_merge_and_repeats_align() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["Wei", None, "Ming"],
                "_given": [
                    None,
                    {"id": "g2", "extension": [{"url": "http://x/e", "valueCode": "a"}]},
                    None,
                ],
            }
        ],
        "_birthDate": {"extension": [{"url": "http://x/unknown", "valueBoolean": False}]},
    }
    root = _tree(patient)
    given = root.findall("f:name/f:given", NS)
    assert [g.get("value") for g in given] == ["Wei", None, "Ming"]
    assert given[1].get("id") == "g2"
    extension = given[1].find("f:extension", NS)
    assert extension.get("url") == "http://x/e"  # Extension.url is an attribute
    assert extension.find("f:valueCode", NS).get("value") == "a"
    birth = root.find("f:birthDate", NS)
    assert birth.get("value") is None and birth.find("f:extension", NS) is not None
    assert _back(patient) == patient


def test_element_ids_are_attributes_and_resources_are_wrapped() -> None:
    narrative = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Li &amp; <b>Wei</b></p></div>'
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "text": {"status": "generated", "div": narrative},
                    "contained": [{"resourceType": "Organization", "id": "o", "name": "O"}],
                    "name": [{"id": "n1", "text": "Li Wei"}],
                    "managingOrganization": {"reference": "#o"},
                }
            }
        ],
    }
    root = _tree(bundle)
    patient = root.find("f:entry/f:resource/f:Patient", NS)
    assert patient is not None
    assert patient.find("f:contained/f:Organization/f:id", NS).get("value") == "o"
    assert patient.find("f:name", NS).get("id") == "n1"
    div = patient.find("f:text/h:div", NS)
    assert div.find("h:p/h:b", NS).text == "Wei"  # the XHTML itself, not escaped text
    assert _back(bundle) == bundle


def test_a_decimal_keeps_its_value() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": Decimal("72.50"), "unit": "kg"},
        "component": [{"code": {"text": "tiny"}, "valueQuantity": {"value": Decimal("1E-7")}}],
    }
    root = _tree(observation)
    assert root.find("f:valueQuantity/f:value", NS).get("value") == "72.50"
    back = _back(observation)
    assert back == observation
    assert str(back["valueQuantity"]["value"]) == "72.50"  # the digits, not the float 72.5


def test_a_float_is_written_as_its_shortest_decimal() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": 72.5, "unit": "kg"},
    }
    assert _tree(observation).find("f:valueQuantity/f:value", NS).get("value") == "72.5"


def test_a_non_resource_has_no_xml_form() -> None:
    with pytest.raises(ValueError, match="not an R4 resource type"):
        to_fhir_xml({"resourceType": "Citation"})


def _same(original: Any, read: Any) -> bool:
    """Equal JSON, except that a narrative div only has to be the same XHTML (the writer may
    escape characters differently, e.g. '"' instead of '&quot;' in text)."""
    if isinstance(original, dict) and isinstance(read, dict):
        return original.keys() == read.keys() and all(
            _same(original[k], read[k]) if k != "div" else _same_xhtml(original[k], read[k])
            for k in original
        )
    if isinstance(original, list) and isinstance(read, list):
        return len(original) == len(read) and all(map(_same, original, read))
    return type(original) is type(read) and original == read


def _same_xhtml(original: Any, read: Any) -> bool:
    if original == read:
        return True
    canonical = [
        etree.tostring(etree.fromstring(d.encode()), method="c14n") for d in (original, read)
    ]
    return bool(canonical[0] == canonical[1])


def test_every_official_example_reads_back_from_xml_unchanged(shared_data: Path) -> None:
    files = sorted(
        p
        for p in (shared_data / "fhir-r4-examples").glob("*.json")
        if p.name not in ("package.json", "MANIFEST.json")
    )
    assert len(files) == 704
    changed: list[str] = []
    with_issues: list[str] = []
    for path in files:
        resource = json.loads(path.read_bytes(), parse_float=Decimal)  # as the server reads JSON
        read = read_fhir_xml(to_fhir_xml(resource), max_bytes=1 << 30)
        if read.report.issues:
            with_issues.append(f"{path.name}: {read.report.issues[0].message}")
        if not _same(resource, read.resource):
            changed.append(path.name)
    print(f"\nXML round trip: {len(files) - len(changed)} of {len(files)} examples unchanged")
    assert not with_issues, with_issues[:5]
    assert not changed, changed[:10]
