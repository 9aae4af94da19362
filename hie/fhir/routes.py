"""The ``/fhir`` routes: HTTP in, :class:`Answer` out. The interactions live in server.py and
bundles.py; this module reads headers (Prefer, If-Match, If-None-Exist, X-HIE-Institution,
Content-Type, Accept and ``_format``) and runs the blocking work in the thread pool. Bodies and
answers are FHIR JSON or FHIR XML (xml_format.py); JSON unless XML is asked for."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import unquote_plus, urlencode

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hie.audit import (
    FLUSH_BEFORE_READING,
    Agent,
    address_of,
    flush_reads,
    mask,
    masked_query,
    record_read,
    status_of,
)
from hie.auth import Principal
from hie.consent.model import BREAK_GLASS_HEADER, Verdict, break_glass_reason
from hie.consent.service import audit_detail, decide_access
from hie.documents.provide import is_provide_bundle, provide
from hie.documents.search import find_documents
from hie.errors import PermissionDenied
from hie.fhir import consented
from hie.fhir.access import (
    INSTITUTION_HEADER,
    RECEIVED_AT_HEADER,
    InstitutionMissing,
    backfill_time,
    scope_of,
)
from hie.fhir.answering import (
    ResourceId,
    fhir_base,
    fhir_server,
    query_pairs,
    refuse_bad_id,
    respond,
)
from hie.fhir.audit_events import AUDIT_EVENT, read_audit, search_audit
from hie.fhir.bundles import BundleProcessor
from hie.fhir.capability import capability_statement
from hie.fhir.content import parse_etag
from hie.fhir.openapi import RESOURCE_TYPE, extra
from hie.fhir.patch import JSON_PATCH
from hie.fhir.pdq import search_patients
from hie.fhir.pix import ihe_pix
from hie.fhir.responses import FHIR_JSON, JSON_TYPES, Answer, Preferences, error
from hie.fhir.search import IGNORED
from hie.fhir.server import Call, FhirServer, supported_types
from hie.fhir.xml_format import FHIR_XML, XML_TYPES
from hie.http.security import PrincipalDep
from hie.storage import Connection

router = APIRouter(prefix="/fhir", tags=["fhir"])

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
PIX = "Patient/$ihe-pix"
ACCEPTED = (*JSON_TYPES, *XML_TYPES)
AUDITED_DOCUMENTS = 100  # document ids named in one search's audit entry

# A read about residents run under the access decision: (server, call, break-glass reason, work).
Guard = Callable[[FhirServer, Call, str | None, Callable[[], Answer]], Answer]

PreferHeader = Annotated[str | None, Header(alias="Prefer")]
IfMatchHeader = Annotated[str | None, Header(alias="If-Match")]
ResourceType = Annotated[str, Path(**RESOURCE_TYPE)]


def _condition(request: Request) -> str | None:
    """The query string as a search condition, without the parameters that only shape the
    answer (``_format``, ``_pretty``): ``POST /fhir/Patient?_format=xml`` has no condition."""
    kept = [
        part
        for part in request.url.query.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) not in IGNORED
    ]
    return "&".join(kept) or None


async def _run(
    request: Request,
    principal: Principal,
    prefer: str | None,
    *,
    write: bool,
    work: Callable[[FhirServer, Call], Answer],
    resource_type: str | None = None,
    action: str | None = None,
    target: str | None = None,
    query: str | None = None,
    guard: Guard | None = None,
) -> Response:
    """Resolve the caller's scope, check the type, and run ``work`` off the event loop.

    ``guard`` runs a read about residents (read, search, ``$everything``) under the access
    decision (consented.py); other reads stay within the caller's own institution.

    ``action`` names the interaction in the audit trail (None: not audited, e.g. ``$validate``).
    A write records its entry in its own transaction (transactions.py); a read, and a request
    refused before its work, records one here once the answer is known.
    """
    server = fhir_server(request)
    agent = Agent.of(principal, address_of(request))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower() or None
    if write and content_type is not None and content_type not in (*ACCEPTED, JSON_PATCH):
        message = f"send {FHIR_JSON} or {FHIR_XML}, not {content_type}"
        return respond(error(415, "not-supported", message), request)

    def audit(status: int, acting_for: str | None = None, call: Call | None = None) -> None:
        if action is not None:
            detail: dict[str, Any] = {"acting_for": acting_for} if acting_for else {}
            if query:
                detail["query"] = query
            if call is not None:
                detail.update(call.audit)
            record_read(server.database, agent, action, target, status=status, **detail)

    def prepared() -> Call | Answer:
        with server.database.connection() as conn:
            try:
                scope = scope_of(
                    conn, principal, request.headers.get(INSTITUTION_HEADER), write=write
                )
                received_at = backfill_time(principal, request.headers.get(RECEIVED_AT_HEADER))
            except InstitutionMissing as exc:
                return error(400, "required", str(exc))
            except ValueError as exc:
                return error(400, "value", f"{RECEIVED_AT_HEADER}: {exc}")
            if received_at is not None:
                scope = replace(scope, received_at=received_at)
            types = supported_types(server.catalogs.get(conn))
        if resource_type is not None and (
            not _TYPE.fullmatch(resource_type) or resource_type not in types
        ):
            return error(
                404, "not-supported", f"resource type {resource_type!r} is not served here"
            )
        return Call(
            scope,
            Preferences.parse(prefer),
            fhir_base(request),
            content_type,
            agent=agent,
            action=action or "fhir.request",
            target=target,
            query=query,
        )

    def blocking() -> Answer:
        try:
            call = prepared()
        except Exception as exc:  # refused (403, 404): recorded, then answered as usual
            audit(status_of(exc))
            raise
        if isinstance(call, Answer):
            audit(call.status)
            return call
        try:
            if guard is not None and not write:
                glass = break_glass_reason(request.headers.get(BREAK_GLASS_HEADER))
                answer = guard(server, call, glass, lambda: work(server, call))
            else:
                if not write and action is not None:
                    consented.refuse_unguarded(principal, call.scope.institution_code)
                answer = work(server, call)
        except Exception as exc:
            if not write:
                audit(status_of(exc), call.scope.institution_code, call)
            raise
        if not write:
            audit(answer.status, call.scope.institution_code, call)
        return answer

    # Written in the pool too: an XML answer of a large Bundle is not free.
    return await run_in_threadpool(lambda: respond(blocking(), request))


async def _write_one(
    request: Request,
    principal: Principal,
    prefer: str | None,
    resource_type: str,
    resource_id: str | None,
    *,
    action: str,
    work: Callable[[FhirServer, Call, str | None], Answer],
    check_type: bool = True,
) -> Response:
    """A write to one resource: ``<Type>/<id>``, or, with ``resource_id`` None, the one the
    search in the URL finds (conditional update, patch, delete: 400 without a condition).
    ``work`` gets the condition (None for an id). ``check_type`` False leaves an unserved type
    to the server's reading of the body (update), which keeps the refused upload."""
    if resource_id is not None:
        target, condition = f"{resource_type}/{resource_id}", None
        refused = refuse_bad_id(request, resource_id)
    else:
        target, condition = resource_type, _condition(request)
        message = f"{request.method} /fhir/{resource_type} needs a condition"
        refused = None if condition else respond(error(400, "invalid", message), request)
    return refused or await _run(
        request,
        principal,
        prefer,
        write=True,
        resource_type=resource_type if check_type else None,
        action=action,
        target=target,
        query=mask(condition) if condition else None,
        work=lambda server, call: work(server, call, condition),
    )


