"""The PATCH interaction (``PATCH <Type>/<id>``, conditional ``PATCH <Type>?criteria``, and
PATCH entries of transaction and batch Bundles), as HAPI FHIR JPA answers it:

- the patch (hie/fhir/patch.py) is applied to the current version, read under its row lock in
  the write transaction, so concurrent writes cannot slip in between;
- ``If-Match`` other than the current version is 412; an unknown resource 404, a deleted 410;
- the result is validated like an update (422 with located issues when invalid); the id and
  resourceType cannot be patched (400);
- a new version is written only if the content changed (the answer is then the current one);
- a condition matching no resource is 404, more than one 412.
"""

from __future__ import annotations

import json
from decimal import Decimal

from hie.catalog import Catalog
from hie.fhir.calls import Call
from hie.fhir.content import served_form, stored_form
from hie.fhir.patch import Patch, PatchError, apply_patch, parse_patch
from hie.fhir.responses import Answer, resource_answer
from hie.fhir.rules import PATCH, PRECONDITION, REQUEST
from hie.fhir.session import WriteRefused, WriteSession, refuse
from hie.fhir.transactions import Transactions, Upload, request_error
from hie.fhir.xml_format import XML_TYPES
from hie.storable import unstorable_in
from hie.storage.records import get_head, read_version
from hie.validators.fhir import validate_resource


def read_patch(content_type: str | None, body: bytes) -> Patch:
    """The patch a request body holds; raises :class:`PatchError`."""
    try:
        document = json.loads(body, parse_float=Decimal)  # decimals keep their digits
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PatchError(f"the PATCH body is not JSON: {exc}") from exc
    for path, why in unstorable_in(document, "PATCH"):
        raise PatchError(f"{path} {why}")
    return parse_patch(content_type, document)


def patch(
    server: Transactions,
    call: Call,
    resource_type: str,
    resource_id: str | None,
    body: bytes,
    *,
    if_match: int | None,
    condition: str | None = None,
) -> Answer:
    try:
        if call.content_type in XML_TYPES:  # a FHIRPath Patch in FHIR XML
            read = server.read_body(call, body)
            if read.resource is None or read.report.rejected:
                return server.refused(call, 400, read.report, body)
            document = parse_patch(call.content_type, read.resource)
        else:
            document = read_patch(call.content_type, body)
    except PatchError as exc:
        return server.refused(call, 400, request_error(PATCH.id, str(exc)), body)
    catalog, declared = server.context(call.scope)

    def work(session: WriteSession, upload: Upload) -> Answer:
        target = resource_id
        if condition is not None:
            target = single_target(session, resource_type, condition)
        return apply_to_stored(
            session, call, resource_type, target or "", document, if_match, catalog, declared
        )

    return server.write(call, body, catalog, work)


def single_target(session: WriteSession, resource_type: str, condition: str) -> str:
    """The id of the one resource a conditional PATCH names: none is 404, several 412."""
    matches = session.find(resource_type, condition, lock=True)
    if not matches:
        raise refuse(
            404,
            REQUEST.id,
            f"no {resource_type} matches {condition!r}",
            code="not-found",
        )
    if len(matches) > 1:
        raise refuse(
            412,
            PRECONDITION.id,
            f"the condition {resource_type}?{condition} matches more than one resource",
            code="multiple-matches",
        )
    return matches[0].resource_id


def apply_to_stored(
    session: WriteSession,
    call: Call,
    resource_type: str,
    resource_id: str,
    document: Patch,
    if_match: int | None,
    catalog: Catalog,
    declared: list[str] | None,
    *,
    path: str | None = None,
) -> Answer:
    """Patch the current version of ``<Type>/<id>`` inside the session's transaction."""
    logical_id = f"{resource_type}/{resource_id}"
    head = get_head(session.conn, session.institution_code, logical_id, lock=True)
    if head is None:
        raise refuse(404, REQUEST.id, f"{logical_id} is not known", code="not-found")
    if head.deleted:
        raise refuse(410, REQUEST.id, f"{logical_id} was deleted", code="deleted")
    if if_match is not None and if_match != head.version:
        raise refuse(
            412,
            PRECONDITION.id,
            f"If-Match version {if_match} of {logical_id} failed: the current version is "
            f"{head.version}",
            code="conflict",
        )
    version = read_version(session.conn, head)
    if version is None or version.get("resource") is None:
        raise refuse(404, REQUEST.id, f"{logical_id} is not a FHIR resource", code="not-found")
    current = served_form(version["resource"], head.version, head.received_at)
    try:
        patched = apply_patch(document, current)
    except PatchError as exc:
        raise refuse(
            400,
            PATCH.id,
            f"Failed to apply patch to {logical_id}: {exc}",
            code="processing",
            expression=exc.expression if path is None else path,
        ) from exc
    if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
        raise refuse(
            400, PATCH.id, "a patch cannot change the resourceType or the id", code="invalid"
        )
    patched = stored_form(patched)
    result = validate_resource(patched, catalog=catalog, declared=declared)
    if result.report.rejected or result.table is None:
        raise WriteRefused(422, result.report)
    written = session.store(session.prepare(patched, result.table), if_match=head.version)
    return resource_answer(
        200,
        written.resource or patched,
        written.version,
        written.last_updated,
        prefs=call.prefs,
        base=call.base,
        report=result.report,
        write=True,
    )
