"""``/fhir/Subscription``: create, read, update, delete and search of rest-hook Subscriptions.

Mounted before the ``/fhir`` router: a Subscription is no record of an institution's upload
table, so it is kept by its owner token rather than through the records' write path. Answers go
out through the FHIR routes' own writer (JSON, or XML when asked).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hie.audit import Agent, address_of, record_read
from hie.auth import Principal
from hie.fhir.answering import (
    ResourceId,
    fhir_base,
    fhir_server,
    query_pairs,
    refuse_bad_id,
    respond,
)
from hie.fhir.openapi import extra
from hie.fhir.responses import FHIR_JSON, JSON_TYPES, Answer, error
from hie.http.security import PrincipalDep
from hie.subscriptions import service
from hie.subscriptions.model import SUBSCRIPTION

router = APIRouter(prefix="/fhir", tags=["fhir"])


async def _run(
    request: Request,
    principal: Principal,
    work: Callable[[service.Context], Answer],
    *,
    action: str,
    target: str,
    write: bool = False,
) -> Response:
    """Run ``work`` off the event loop. A write records its entry in its own transaction
    (service.py); a read, and a refused write, is recorded here once answered."""

    def blocking() -> Response:
        server = fhir_server(request)
        agent = Agent.of(principal, address_of(request))
        with server.database.connection() as conn:
            catalog = server.catalogs.get(conn)
        ctx = service.Context(
            server.database,
            server.settings.zone,
            fhir_base(request),
            catalog,
            deliverable=server.settings.broker_url is not None,
            agent=agent,
            endpoints=server.settings.endpoint_policy,
        )
        answer = work(ctx)
        if not write or answer.status >= 400:
            record_read(server.database, agent, action, target, status=answer.status)
        return respond(answer, request)

    return await run_in_threadpool(blocking)


def _not_json(request: Request) -> Response | None:
    """415 for a body that is not FHIR JSON (a Subscription is small: JSON only)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("", *JSON_TYPES):
        return None
    return respond(error(415, "not-supported", f"send {FHIR_JSON}, not {media}"), request)


@router.post(
    f"/{SUBSCRIPTION}",
    summary="create a rest-hook Subscription",
    openapi_extra=extra(body="resource"),
)
async def create(request: Request, principal: PrincipalDep) -> Response:
    body = await request.body()
    return _not_json(request) or await _run(
        request,
        principal,
        lambda ctx: service.create(ctx, principal, body),
        action="subscription.create",
        target=SUBSCRIPTION,
        write=True,
    )


@router.get(f"/{SUBSCRIPTION}", summary="search Subscriptions (the caller's; an admin's: all)")
async def search(request: Request, principal: PrincipalDep) -> Response:
    pairs = query_pairs(request)
    return await _run(
        request,
        principal,
        lambda ctx: service.search_subscriptions(ctx, principal, pairs, str(request.url)),
        action="subscription.search",
        target=SUBSCRIPTION,
    )


@router.get(f"/{SUBSCRIPTION}/{{resource_id}}", summary="read a Subscription")
async def read(request: Request, resource_id: ResourceId, principal: PrincipalDep) -> Response:
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        lambda ctx: service.read(ctx, principal, resource_id),
        action="subscription.read",
        target=f"{SUBSCRIPTION}/{resource_id}",
    )


@router.put(
    f"/{SUBSCRIPTION}/{{resource_id}}",
    summary="update a Subscription (or create it with this id)",
    openapi_extra=extra(body="resource"),
)
async def update(request: Request, resource_id: ResourceId, principal: PrincipalDep) -> Response:
    body = await request.body()
    return (
        refuse_bad_id(request, resource_id)
        or _not_json(request)
        or await _run(
            request,
            principal,
            lambda ctx: service.update(ctx, principal, resource_id, body),
            action="subscription.update",
            target=f"{SUBSCRIPTION}/{resource_id}",
            write=True,
        )
    )


@router.delete(f"/{SUBSCRIPTION}/{{resource_id}}", summary="delete a Subscription")
async def delete(request: Request, resource_id: ResourceId, principal: PrincipalDep) -> Response:
    return refuse_bad_id(request, resource_id) or await _run(
        request,
        principal,
        lambda ctx: service.delete(ctx, principal, resource_id),
        action="subscription.delete",
        target=f"{SUBSCRIPTION}/{resource_id}",
        write=True,
    )