async def _update_or_patch(
    request: Request,
    principal: Principal,
    prefer: str | None,
    resource_type: str,
    resource_id: str | None,
    if_match: str | None,
    *,
    patch: bool,
) -> Response:
    """``PUT`` or ``PATCH`` of ``<Type>/<id>`` or ``<Type>?<search>``."""
    body = await request.body()
    return await _write_one(
        request,
        principal,
        prefer,
        resource_type,
        resource_id,
        action="fhir.patch" if patch else "fhir.update",
        check_type=patch,  # an update answers an unserved type from its body
        work=lambda server, call, condition: (server.patch if patch else server.update)(
            call,
            resource_type,
            resource_id,
            body,
            if_match=parse_etag(if_match),
            condition=condition,
        ),
    )


@router.get("/metadata", summary="CapabilityStatement (no token needed)", openapi_extra=extra())
async def metadata(request: Request) -> Response:
    def blocking() -> Answer:
        server = fhir_server(request)
        with server.database.connection() as conn:
            types = supported_types(server.catalogs.get(conn))
        settings = server.settings
        statement = capability_statement(
            types,
            fhir_base(request),
            multiple_delete=settings.allow_multiple_delete,
            integrity=settings.enforce_referential_integrity_on_write,
        )
        return Answer(200, statement)

    return await run_in_threadpool(lambda: respond(blocking(), request))


