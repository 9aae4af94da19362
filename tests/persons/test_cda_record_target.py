"""A CDA document's recordTarget joins the person index like a Patient does."""

from __future__ import annotations

import hashlib
import uuid

from hie.ingest import Arrival, store_record
from hie.normalize.cda import normalize_cda
from hie.persons import service
from hie.storage import Database
from hie.validators.cda import validate_cda
from tests.persons.conftest import HEALTH_CARD, JULY, StoreFn, patient


def test_a_discharge_document_and_a_patient_sharing_a_health_card_are_one_person(
    region: Database, store: StoreFn, cda, catalog
) -> None:
    data = cda.bytes("C0001-valid.xml")
    result = validate_cda(data, catalog=catalog)
    assert not result.report.rejected
    record = normalize_cda(result.tree, result.table)
    assert record.patient is not None and record.patient.name == "李建国"
    with region.transaction() as tx:
        store_record(
            tx.conn,
            Arrival("H1", JULY, JULY.date(), uuid.uuid4()),
            result.table,
            record,
            content_sha256=hashlib.sha256(data).digest(),
            raw_xml=data,
            immutable=True,
        )
    # Another hospital knows him by his health card only, under another spelling of his name.
    store("H2", patient("p", (HEALTH_CARD, "H32010400034567"), name="李 建国", birth="1948-01-15"))
    with region.connection() as conn:
        document = service.person_of_record(conn, "H1", record.logical_id)
        assert document is not None
        assert document == service.person_of_record(conn, "H2", "Patient/p")
        assert service.find_persons(conn, "2.16.156.10011.1.3", "320104194801153511") == [document]
