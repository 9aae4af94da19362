"""``GET /documents/{id}``: IHE MHD ITI-68 Retrieve Document, the URL in each
DocumentReference's ``content.attachment.url``.

The bytes exactly as uploaded, with their media type (a FHIR document Bundle: its stored form as
JSON, or FHIR XML when asked with ``Accept: application/fhir+xml`` or ``?_format=xml``); a CDA
document or a FHIR document Bundle as a readable HTML page when asked (``Accept: text/html`` or
``?_format=html``; :mod:`hie.documents.render`), under a Content-Security-Policy that allows no
script, no request and no frame. Another institution's document is retrieved under the
resident's consent or by break-glass (``X-Break-Glass: <reason>``), as
:func:`hie.documents.service.readable` decides. Every retrieval, allowed or not, is in the audit
trail with the resident's person and the consent or break-glass reason used."""

from __future__ import annotations

import simplejson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hie.audit import Agent, address_of, record_read, status_of
from hie.consent.model import BREAK_GLASS_HEADER, break_glass_reason
from hie.documents.model import FHIR_MEDIA_TYPE
from hie.documents.render import render_document
from hie.documents.service import Refused, retrieve
from hie.errors import NotFound
from hie.fhir.answering import FHIR_ID
from hie.fhir.xml_format import FHIR_XML, to_fhir_xml, wants_xml
from hie.http.security import DatabaseDep, PrincipalDep

router = APIRouter(tags=["documents"])

# The rendering is a document, not an application: nothing runs, loads or frames it.
HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def wants_html(request: Request) -> bool:
    """``?_format=html``, or an Accept header naming text/html (a browser's)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return fmt in ("html", "text/html")
    return "text/html" in request.headers.get("accept", "")


@router.get(
    "/documents/{document_id}",
    summary="Retrieve a document (IHE MHD ITI-68): the original bytes, or its HTML rendering",
    response_description="200 the document as uploaded (application/hl7-cda+xml for CDA), or "
    "its HTML rendering (a CDA document, a FHIR document Bundle); 403 no readable document has "
    "this id; 404 (admin) none has it",
)
async def retrieve_document(
    request: Request, document_id: str, principal: PrincipalDep, database: DatabaseDep
) -> Response:
    html = wants_html(request)
    glass = break_glass_reason(request.headers.get(BREAK_GLASS_HEADER))

    def blocking() -> Response:
        agent = Agent.of(principal, address_of(request))
        target = f"DocumentReference/{document_id}"
        try:
            if not FHIR_ID.fullmatch(document_id):
                raise NotFound(f"{document_id!r} is not a document id")
            with database.connection() as conn:
                retrieved = retrieve(conn, principal, document_id, break_glass=glass)
        except Refused as exc:
            # The caller is told what a missing document tells; the trail names the resident.
            record_read(database, agent, "mhd.retrieve", target, status=exc.status, **exc.audit)
            raise
        except Exception as exc:
            record_read(database, agent, "mhd.retrieve", target, status=status_of(exc))
            raise
        entry, data = retrieved.entry, retrieved.data
        fhir = entry.content_type == FHIR_MEDIA_TYPE
        record_read(
            database,
            agent,
            "mhd.retrieve",
            target,
            status=200,
            acting_for=entry.institution_code,
            format="html" if html else "original",
            **retrieved.audit,
        )
        if html:
            custodian = entry.resource.get("custodian") or {}
            page = render_document(entry.content_type, data, institution=custodian.get("display"))
            if page is not None:
                return Response(
                    page,
                    media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": HTML_POLICY},
                )
        media_type = entry.content_type
        if fhir and wants_xml(request.query_params.get("_format"), request.headers.get("accept")):
            # Decimals kept as written (1.50), as the JSON form is served.
            data = to_fhir_xml(simplejson.loads(data, use_decimal=True))
            media_type = FHIR_XML
        return Response(
            data,
            media_type=media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{entry.id}"',
                "Content-Security-Policy": HTML_POLICY,
            },
        )

    return await run_in_threadpool(blocking)