def _audit_trail(
    request: Request, principal: Principal, action: str, target: str, read: Callable[[], Answer]
) -> Answer:
    """An admin's or regulator's read of the audit trail, itself audited (also when refused)."""
    server = fhir_server(request)
    agent = Agent.of(principal, address_of(request))
    query = masked_query(query_pairs(request)) or None
    try:
        principal.require_role("admin", "regulator")
    except PermissionDenied:
        record_read(server.database, agent, action, target, status=403, query=query)
        raise
    flush_reads(server.database, timeout=FLUSH_BEFORE_READING)  # this process's latest reads too
    answer = read()
    record_read(server.database, agent, action, target, status=answer.status, query=query)
    return answer


@router.get(f"/{AUDIT_EVENT}", summary="search the audit trail (admin, regulator)")
async def audit_search(request: Request, principal: PrincipalDep) -> Response:
    def blocking() -> Answer:
        server = fhir_server(request)
        return _audit_trail(
            request,
            principal,
            "audit.search",
            AUDIT_EVENT,
            lambda: search_audit(
                server.database,
                server.settings.zone,
                fhir_base(request),
                query_pairs(request),
                str(request.url),
            ),
        )

    return await run_in_threadpool(lambda: respond(blocking(), request))


@router.get(f"/{AUDIT_EVENT}/{{event_id}}", summary="one audit entry (admin, regulator)")
async def audit_read(request: Request, event_id: str, principal: PrincipalDep) -> Response:
    def blocking() -> Answer:
        server = fhir_server(request)
        return _audit_trail(
            request,
            principal,
            "audit.read",
            f"{AUDIT_EVENT}/{event_id}",
            lambda: read_audit(server.database, event_id),
        )

    return await run_in_threadpool(lambda: respond(blocking(), request))


def _lookup_access(
    conn: Connection, principal: Principal, request: Request, target: str
) -> tuple[Callable[[int | None, str], bool], list[tuple[int, Verdict]]]:
    """A clinician's look-up across institutions shows another institution's Patients of a
    resident only under the resident's consent (or break-glass); each (person, institution)
    is decided once, and the verdicts that allowed go to the audit entry."""
    glass = break_glass_reason(request.headers.get(BREAK_GLASS_HEADER))
    decided: dict[tuple[int | None, str], bool] = {}
    verdicts: list[tuple[int, Verdict]] = []

    def allowed(person: int | None, institution: str) -> bool:
        if principal.role != "clinician" or institution == principal.institution_code:
            return True
        if (person, institution) not in decided:
            verdict = None
            if person is not None:
                verdict = decide_access(
                    conn,
                    principal,
                    person,
                    institution,
                    clinical=False,
                    break_glass=glass,
                    target=target,
                )
                if verdict.allowed:
                    verdicts.append((person, verdict))
            decided[(person, institution)] = verdict is not None and verdict.allowed
        return decided[(person, institution)]

    return allowed, verdicts


def _lookup_detail(persons: list[int], verdicts: list[tuple[int, Verdict]]) -> dict[str, Any]:
    detail = audit_detail([(p, v) for p, v in verdicts if p in persons], [])
    detail.pop("resources", None)
    detail["persons"] = persons
    return detail


def _pdq(request: Request, principal: Principal, pairs: list[tuple[str, str]]) -> Answer:
    server = fhir_server(request)
    with server.database.connection() as conn:
        allowed, verdicts = _lookup_access(conn, principal, request, "Patient")
        answer, persons = search_patients(
            conn, server.settings.zone, fhir_base(request), pairs, str(request.url), allowed
        )
    record_read(
        server.database,
        Agent.of(principal, address_of(request)),
        "fhir.pdq",
        "Patient",
        status=answer.status,
        query=masked_query(pairs) or None,
        **_lookup_detail(persons, verdicts),
    )
    return answer


def _mhd(
    request: Request, principal: Principal, pairs: list[tuple[str, str]], self_url: str
) -> Answer:
    """IHE MHD ITI-67 across institutions: the document registry, not one institution's
    FHIR resources; audited with the resident's persons, the documents listed and the consents
    or break-glass reason (``X-Break-Glass``) that let another institution's through."""
    server = fhir_server(request)
    agent = Agent.of(principal, address_of(request))
    query = masked_query(pairs) or None
    institution = request.headers.get(INSTITUTION_HEADER) or principal.institution_code
    glass = break_glass_reason(request.headers.get(BREAK_GLASS_HEADER))
    try:
        with server.database.connection() as conn:
            found = find_documents(
                conn,
                principal,
                institution,
                pairs,
                zone=server.settings.zone,
                base=fhir_base(request),
                self_url=self_url,
                break_glass=glass,
            )
    except Exception as exc:
        record_read(
            server.database,
            agent,
            "mhd.find",
            "DocumentReference",
            status=status_of(exc),
            query=query,
        )
        raise
    record_read(
        server.database,
        agent,
        "mhd.find",
        "DocumentReference",
        status=found.answer.status,
        query=query,
        persons=found.persons,
        documents=found.documents[:AUDITED_DOCUMENTS],
        document_count=len(found.documents),
        **found.audit,
    )
    return found.answer


