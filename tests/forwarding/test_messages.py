"""What goes upstream for an event: built so that a resend changes nothing there."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

from hie.catalog import Catalog
from hie.forwarding.messages import (
    binary_id,
    document_bundle,
    document_identifier,
    fhir_request,
    identifier_condition,
)
from hie.validators.conformance import STANDALONE
from hie.validators.fhir import validate_resource
from tests.conftest import CdaFixtures

DOCUMENT_ID = "2.16.156.10011.1.1^455755678-C0002-20190715-0001"


def test_a_resource_with_an_identifier_is_a_conditional_update_by_it() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "3", "lastUpdated": "2019-07-15T04:00:00Z", "profile": ["x"]},
        "identifier": [
            {"system": "urn:example:mrn"},  # no value: not a condition
            {"system": "urn:example:mrn", "value": "MRN-7"},
        ],
    }
    request = fhir_request("Patient", "pat-1", patient, deleted=False)
    assert (request.method, request.path) == ("PUT", "Patient")
    assert request.params == {"identifier": "urn:example:mrn|MRN-7"}
    assert request.body is not None
    # This platform's version and time stay here; other meta goes along.
    assert request.body["meta"] == {"profile": ["x"]}
    assert request.body["id"] == "pat-1" and request.body["identifier"] == patient["identifier"]


def test_a_resource_without_a_usable_identifier_is_put_by_id() -> None:
    encounter = {"resourceType": "Encounter", "id": "enc-1", "status": "finished"}
    request = fhir_request("Encounter", "enc-1", encounter, deleted=False)
    assert (request.method, request.path, request.params) == ("PUT", "Encounter/enc-1", {})
    assert request.body == encounter
    # A value with search syntax would be read as two values: by id instead.
    odd = {**encounter, "identifier": [{"system": "urn:x", "value": "a,b"}]}
    assert identifier_condition(odd) is None
    assert fhir_request("Encounter", "enc-1", odd, deleted=False).path == "Encounter/enc-1"
    assert identifier_condition({"identifier": [{"value": "v"}]}) == "v"


def test_a_deleted_version_is_a_delete_by_id() -> None:
    request = fhir_request("Observation", "obs-1", None, deleted=True)
    assert (request.method, request.path, request.body) == ("DELETE", "Observation/obs-1", None)


def test_a_cda_document_is_an_mhd_transaction_created_once() -> None:
    xml = "<ClinicalDocument>门诊摘要</ClinicalDocument>".encode()
    bundle = document_bundle(DOCUMENT_ID, xml, table_code="C0002")
    assert bundle["type"] == "transaction"
    reference, binary = bundle["entry"]
    document = reference["resource"]
    assert document["masterIdentifier"] == {
        "system": "urn:oid:2.16.156.10011.1.1",
        "value": "455755678-C0002-20190715-0001",
    }
    assert reference["request"] == {
        "method": "POST",
        "url": "DocumentReference",
        "ifNoneExist": "identifier=urn:oid:2.16.156.10011.1.1|455755678-C0002-20190715-0001",
    }
    attachment = document["content"][0]["attachment"]
    assert attachment["size"] == len(xml)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(xml).digest()  # noqa: S324
    assert "data" not in attachment
    assert document["type"]["coding"][0]["code"] == "C0002"
    # The Binary holds the original bytes under an id of the document's own: a resend updates
    # it with the same content instead of adding another.
    assert binary["request"] == {"method": "PUT", "url": f"Binary/{binary_id(DOCUMENT_ID)}"}
    assert attachment["url"] == f"Binary/{binary_id(DOCUMENT_ID)}"
    assert base64.b64decode(binary["resource"]["data"]) == xml
    assert document_bundle(DOCUMENT_ID, xml, table_code="C0002") == bundle
    assert len(binary_id(DOCUMENT_ID)) <= 64


def test_inline_mode_carries_the_bytes_in_the_document_reference() -> None:
    xml = b"<ClinicalDocument/>"
    bundle = document_bundle(
        DOCUMENT_ID + "R",
        xml,
        table_code="C0002",
        replaces=DOCUMENT_ID,
        mode="inline",
    )
    (entry,) = bundle["entry"]
    document = entry["resource"]
    assert base64.b64decode(document["content"][0]["attachment"]["data"]) == xml
    assert "url" not in document["content"][0]["attachment"]
    assert document["relatesTo"] == [
        {"code": "replaces", "target": {"identifier": document_identifier(DOCUMENT_ID)}}
    ]


def test_a_document_id_without_extension_is_its_root() -> None:
    assert document_identifier("1.2.3") == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:1.2.3",
    }


def test_both_document_transactions_are_valid_r4(catalog: Catalog, cda: CdaFixtures) -> None:
    hl7 = replace(STANDALONE, platform_rules=False)  # HL7's rules alone: the upstream may be any
    for mode in ("mhd", "inline"):
        bundle = document_bundle(
            DOCUMENT_ID,
            cda.bytes("C0002-valid.xml"),
            table_code="C0002",
            replaces="2.16.156.10011.1.1^earlier",
            mode=mode,
        )
        issues = validate_resource(bundle, catalog=catalog, context=hl7).report.issues
        assert issues == [], (mode, issues)
