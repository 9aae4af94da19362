"""``/dashboard/residents``: the record browser for clinicians (and administrators).

Find a resident by identifier or demographics, see their documents and encounters across
institutions newest first, open a CDA document. Nothing here decides who may see what:
:mod:`hie.browser.service` asks :func:`hie.consent.service.decide_access` for every institution,
as the FHIR API does, and each page writes the audit entry the service describes (persons,
records shown, consents or break-glass used), so the resident's access history lists it.

Identifiers are posted, never put in a URL (addresses end up in logs and browser history).
Break-glass is a POST too: it states a reason and is flagged for review, each time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hie.audit import (
    FLUSH_BEFORE_READING,
    Agent,
    address_of,
    flush_reads,
    masked_query,
    record_read,
)
from hie.auth import Principal
from hie.browser import service
from hie.browser.model import SYSTEMS, parse_query
from hie.config import Settings
from hie.consent.model import break_glass_reason
from hie.consent.service import access_history
from hie.dashboard.render import Viewer, render, viewer_of
from hie.dashboard.session import principal_of, read_form, read_session
from hie.errors import InvalidInput, PermissionDenied
from hie.storage import Database

router = APIRouter(prefix="/residents", include_in_schema=False)

BASE = "/dashboard/residents"
SIGNIN = "/dashboard/login"
READERS = ("clinician", "admin")
HISTORY_LIMIT = 50


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _audit(
    request: Request, principal: Principal, action: str, target: str, status: int, **detail: Any
) -> None:
    record_read(
        _database(request),
        Agent.of(principal, address_of(request)),
        action,
        target,
        status=status,
        **detail,
    )


def _viewer(request: Request, form: bool = False) -> Viewer | Response:
    session = read_session(request)
    principal = principal_of(session)
    if principal is None:
        target = request.url.path if not form else BASE
        return RedirectResponse(f"{SIGNIN}?next={quote(target, safe='/')}", 303)
    return viewer_of(request, principal, session)


def _refused_role(request: Request, viewer: Viewer, action: str, target: str) -> Response | None:
    """Residents' records are for clinicians and administrators (the refusal audited)."""
    assert viewer.principal is not None  # noqa: S101 (signed in)
    if viewer.principal.role in READERS:
        return None
    _audit(request, viewer.principal, action, target, 403)
    return _error(request, viewer, 403, "error.forbidden")


def _error(request: Request, viewer: Viewer, status: int, key: str) -> Response:
    return render(request, viewer, "error.html", status=status, message=viewer.t(key), detail="")


def record_link(person_id: int, institution: str, record_id: str) -> str:
    return f"{BASE}/{person_id}/records/{quote(institution, safe='')}/{quote(record_id, safe='')}"


@router.get("", name="dashboard_residents")
def search_form(request: Request) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    refused = _refused_role(request, viewer, "dashboard.resident.find", service.LOOKUP)
    if refused is not None:
        return refused
    return _search_page(request, viewer, {}, None, [])


def _search_page(
    request: Request,
    viewer: Viewer,
    form: dict[str, str],
    found: service.Findings | None,
    problems: list[str],
    *,
    status: int = 200,
    glass: str | None = None,
) -> Response:
    return render(
        request,
        viewer,
        "residents.html",
        status=status,
        form=form,
        systems=list(SYSTEMS),
        found=found,
        problems=problems,
        glass=glass,
    )


@router.post("")
async def search(request: Request) -> Response:
    viewer = await run_in_threadpool(_viewer, request, True)
    if isinstance(viewer, Response):
        return viewer
    form = await read_form(request, viewer.session)
    return await run_in_threadpool(_search, request, viewer, form)


def _search(request: Request, viewer: Viewer, form: dict[str, str] | None) -> Response:
    refused = _refused_role(request, viewer, "dashboard.resident.find", service.LOOKUP)
    if refused is not None:
        return refused
    assert viewer.principal is not None  # noqa: S101 (signed in)
    if form is None:
        return _search_page(request, viewer, {}, None, [viewer.t("signin.bad_form")], status=400)
    shown = {k: form.get(k, "") for k in ("system", "value", "name", "birth", "gender")}
    try:
        query = parse_query(form)
    except InvalidInput as exc:
        problems = [viewer.t(f"residents.problem.{p.field}") for p in exc.problems]
        return _search_page(request, viewer, shown, None, problems, status=400)
    glass = break_glass_reason(form.get("reason"))
    with _database(request).transaction() as tx:
        found = service.find_residents(tx.conn, viewer.principal, query, glass)
    _audit(
        request,
        viewer.principal,
        "dashboard.resident.find",
        service.LOOKUP,
        200,
        query=masked_query(query.pairs()) or None,
        **found.audit,
    )
    return _search_page(request, viewer, shown, found, [], glass=glass)