@router.get("/Patient/$ihe-pix", summary="PIXm cross-reference (ITI-83; admin, clinician)")
async def ihe_pix_route(request: Request, principal: PrincipalDep) -> Response:
    def blocking() -> Answer:
        server = fhir_server(request)
        agent = Agent.of(principal, address_of(request))
        pairs = query_pairs(request)
        query = masked_query(pairs) or None
        try:
            principal.require_role("admin", "clinician")
        except PermissionDenied:
            record_read(server.database, agent, "fhir.pix", PIX, status=403, query=query)
            raise
        with server.database.connection() as conn:
            allowed, verdicts = _lookup_access(conn, principal, request, PIX)
            answer, persons = ihe_pix(conn, pairs, allowed)
        record_read(
            server.database,
            agent,
            "fhir.pix",
            PIX,
            status=answer.status,
            query=query,
            **_lookup_detail(persons, verdicts),
        )
        return answer

    return await run_in_threadpool(lambda: respond(blocking(), request))


@router.api_route(
    f"/{AUDIT_EVENT}",
    methods=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,  # the audit trail is written by the server only: always 405
)
@router.api_route(
    f"/{AUDIT_EVENT}/{{event_id}}",
    methods=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,  # one handler for both paths; nothing to document but a 405
)
async def audit_write(request: Request) -> Response:
    answer = error(405, "not-supported", "AuditEvent is written by the server only")
    answer.headers["Allow"] = "GET"
    return respond(answer, request)


@router.post("", summary="transaction or batch Bundle", openapi_extra=extra(body="bundle"))
async def transaction(
    request: Request, principal: PrincipalDep, prefer: PreferHeader = None
) -> Response:
    body = await request.body()

    def work(server: FhirServer, call: Call) -> Answer:
        # IHE MHD ITI-65: a transaction with a SubmissionSet List goes to the document registry.
        if b"ubmission" in body or b"submissionset" in body:
            read = server.read_body(call, body)
            if read.resource is not None and is_provide_bundle(read.resource):
                return provide(server, replace(call, action="mhd.provide"), body, read.resource)
        return BundleProcessor(server).process(call, body)

    return await _run(request, principal, prefer, write=True, action="fhir.bundle", work=work)


@router.get("/_history", summary="system history", openapi_extra=extra(query="history"))
async def system_history(
    request: Request, principal: PrincipalDep, prefer: PreferHeader = None
) -> Response:
    pairs = query_pairs(request)
    return await _run(
        request,
        principal,
        prefer,
        write=False,
        action="fhir.history",
        target="_history",
        query=masked_query(pairs) or None,
        work=lambda server, call: server.history(call, None, None, pairs, str(request.url)),
    )


@router.get("/{resource_type}", summary="search", openapi_extra=extra(query="search"))
async def search(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
) -> Response:
    pairs = query_pairs(request)
    if (
        resource_type == "Patient"
        and principal.role in ("admin", "clinician")
        and request.headers.get(INSTITUTION_HEADER) is None
    ):
        # No institution named: the region's Patients through the person index (PDQm).
        return await run_in_threadpool(lambda: respond(_pdq(request, principal, pairs), request))
    if resource_type == "DocumentReference":
        url = str(request.url)
        return await run_in_threadpool(
            lambda: respond(_mhd(request, principal, pairs, url), request)
        )
    return await _run(
        request,
        principal,
        prefer,
        write=False,
        resource_type=resource_type,
        action="fhir.search",
        target=resource_type,
        query=masked_query(pairs),
        work=lambda server, call: server.search(call, resource_type, pairs, str(request.url)),
        guard=lambda server, call, glass, work: consented.search(
            server.database, principal, call, resource_type, pairs, glass, work
        ),
    )


