"""``GET /documents/{id}``: IHE MHD ITI-68 Retrieve Document, the URL in each
DocumentReference's ``content.attachment.url``.

The bytes exactly as uploaded, with their media type; a CDA document as a readable HTML page when
asked (``Accept: text/html`` or ``?_format=html``), under a Content-Security-Policy that allows no
script, no request and no frame. Every retrieval, allowed or not, is in the audit trail."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hie.audit import Agent, address_of, record_read, status_of
from hie.documents.model import CDA_MEDIA_TYPE
from hie.documents.render import render_cda
from hie.documents.service import retrieve
from hie.errors import NotFound
from hie.http.security import DatabaseDep, PrincipalDep
from hie.validators.xml import parse_xml

router = APIRouter(tags=["documents"])

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
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
    summary="Retrieve a document (IHE MHD ITI-68): the original bytes, or HTML for a CDA",
    response_description="200 the document as uploaded (application/hl7-cda+xml for CDA), or "
    "its HTML rendering; 403 no readable document has this id; 404 (admin) none has it",
)
async def retrieve_document(
    request: Request, document_id: str, principal: PrincipalDep, database: DatabaseDep
) -> Response:
    html = wants_html(request)

    def blocking() -> Response:
        agent = Agent.of(principal, address_of(request))
        target = f"DocumentReference/{document_id}"
        try:
            if not _ID.fullmatch(document_id):
                raise NotFound(f"{document_id!r} is not a document id")
            with database.connection() as conn:
                entry, data = retrieve(conn, principal, document_id)
        except Exception as exc:
            record_read(database, agent, "mhd.retrieve", target, status=status_of(exc))
            raise
        record_read(
            database,
            agent,
            "mhd.retrieve",
            target,
            status=200,
            acting_for=entry.institution_code,
            format="html" if html else "original",
        )
        if html and entry.content_type == CDA_MEDIA_TYPE:
            parsed = parse_xml(data)
            if parsed.tree is not None:
                return Response(
                    render_cda(parsed.tree),
                    media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": HTML_POLICY},
                )
        return Response(
            data,
            media_type=entry.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{entry.id}"',
                "Content-Security-Policy": HTML_POLICY,
            },
        )

    return await run_in_threadpool(blocking)
