"""The FHIR interactions on one resource: create, update, delete, read, vread, history, search,
``$validate``.

Each method takes what the HTTP layer read (scope, preferences, body) and returns an
:class:`Answer`; it knows nothing of the web framework, so Bundle entries reuse the same code.
The reads live in reads.py, the writes and ``$validate`` in writes.py, what they share (the
catalog, the body, the write transaction with its upload row) in transactions.py.
"""

from __future__ import annotations

from functools import cached_property

from hie.catalog import Catalog
from hie.fhir import history, operations, patching, reads, writes
from hie.fhir.calls import Call
from hie.fhir.conditional import not_modified
from hie.fhir.paging import Cursors
from hie.fhir.responses import Answer
from hie.fhir.transactions import Transactions, Upload


def supported_types(catalog: Catalog) -> list[str]:
    """Resource types with a table in the catalog, plus Bundle when WS/T documents are
    accepted as FHIR document Bundles."""
    types = {t.fhir_resource_type for t in catalog if t.fhir_resource_type}
    if any(t.cda_code for t in catalog):
        types.add("Bundle")
    return sorted(types)


class FhirServer(Transactions):
    """The interactions, as routes.py and bundles.py call them."""

    # -- writes -----------------------------------------------------------------------------

    def create(self, call: Call, resource_type: str, body: bytes, condition: str | None) -> Answer:
        return writes.create(self, call, resource_type, body, condition)

    def update(
        self,
        call: Call,
        resource_type: str,
        resource_id: str | None,
        body: bytes,
        *,
        if_match: int | None,
        condition: str | None = None,
    ) -> Answer:
        return writes.update(
            self, call, resource_type, resource_id, body, if_match=if_match, condition=condition
        )

    def delete(
        self, call: Call, resource_type: str, resource_id: str, *, if_match: int | None
    ) -> Answer:
        return writes.delete(self, call, resource_type, resource_id, if_match=if_match)

    def patch(
        self,
        call: Call,
        resource_type: str,
        resource_id: str | None,
        body: bytes,
        *,
        if_match: int | None,
        condition: str | None = None,
    ) -> Answer:
        return patching.patch(
            self, call, resource_type, resource_id, body, if_match=if_match, condition=condition
        )

    def conditional_delete(self, call: Call, resource_type: str, condition: str) -> Answer:
        return writes.conditional_delete(self, call, resource_type, condition)

    def validate(
        self,
        call: Call,
        resource_type: str,
        resource_id: str | None,
        body: bytes,
        query: dict[str, str] | None = None,
    ) -> Answer:
        return operations.validate(self, call, resource_type, resource_id, body, query or {})

    def meta(self, call: Call, resource_type: str, resource_id: str) -> Answer:
        return operations.meta(self.database, call, resource_type, resource_id)

    def change_meta(
        self, call: Call, resource_type: str, resource_id: str, body: bytes, *, add: bool
    ) -> Answer:
        return operations.change_meta(self, call, resource_type, resource_id, body, add=add)

    def everything(
        self, call: Call, patient_id: str, pairs: list[tuple[str, str]], self_url: str
    ) -> Answer:
        zone = self.settings.zone
        return operations.everything(self.database, zone, call, patient_id, pairs, self_url)

    # -- reads ------------------------------------------------------------------------------

    def read(
        self,
        call: Call,
        resource_type: str,
        resource_id: str,
        pairs: list[tuple[str, str]] | None = None,
        *,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
    ) -> Answer:
        answer = reads.read(self.database, call, resource_type, resource_id, pairs)
        return not_modified(answer, if_none_match, if_modified_since) or answer

    def vread(
        self,
        call: Call,
        resource_type: str,
        resource_id: str,
        version_id: str,
        pairs: list[tuple[str, str]] | None = None,
    ) -> Answer:
        return reads.vread(self.database, call, resource_type, resource_id, version_id, pairs)

    def history(
        self,
        call: Call,
        resource_type: str | None,
        resource_id: str | None,
        pairs: list[tuple[str, str]],
        self_url: str,
    ) -> Answer:
        zone = self.settings.zone
        return history.history(
            self.database, zone, call, resource_type, resource_id, pairs, self_url
        )

    def search(
        self, call: Call, resource_type: str, pairs: list[tuple[str, str]], self_url: str
    ) -> Answer:
        zone = self.settings.zone
        return reads.search_type(
            self.database, zone, self.cursors, call, resource_type, pairs, self_url
        )

    @cached_property
    def cursors(self) -> Cursors:
        """Paging cursors, sealed with a key derived from HIE_SECRET_KEY (made on first use:
        ``hie ingest`` never pages)."""
        return Cursors(self.settings.session_secret())


__all__ = ["Call", "FhirServer", "Upload", "supported_types"]