@router.post(
    "/{resource_type}/_search",
    summary="search (form-encoded parameters)",
    openapi_extra=extra(body="form", query="search"),
)
async def search_post(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
) -> Response:
    pairs = query_pairs(request, await request.form())
    # The same search as a GET URL: its self and next links page like a GET search's.
    self_url = f"{fhir_base(request)}/{resource_type}?{urlencode(pairs)}"
    if resource_type == "DocumentReference":
        return await run_in_threadpool(
            lambda: respond(_mhd(request, principal, pairs, self_url), request)
        )
    return await _run(
        request,
        principal,
        prefer,
        write=False,
        resource_type=resource_type,
        action="fhir.search",
        target=resource_type,
        query=masked_query(pairs),
        work=lambda server, call: server.search(call, resource_type, pairs, self_url),
        guard=lambda server, call, glass, work: consented.search(
            server.database, principal, call, resource_type, pairs, glass, work
        ),
    )


@router.post(
    "/{resource_type}/$validate",
    summary="$validate a resource (nothing stored)",
    openapi_extra=extra(body="resource"),
)
async def validate_type(
    request: Request, resource_type: ResourceType, principal: PrincipalDep
) -> Response:
    body = await request.body()
    return await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        work=lambda server, call: server.validate(
            call, resource_type, None, body, dict(request.query_params)
        ),
    )


@router.post(
    "/{resource_type}/{resource_id}/$validate",
    summary="$validate against an id",
    openapi_extra=extra(body="resource"),
)
async def validate_instance(
    request: Request, resource_type: ResourceType, resource_id: ResourceId, principal: PrincipalDep
) -> Response:
    body = await request.body()
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        work=lambda server, call: server.validate(
            call, resource_type, resource_id, body, dict(request.query_params)
        ),
    )


@router.post(
    "/{resource_type}",
    summary="create (conditional with If-None-Exist)",
    openapi_extra=extra(body="resource", query="search"),
)
async def create(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_none_exist: Annotated[str | None, Header(alias="If-None-Exist")] = None,
) -> Response:
    body = await request.body()
    # If-None-Exist is the FHIR way; a query string (fhirpy's get_or_create) says the same.
    condition = if_none_exist or _condition(request)
    return await _run(
        request,
        principal,
        prefer,
        write=True,
        action="fhir.create",
        target=resource_type,
        query=mask(condition) if condition else None,
        work=lambda server, call: server.create(call, resource_type, body, condition),
    )


@router.put(
    "/{resource_type}",
    summary="conditional update (search parameters in the URL)",
    openapi_extra=extra(body="resource", query="search"),
)
async def conditional_update(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    return await _update_or_patch(
        request, principal, prefer, resource_type, None, if_match, patch=False
    )


@router.delete(
    "/{resource_type}",
    summary="conditional delete (search parameters in the URL)",
    openapi_extra=extra(query="search"),
)
async def conditional_delete(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
) -> Response:
    def delete_matches(server: FhirServer, call: Call, condition: str | None) -> Answer:
        if condition is None:  # pragma: no cover - _write_one answers 400 without one
            raise AssertionError("unreachable")
        return server.conditional_delete(call, resource_type, condition)

    return await _write_one(
        request, principal, prefer, resource_type, None, action="fhir.delete", work=delete_matches
    )


@router.get(
    "/{resource_type}/_history", summary="type history", openapi_extra=extra(query="history")
)
async def type_history(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
) -> Response:
    pairs = query_pairs(request)
    return await _run(
        request,
        principal,
        prefer,
        write=False,
        resource_type=resource_type,
        action="fhir.history",
        target=resource_type,
        query=masked_query(pairs) or None,
        work=lambda server, call: server.history(
            call, resource_type, None, pairs, str(request.url)
        ),
    )


@router.get(
    "/{resource_type}/{resource_id}",
    summary="read (conditional with If-None-Match, If-Modified-Since)",
    openapi_extra=extra(query="read"),
)
async def read(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    principal: PrincipalDep,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    if_modified_since: Annotated[str | None, Header(alias="If-Modified-Since")] = None,
) -> Response:
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        action="fhir.read",
        target=f"{resource_type}/{resource_id}",
        work=lambda server, call: server.read(
            call,
            resource_type,
            resource_id,
            query_pairs(request),
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
        ),
        guard=lambda server, call, glass, work: consented.read(
            server.database, principal, call, resource_type, glass, work
        ),
    )


