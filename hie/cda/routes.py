"""``POST /cda``: one ClinicalDocument per request, answered by a receipt or an OperationOutcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hie.audit import Agent, address_of, record_read, status_of
from hie.cda.submission import CdaPipeline, submit_cda
from hie.errors import HieError, NotFound
from hie.http.errors import FHIR_JSON, outcome_response
from hie.http.security import DatabaseDep, PrincipalDep
from hie.outcome import OutcomeIssue
from hie.storage.partitions import receipt_time_problem
from hie.storage.uploads import find_upload

router = APIRouter(tags=["cda"])

CDA_MEDIA_TYPES = ("application/hl7-cda+xml", "application/xml", "text/xml")


@router.post(
    "/cda",
    summary="Submit one CDA shared document",
    response_description="201 stored; 200 the same document again (original receipt); 409 same "
    "id, other content; 422 invalid (OperationOutcome with every error found); 413; 415.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in CDA_MEDIA_TYPES},
        }
    },
)
async def post_cda(
    request: Request,
    principal: PrincipalDep,
    institution: Annotated[
        str | None,
        Query(description="Admin only: the institution to submit for (default: the custodian)."),
    ] = None,
    received_at: Annotated[
        datetime | None,
        Query(description="Admin only, for backfills: the original receipt time (ISO 8601)."),
    ] = None,
) -> JSONResponse:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in CDA_MEDIA_TYPES:
        return outcome_response(
            415,
            [
                OutcomeIssue(
                    "error",
                    "not-supported",
                    f"send the document as {', '.join(CDA_MEDIA_TYPES)}, "
                    f"not {media_type or 'nothing'}",
                )
            ],
        )
    if received_at is not None:
        principal.require_role("admin")
        if received_at.tzinfo is None:
            return outcome_response(
                422,
                [
                    OutcomeIssue(
                        "error", "value", "received_at needs a time zone offset", "received_at"
                    )
                ],
            )
        if (why := receipt_time_problem(received_at)) is not None:
            return outcome_response(
                422, [OutcomeIssue("error", "value", f"received_at {why}", "received_at")]
            )
    body = await request.body()
    pipeline: CdaPipeline = request.app.state.cda_pipeline
    agent = Agent.of(principal, address_of(request))
    try:
        receipt = await run_in_threadpool(
            submit_cda,
            pipeline,
            body,
            principal=principal,
            institution=institution,
            received_at=received_at,
            content_type=media_type,
            agent=agent,
        )
    except HieError as exc:  # refused before the document was read: audited, then answered
        await run_in_threadpool(
            record_read, pipeline.database, agent, "cda.create", None, status=status_of(exc)
        )
        raise
    media = "application/json" if receipt.status in (200, 201) else FHIR_JSON
    return JSONResponse(
        receipt.body, status_code=receipt.status, headers=receipt.headers, media_type=media
    )


@router.get("/cda/{upload_id}", summary="The receipt of an upload, as it was returned")
def read_receipt(
    request: Request, upload_id: UUID, principal: PrincipalDep, database: DatabaseDep
) -> JSONResponse:
    agent = Agent.of(principal, address_of(request))
    with database.connection() as conn:
        upload = find_upload(conn, upload_id)
    try:
        if upload is None:
            raise NotFound(f"no upload {upload_id}")
        principal.require_read(upload["institution_code"])
    except HieError as exc:
        record_read(database, agent, "cda.read", f"upload/{upload_id}", status=status_of(exc))
        raise
    record_read(
        database,
        agent,
        "cda.read",
        f"upload/{upload_id}",
        acting_for=upload["institution_code"],
    )
    media = "application/json" if upload["outcome"] in ("accepted", "unchanged") else FHIR_JSON
    return JSONResponse(upload["receipt"], media_type=media)