def _person(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


@router.get("/{person}", name="dashboard_resident")
def resident(request: Request, person: str) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    return _timeline(request, viewer, person, None)


@router.post("/{person}")
async def resident_break_glass(request: Request, person: str) -> Response:
    viewer = await run_in_threadpool(_viewer, request)
    if isinstance(viewer, Response):
        return viewer
    form = await read_form(request, viewer.session)
    if form is None:
        return _error(request, viewer, 400, "signin.bad_form")
    glass = break_glass_reason(form.get("reason"))
    if glass is None:
        return _error(request, viewer, 400, "residents.reason_needed")
    return await run_in_threadpool(_timeline, request, viewer, person, glass)


def _timeline(request: Request, viewer: Viewer, text: str, glass: str | None) -> Response:
    action = "dashboard.resident.timeline"
    refused = _refused_role(request, viewer, action, f"person/{text}")
    if refused is not None:
        return refused
    assert viewer.principal is not None  # noqa: S101 (signed in)
    person = _person(text)
    target = f"person/{person if person is not None else 0}"
    try:
        if person is None:
            raise service.Refused(0, "not a person id")
        with _database(request).transaction() as tx:
            timeline = service.timeline(tx.conn, viewer.principal, person, glass)
    except service.Refused as exc:
        detail = exc.audit if person is not None else {}
        _audit(request, viewer.principal, action, target, 403, **detail)
        return _resident_page(request, viewer, person or 0, None, glass, status=403)
    _audit(request, viewer.principal, action, target, 200, **timeline.audit)
    history = _access_history(request, viewer.principal, person)
    return _resident_page(request, viewer, person, timeline, glass, history=history)


def _access_history(
    request: Request, principal: Principal, person: int
) -> list[dict[str, Any]] | None:
    """An administrator sees who read the resident's records (the access history; reading it
    is audited as on the API); a clinician does not."""
    if principal.role != "admin":
        return None
    database = _database(request)
    flush_reads(database, timeout=FLUSH_BEFORE_READING)  # this process's latest reads too
    with database.connection() as conn:
        entries = access_history(conn, person, HISTORY_LIMIT)
    _audit(request, principal, "person.access-history", f"person/{person}", 200)
    zone = _settings(request).zone
    return [
        {**e, "local_time": e["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")} for e in entries
    ]


def _resident_page(
    request: Request,
    viewer: Viewer,
    person: int,
    timeline: service.Timeline | None,
    glass: str | None,
    *,
    status: int = 200,
    history: list[dict[str, Any]] | None = None,
) -> Response:
    return render(
        request,
        viewer,
        "resident.html",
        history=history,
        status=status,
        person=person,
        timeline=timeline,
        glass=glass,
        record_link=record_link,
        zone=_settings(request).zone,
    )


@router.get("/{person}/records/{institution}/{record_id:path}", name="dashboard_record")
def record(request: Request, person: str, institution: str, record_id: str) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    return _open(request, viewer, person, institution, record_id, None)


@router.post("/{person}/records/{institution}/{record_id:path}")
async def record_break_glass(
    request: Request, person: str, institution: str, record_id: str
) -> Response:
    viewer = await run_in_threadpool(_viewer, request)
    if isinstance(viewer, Response):
        return viewer
    form = await read_form(request, viewer.session)
    glass = None if form is None else break_glass_reason(form.get("reason"))
    if glass is None:
        return _error(
            request, viewer, 400, "signin.bad_form" if form is None else "residents.reason_needed"
        )
    return await run_in_threadpool(_open, request, viewer, person, institution, record_id, glass)


def _open(
    request: Request,
    viewer: Viewer,
    text: str,
    institution: str,
    record_id: str,
    glass: str | None,
) -> Response:
    action = "dashboard.resident.document"
    target = f"{institution}:{record_id}"
    refused = _refused_role(request, viewer, action, target)
    if refused is not None:
        return refused
    assert viewer.principal is not None  # noqa: S101 (signed in)
    person = _person(text)
    try:
        if person is None:
            raise service.Refused(0, "not a person id")
        with _database(request).transaction() as tx:
            opened = service.open_document(
                tx.conn, viewer.principal, person, institution, record_id, glass
            )
    except PermissionDenied as exc:
        detail = exc.audit if isinstance(exc, service.Refused) and person is not None else {}
        _audit(request, viewer.principal, action, target, 403, **detail)
        return _error(request, viewer, 403, "residents.denied")
    _audit(request, viewer.principal, action, target, 200, **opened.audit)
    return HTMLResponse(service.rendered(opened))