@router.put(
    "/{resource_type}/{resource_id}",
    summary="update, or create with this id",
    openapi_extra=extra(body="resource"),
)
async def update(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    return await _update_or_patch(
        request, principal, prefer, resource_type, resource_id, if_match, patch=False
    )


@router.delete("/{resource_type}/{resource_id}", summary="delete", openapi_extra=extra())
async def delete(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    return await _write_one(
        request,
        principal,
        prefer,
        resource_type,
        resource_id,
        action="fhir.delete",
        work=lambda server, call, _: server.delete(
            call, resource_type, resource_id, if_match=parse_etag(if_match)
        ),
    )


@router.get(
    "/{resource_type}/{resource_id}/_history",
    summary="instance history",
    openapi_extra=extra(query="history"),
)
async def instance_history(
    request: Request, resource_type: ResourceType, resource_id: ResourceId, principal: PrincipalDep
) -> Response:
    pairs = query_pairs(request)
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        action="fhir.history",
        target=f"{resource_type}/{resource_id}",
        work=lambda server, call: server.history(
            call, resource_type, resource_id, pairs, str(request.url)
        ),
    )


@router.get(
    "/{resource_type}/{resource_id}/_history/{version_id}",
    summary="vread",
    openapi_extra=extra(query="read"),
)
async def vread(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    version_id: str,
    principal: PrincipalDep,
) -> Response:
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        action="fhir.vread",
        target=f"{resource_type}/{resource_id}/_history/{version_id}",
        work=lambda server, call: server.vread(
            call, resource_type, resource_id, version_id, query_pairs(request)
        ),
    )


@router.patch(
    "/{resource_type}/{resource_id}",
    summary="patch: JSON Patch or FHIRPath Patch (Parameters)",
    openapi_extra=extra(body="resource"),
)
async def patch(
    request: Request,
    resource_type: ResourceType,
    resource_id: ResourceId,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    return await _update_or_patch(
        request, principal, prefer, resource_type, resource_id, if_match, patch=True
    )


@router.patch(
    "/{resource_type}",
    summary="conditional patch (search parameters in the URL)",
    openapi_extra=extra(body="resource", query="search"),
)
async def conditional_patch(
    request: Request,
    resource_type: ResourceType,
    principal: PrincipalDep,
    prefer: PreferHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    return await _update_or_patch(
        request, principal, prefer, resource_type, None, if_match, patch=True
    )


@router.get(
    "/Patient/{resource_id}/$everything",
    summary="Patient $everything: the patient and the institution's records about them",
    openapi_extra=extra(),
)
@router.post(
    "/Patient/{resource_id}/$everything",
    summary="Patient $everything (POST)",
    openapi_extra=extra(),
)
async def everything(
    request: Request, resource_id: ResourceId, principal: PrincipalDep
) -> Response:
    pairs = query_pairs(request)
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type="Patient",
        action="fhir.operation",
        target=f"Patient/{resource_id}/$everything",
        query=masked_query(pairs) or None,
        work=lambda server, call: server.everything(call, resource_id, pairs, str(request.url)),
        guard=lambda server, call, glass, work: consented.everything(
            server.database, principal, call, resource_id, glass, work
        ),
    )


@router.get(
    "/{resource_type}/{resource_id}/$meta",
    summary="$meta: the resource's tags, security labels and profiles",
    openapi_extra=extra(),
)
@router.post(
    "/{resource_type}/{resource_id}/$meta",
    summary="$meta (POST)",
    openapi_extra=extra(),
)
async def meta(
    request: Request, resource_type: ResourceType, resource_id: ResourceId, principal: PrincipalDep
) -> Response:
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=False,
        resource_type=resource_type,
        action="fhir.operation",
        target=f"{resource_type}/{resource_id}/$meta",
        work=lambda server, call: server.meta(call, resource_type, resource_id),
    )


@router.post(
    "/{resource_type}/{resource_id}/$meta-add",
    summary="$meta-add: tags, security labels, profiles added (no new version)",
    openapi_extra=extra(body="resource"),
)
@router.post(
    "/{resource_type}/{resource_id}/$meta-delete",
    summary="$meta-delete: tags, security labels, profiles removed (no new version)",
    openapi_extra=extra(body="resource"),
)
async def change_meta(
    request: Request, resource_type: ResourceType, resource_id: ResourceId, principal: PrincipalDep
) -> Response:
    body = await request.body()
    operation = request.url.path.rsplit("/", 1)[-1]
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        None,
        write=True,
        resource_type=resource_type,
        action="fhir.operation",
        target=f"{resource_type}/{resource_id}/{operation}",
        query=operation,
        work=lambda server, call: server.change_meta(
            call, resource_type, resource_id, body, add=operation == "$meta-add"
        ),
    )
