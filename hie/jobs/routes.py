"""Bulk uploads in the FHIR asynchronous request pattern: ``POST /fhir/$import`` (NDJSON) and
``POST /cda/batch`` (a zip of CDA documents) answer 202 with ``Content-Location`` once the body
is stored; ``GET /api/jobs/{id}`` answers 202 with ``X-Progress`` while the job runs, 200 with
its summary at the end; ``GET /api/jobs/{id}/items`` pages the per-item outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import anyio.from_thread
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hie.audit import Agent, address_of, record_read, status_of
from hie.auth import Principal
from hie.errors import HieError, NotFound, PermissionDenied
from hie.fhir.access import (
    INSTITUTION_HEADER,
    RECEIVED_AT_HEADER,
    InstitutionMissing,
    backfill_time,
    scope_of,
)
from hie.http.errors import outcome_response
from hie.http.security import DatabaseDep, PrincipalDep
from hie.jobs.service import EmptyUpload, NotAZip, receive_upload
from hie.jobs.summary import PAGE, item_rows, summary
from hie.outcome import OutcomeIssue
from hie.storage import Database
from hie.storage.institutions import get_institution
from hie.storage.jobs import STATES, Job, NewJob, get_job, item_page, list_jobs, state_counts
from hie.storage.partitions import receipt_time_problem

router = APIRouter(tags=["bulk"])

NDJSON_TYPES = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")

# Paths whose bodies may be as large as HIE_MAX_IMPORT_BYTES (hie/app.py tells BodySizeLimit).
BULK_PATHS = ("/fhir/$import", "/cda/batch")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _unsupported(media_type: str, wanted: tuple[str, ...]) -> JSONResponse:
    message = f"send {' or '.join(wanted)}, not {media_type or 'nothing'}"
    return outcome_response(415, [OutcomeIssue("error", "not-supported", message)])


def _pieces(request: Request) -> Iterator[bytes]:
    """The body as it arrives, for a worker thread: each piece fetched from the event loop."""
    stream = request.stream().__aiter__()
    while True:
        try:
            yield anyio.from_thread.run(stream.__anext__)  # type: ignore[arg-type]
        except StopAsyncIteration:
            return


def _job_url(request: Request, job_id: UUID) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/jobs/{job_id}"


async def _accept(
    request: Request, database: Database, job: NewJob, agent: Agent, action: str
) -> JSONResponse:
    detail = {"acting_for": job.institution_code} if job.institution_code else {}

    def work() -> JSONResponse | None:
        try:
            receive_upload(database, job, _pieces(request), agent, action=action, detail=detail)
        except (EmptyUpload, NotAZip) as exc:
            record_read(database, agent, action, None, status=400, **detail)
            return outcome_response(400, [OutcomeIssue("error", "invalid", str(exc))])
        return None

    refused = await run_in_threadpool(work)
    if refused is not None:
        return refused
    url = _job_url(request, job.id)
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"accepted as job {job.id}: GET {url} for its progress",
            }
        ],
    }
    return JSONResponse(
        body,
        status_code=202,
        headers={"Content-Location": url},
        media_type="application/fhir+json",
    )


@router.post(
    "/fhir/$import",
    summary="Bulk import: NDJSON, one resource per line (a create; an update when it has an id)",
    response_description="202 with Content-Location: the job, once the body is stored",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in NDJSON_TYPES},
        }
    },
)
async def fhir_import(request: Request, principal: PrincipalDep) -> JSONResponse:
    media_type = _media_type(request)
    if media_type not in NDJSON_TYPES:
        return _unsupported(media_type, NDJSON_TYPES)
    database: Database = request.app.state.database
    agent = Agent.of(principal, address_of(request))

    def scope() -> tuple[str, datetime | None] | JSONResponse:
        with database.connection() as conn:
            try:
                found = scope_of(
                    conn, principal, request.headers.get(INSTITUTION_HEADER), write=True
                )
                moment = backfill_time(principal, request.headers.get(RECEIVED_AT_HEADER))
            except InstitutionMissing as exc:
                return outcome_response(400, [OutcomeIssue("error", "required", str(exc))])
            except ValueError as exc:
                message = f"{RECEIVED_AT_HEADER}: {exc}"
                return outcome_response(400, [OutcomeIssue("error", "value", message)])
        return found.institution_code, moment

    try:
        scoped = await run_in_threadpool(scope)
    except HieError as exc:
        await run_in_threadpool(
            record_read, database, agent, "fhir.import", None, status=status_of(exc)
        )
        raise
    if isinstance(scoped, JSONResponse):
        return scoped
    institution, moment = scoped
    job = _new_job("fhir-ndjson", institution, principal, agent, moment, media_type)
    return await _accept(request, database, job, agent, "fhir.import")


@router.post(
    "/cda/batch",
    summary="Bulk upload: a zip of CDA documents",
    response_description="202 with Content-Location: the job, once the body is stored",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ZIP_TYPES},
        }
    },
)
async def cda_batch(
    request: Request,
    principal: PrincipalDep,
    institution: Annotated[
        str | None,
        Query(description="Admin only: the institution to submit for (default: each custodian)."),
    ] = None,
    received_at: Annotated[
        datetime | None,
        Query(description="Admin only, for backfills: the original receipt time (ISO 8601)."),
    ] = None,
) -> JSONResponse:
    media_type = _media_type(request)
    if media_type not in ZIP_TYPES:
        return _unsupported(media_type, ZIP_TYPES)
    database: Database = request.app.state.database
    agent = Agent.of(principal, address_of(request))
    try:
        # As POST /cda: a submitter for its own institution, an admin for any; nobody else.
        if principal.role == "submitter":
            if institution not in (None, principal.institution_code):
                raise PermissionDenied(
                    f"a submitter token of {principal.institution_code} cannot act for "
                    f"{institution}"
                )
            institution = principal.institution_code
        else:
            principal.require_role("admin")
        if received_at is not None:
            principal.require_role("admin")
        if institution is not None:
            await run_in_threadpool(_known_institution, database, institution)
    except HieError as exc:
        await run_in_threadpool(
            record_read, database, agent, "cda.batch", None, status=status_of(exc)
        )
        raise
    if received_at is not None:
        problem = (
            "needs a time zone offset"
            if received_at.tzinfo is None
            else receipt_time_problem(received_at)
        )
        if problem is not None:
            issue = OutcomeIssue("error", "value", f"received_at {problem}", "received_at")
            return outcome_response(422, [issue])
    job = _new_job("cda-zip", institution, principal, agent, received_at, media_type)
    return await _accept(request, database, job, agent, "cda.batch")


def _known_institution(database: Database, code: str) -> None:
    with database.connection() as conn:
        get_institution(conn, code)  # NotFound


def _new_job(
    kind: str,
    institution: str | None,
    principal: Principal,
    agent: Agent,
    backfill: datetime | None,
    media_type: str,
) -> NewJob:
    return NewJob(
        id=uuid.uuid4(),
        kind=kind,
        institution_code=institution,
        token_id=principal.token_id,
        role=principal.role,
        actor=agent.actor,
        address=agent.address,
        # The moment the platform has the data: the items count on this day, however late a
        # worker gets to them.
        received_at=backfill or datetime.now(UTC),
        backfill=backfill is not None,
        content_type=media_type,
    )


def _readable(database: Database, principal: Principal, job_id: UUID, agent: Agent) -> Job:
    with database.connection() as conn:
        job = get_job(conn, job_id)
    try:
        if job is None:
            raise NotFound(f"no job {job_id}")
        if principal.role == "submitter" and job.institution_code != principal.institution_code:
            raise NotFound(f"no job {job_id}")  # another institution's jobs are not there
    except HieError as exc:
        record_read(database, agent, "jobs.read", f"job/{job_id}", status=status_of(exc))
        raise
    return job


@router.get("/api/jobs", summary="Recent bulk jobs (a submitter sees its institution's)")
def jobs(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    institution = principal.institution_code if principal.role == "submitter" else None
    with database.connection() as conn:
        found = list_jobs(conn, institution=institution, limit=limit)
        listed = [
            summary(job, state_counts(conn, job.id), _job_url(request, job.id)) for job in found
        ]
    record_read(database, Agent.of(principal, address_of(request)), "jobs.list", None)
    return JSONResponse({"jobs": listed})


@router.get(
    "/api/jobs/{job_id}",
    summary="A bulk job: 202 with X-Progress while it runs, 200 with its summary at the end",
)
def job_status(
    request: Request, job_id: UUID, principal: PrincipalDep, database: DatabaseDep
) -> JSONResponse:
    agent = Agent.of(principal, address_of(request))
    job = _readable(database, principal, job_id, agent)
    with database.connection() as conn:
        counts = state_counts(conn, job.id)
    body = summary(job, counts, _job_url(request, job.id))
    record_read(database, agent, "jobs.read", f"job/{job_id}", acting_for=job.institution_code)
    if job.state == "failed":
        issue = OutcomeIssue("error", "invalid", job.error or "the job failed")
        return outcome_response(400, [issue])
    if job.state != "done":
        return JSONResponse(
            body,
            status_code=202,
            headers={"X-Progress": body["progress"], "Retry-After": "2"},
        )
    return JSONResponse(body)


@router.get("/api/jobs/{job_id}/items", summary="A bulk job's items and their outcomes, paged")
def job_items(
    request: Request,
    job_id: UUID,
    principal: PrincipalDep,
    database: DatabaseDep,
    state: Annotated[
        str | None, Query(description="Comma-separated: pending, accepted, rejected, failed.")
    ] = None,
    after: Annotated[int, Query(ge=0, le=10**9, description="Items after this number.")] = 0,
    count: Annotated[int, Query(ge=1, le=1000)] = PAGE,
) -> JSONResponse:
    agent = Agent.of(principal, address_of(request))
    job = _readable(database, principal, job_id, agent)
    states = tuple(s.strip() for s in state.split(",")) if state else STATES
    unknown = [s for s in states if s not in STATES]
    if unknown:
        issue = OutcomeIssue("error", "value", f"unknown state {unknown[0]!r}", "state")
        return outcome_response(400, [issue])
    with database.connection() as conn:
        rows = item_page(conn, job.id, states=states, after=after, limit=count)
    record_read(database, agent, "jobs.items", f"job/{job_id}", acting_for=job.institution_code)
    body: dict[str, Any] = {"job": str(job.id), "items": item_rows(job, rows)}
    if len(rows) == count:
        query = f"after={rows[-1]['seq']}&count={count}" + (f"&state={state}" if state else "")
        body["next"] = f"{_job_url(request, job.id)}/items?{query}"
    return JSONResponse(body)
