"""FHIR XML read into FHIR JSON by R4's own definitions, with line and column for every issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hie.catalog import Catalog
from hie.validators.conformance import Conformance
from hie.validators.fhir_xml import FhirXml, parse_fhir_xml, read_fhir_xml
from hie.validators.files import Options, validate_bytes

XHTML = "http://www.w3.org/1999/xhtml"


def read(xml: str) -> FhirXml:
    return read_fhir_xml(xml.encode("utf-8"), max_bytes=1_000_000)


def converted(xml: str) -> dict[str, Any]:
    result = read(xml)
    assert not result.report.issues, result.report.issues
    assert result.resource is not None
    return result.resource


def errors(xml: str) -> list[tuple[str, int | None, int | None, str | None]]:
    return [(i.rule, i.line, i.column, i.expression) for i in read(xml).report.errors]


def test_repeating_elements_are_arrays_and_single_ones_are_not() -> None:
    patient = converted(
        '<Patient xmlns="http://hl7.org/fhir"><id value="p1"/>'
        '<name><family value="Li"/><given value="Wei"/></name>'
        '<gender value="female"/></Patient>'
    )
    assert patient == {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Li", "given": ["Wei"]}],
        "gender": "female",
    }


def test_values_take_their_json_types_with_the_lexical_form_of_numbers() -> None:
    observation = converted(
        '<Observation xmlns="http://hl7.org/fhir"><status value="final"/>'
        '<code><text value="weight"/></code>'
        '<valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity>'
        '<component><code><text value="n"/></code><valueInteger value="-3"/></component>'
        '<component><code><text value="b"/></code><valueBoolean value="true"/></component>'
        "</Observation>"
    )
    assert observation["valueQuantity"] == {"value": 72.5, "unit": "kg"}
    assert [c.get("valueInteger", c.get("valueBoolean")) for c in observation["component"]] == [
        -3,
        True,
    ]


def test_a_value_of_the_wrong_form_is_located_and_left_out() -> None:
    xml = '<Patient xmlns="http://hl7.org/fhir">\n  <active value="yes"/>\n</Patient>'
    assert errors(xml) == [("fhir.xml", 2, 3, "Patient.active")]
    assert read(xml).resource == {"resourceType": "Patient"}


def test_primitive_ids_and_extensions_go_into_aligned_underscore_elements() -> None:
    patient = converted(
        '<Patient xmlns="http://hl7.org/fhir"><name>'
        '<given value="A"/>'
        '<given><extension url="http://example.org/absent"><valueCode value="unknown"/>'
        "</extension></given>"
        '<given value="C" id="g3"/></name>'
        '<birthDate value="1970" id="b"/></Patient>'
    )
    assert patient["name"][0] == {
        "given": ["A", None, "C"],
        "_given": [
            None,
            {"extension": [{"url": "http://example.org/absent", "valueCode": "unknown"}]},
            {"id": "g3"},
        ],
    }
    assert patient["birthDate"] == "1970" and patient["_birthDate"] == {"id": "b"}


def test_contained_resources_and_bundle_entries_are_unwrapped() -> None:
    bundle = converted(
        '<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>'
        "<entry><fullUrl value='urn:uuid:1'/><resource>"
        '<Patient><contained><Organization><id value="o"/></Organization></contained>'
        '<managingOrganization><reference value="#o"/></managingOrganization></Patient>'
        "</resource></entry>"
        "<entry><resource><Parameters><parameter><name value='p'/><resource>"
        "<Basic><code><text value='x'/></code></Basic></resource></parameter></Parameters>"
        "</resource></entry></Bundle>"
    )
    first, second = (entry["resource"] for entry in bundle["entry"])
    assert first == {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o"}],
        "managingOrganization": {"reference": "#o"},
    }
    assert second["parameter"][0]["resource"] == {"resourceType": "Basic", "code": {"text": "x"}}


def test_the_narrative_is_its_xhtml_string_and_comments_are_ignored() -> None:
    patient = converted(
        '<Patient xmlns="http://hl7.org/fhir" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        "  <!-- a comment between elements -->\n"
        '  <text><status value="generated"/>'
        f'<div xmlns="{XHTML}"><p>Li &amp; <b>Wei</b></p><pre xml:space="preserve"> x </pre>'
        "</div>\n  </text>\n</Patient>"
    )
    assert patient["text"]["div"] == (
        f'<div xmlns="{XHTML}"><p>Li &amp; <b>Wei</b></p><pre xml:space="preserve"> x </pre></div>'
    )


def test_an_element_known_to_r4_only_is_read() -> None:
    # MedicinalProduct is R4 (4.0.1); R4B replaced it, so R4B-based readers cannot read it.
    product = converted(
        '<MedicinalProduct xmlns="http://hl7.org/fhir">'
        '<name><productName value="Aspirin"/></name></MedicinalProduct>'
    )
    assert product == {"resourceType": "MedicinalProduct", "name": [{"productName": "Aspirin"}]}


def test_an_unknown_element_is_located_by_line_and_column_and_the_rest_kept() -> None:
    xml = (
        '<Patient xmlns="http://hl7.org/fhir">\n'
        '  <name><family value="Li"/>  <colour value="red"/></name>\n'
        '  <gender value="male"/>\n'
        "</Patient>"
    )
    assert errors(xml) == [("fhir.xml", 2, 31, "Patient.name[0].colour")]
    assert read(xml).resource == {
        "resourceType": "Patient",
        "gender": "male",
        "name": [{"family": "Li"}],
    }
    resource, report = parse_fhir_xml(xml.encode(), max_bytes=1_000_000)
    assert resource is None and report.rejected


def test_what_the_xml_format_does_not_allow_is_located() -> None:
    xml = (
        '<Patient xmlns="http://hl7.org/fhir">\n'
        "  <text><status value='generated'/><div>no namespace</div></text>\n"
        '  <identifier><system value="urn:x" foo="1"/></identifier>\n'
        '  <active xmlns="urn:other" value="true"/>\n'
        '  <name value="Li"/>\n'
        '  <gender value="male"/><gender value="female"/>\n'
        "  <birthDate>1970</birthDate>\n"
        "</Patient>"
    )
    assert errors(xml) == [
        ("fhir.xml", 4, 3, "Patient.active"),  # not in the FHIR namespace
        ("fhir.xml", 2, 36, "Patient.text.div"),  # the div is XHTML
        ("fhir.xml", 3, 15, "Patient.identifier[0].system"),  # unknown attribute
        ("fhir.xml", 5, 3, "Patient.name[0]"),  # value attribute on a complex element
        ("fhir.xml", 6, 25, "Patient.gender"),  # gender does not repeat
        ("fhir.xml", 7, 14, "Patient.birthDate"),  # text instead of a value attribute
        ("fhir.invariant.ele-1", 7, 3, "Patient.birthDate"),  # and so no value
    ]


def test_a_hostile_dtd_is_refused_before_any_reading() -> None:
    xml = (
        '<?xml version="1.0"?>\n<!DOCTYPE Patient [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<Patient xmlns="http://hl7.org/fhir"><id value="&b;"/></Patient>'
    )
    result = read(xml)
    assert result.resource is None
    assert [(i.rule, i.line) for i in result.report.issues] == [("xml.doctype", 2)]


def test_a_root_outside_the_fhir_namespace_or_not_a_resource_is_refused() -> None:
    assert read("<Patient/>").resource is None
    not_a_resource = read('<Dosage xmlns="http://hl7.org/fhir"/>')
    assert not_a_resource.resource is None
    assert [i.rule for i in not_a_resource.report.errors] == ["fhir.structure.resource-type"]


def test_issues_of_the_rule_layers_get_the_line_and_column_of_the_xml(catalog: Catalog) -> None:
    xml = (
        '<Patient xmlns="http://hl7.org/fhir">\n'
        '  <name><given value="Wei"/></name>\n'
        '  <gender value="mle"/>\n'
        "</Patient>"
    )
    result = validate_bytes("patient.xml", xml.encode(), Options(catalog=catalog))
    gender = [i for i in result.report.errors if i.expression == "Patient.gender"]
    assert gender and all((i.line, i.column) == (3, 3) for i in gender)


def test_xml_conformance_resources_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "vs.xml").write_text(
        '<ValueSet xmlns="http://hl7.org/fhir"><url value="http://example.org/vs"/>'
        '<status value="active"/><compose><include><system value="http://example.org/cs"/>'
        '<concept><code value="a"/></concept></include></compose></ValueSet>'
    )
    value_set = Conformance.load([tmp_path]).resolve("http://example.org/vs", "ValueSet")
    assert value_set is not None
    assert value_set["compose"]["include"][0]["concept"] == [{"code": "a"}]


def test_misordered_elements_are_located_once_where_the_order_goes_back() -> None:
    xml = (
        '<Patient xmlns="http://hl7.org/fhir">\n'
        '  <name><family value="Li"/></name>\n'
        '  <gender value="female"/>\n'
        '  <name><given value="Wei"/></name>\n'  # a repeat apart from the first name
        '  <name><given value="Lan"/></name>\n'  # the same misplaced run: reported once
        '  <address><city value="Beijing"/></address>\n'
        '  <telecom><value value="010-1234"/></telecom>\n'  # R4 puts telecom before address
        '  <contact><name><family value="Wang"/></name>'
        '<relationship><text value="mother"/></relationship></contact>\n'
        "</Patient>"
    )
    result = read(xml)
    assert [(i.rule, i.line, i.column, i.expression) for i in result.report.errors] == [
        ("fhir.xml.order", 4, 3, "Patient.name[1]"),
        ("fhir.xml.order", 7, 3, "Patient.telecom[0]"),
        ("fhir.xml.order", 8, 47, "Patient.contact[0].relationship[0]"),
    ]
    telecom = result.report.errors[1].message
    assert "'telecom' is out of order (found after 'address')" in telecom
    assert "Patient.telecom before Patient.address" in telecom
    # the content is still read, so that the rule layers check it too; the XML is rejected
    assert result.resource is not None and len(result.resource["name"]) == 3
    assert parse_fhir_xml(xml.encode(), max_bytes=1_000_000)[0] is None


def test_a_choice_element_is_ordered_by_its_base_name() -> None:
    xml = (
        '<Observation xmlns="http://hl7.org/fhir">\n'
        '  <status value="final"/>\n'
        '  <valueQuantity><value value="72"/></valueQuantity>\n'
        '  <code><text value="weight"/></code>\n'
        "</Observation>"
    )
    [issue] = read(xml).report.errors
    assert (issue.rule, issue.line, issue.column) == ("fhir.xml.order", 4, 3)
    assert "Observation.code before Observation.value[x]" in issue.message


def test_a_resource_in_r4_order_with_every_kind_of_element_reads_without_issues() -> None:
    patient = converted(
        '<Patient xmlns="http://hl7.org/fhir">'
        '<id value="p1"/>'
        '<meta><versionId value="2"/><profile value="http://example.org/p"/></meta>'
        '<language value="zh-CN"/>'
        f'<text><status value="generated"/><div xmlns="{XHTML}">Li Wei</div></text>'
        '<contained><Organization><id value="org"/><name value="Clinic"/></Organization>'
        "</contained>"
        '<extension url="http://example.org/nationality">'
        '<extension url="code"><valueCode value="CN"/></extension>'
        '<extension url="period"><valuePeriod><start value="1970"/></valuePeriod></extension>'
        "</extension>"
        '<modifierExtension url="http://example.org/flag"><valueBoolean value="true"/>'
        "</modifierExtension>"
        '<identifier><use value="official"/><system value="urn:oid:1.2.3"/>'
        '<value value="42"/></identifier>'
        '<active value="true"><extension url="http://example.org/since">'
        '<valueDate value="2020"/></extension></active>'
        '<name id="n1"><family value="Li"><extension url="http://example.org/script">'
        '<valueCode value="hans"/></extension></family>'
        '<given value="Wei"/><given value="Ming"/></name>'
        '<name><text value="Li Wei"/></name>'
        '<telecom><system value="phone"/><value value="010-1234"/></telecom>'
        '<gender value="male"/>'
        '<birthDate value="1970-01-01"><extension url="http://hl7.org/fhir/StructureDefinition/'
        'patient-birthTime"><valueDateTime value="1970-01-01T08:30:00+08:00"/></extension>'
        "</birthDate>"
        '<deceasedBoolean value="false"/>'
        '<address><line value="1 Road"/><line value="Flat 2"/><city value="Beijing"/></address>'
        '<multipleBirthInteger value="2"/>'
        '<contact><relationship><coding><system value="http://terminology.hl7.org/CodeSystem/'
        'v2-0131"/><code value="N"/></coding></relationship>'
        '<name><family value="Wang"/></name><gender value="female"/></contact>'
        '<communication><language><text value="Chinese"/></language>'
        '<preferred value="true"/></communication>'
        '<managingOrganization><reference value="#org"/></managingOrganization>'
        "</Patient>"
    )
    assert patient["deceasedBoolean"] is False and patient["multipleBirthInteger"] == 2
    assert patient["name"][0]["given"] == ["Wei", "Ming"]
    assert patient["_active"]["extension"][0]["valueDate"] == "2020"
    assert patient["contact"][0]["name"] == {"family": "Wang"}
    assert patient["contained"][0]["name"] == "Clinic"
