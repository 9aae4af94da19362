"""``/dashboard``: sign-in and sign-out, the month overview, institution and table pages.

Handlers are plain functions (run in the thread pool: storage is synchronous). Each page answers
its own exports: the same URL with ``export=csv|xlsx&table=<name>``, so that a download passes
through exactly the permission check and the data of the page it came from.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from hie.audit import FLUSH_BEFORE_READING, flush_reads, masked_query
from hie.config import Settings
from hie.dashboard.audit_page import audit_page, record_view
from hie.dashboard.exports import FORMATS, grid_download, report_download
from hie.dashboard.i18n import Translator
from hie.dashboard.institution import STATUSES, institution_page
from hie.dashboard.overview import bulletin_tables
from hie.dashboard.render import Viewer, finish, link, render, viewer_of
from hie.dashboard.session import (
    Session,
    clear_session,
    new_session,
    principal_of,
    read_form,
    read_session,
    write_session,
)
from hie.dashboard.table_page import table_page
from hie.errors import NotFound
from hie.forwarding.service import current_status
from hie.metrics.export import KINDS
from hie.metrics.report import parse_month
from hie.storage import Database
from hie.storage.audit import record_event
from hie.storage.dashboard import report_months
from hie.storage.partitions import month_of
from hie.storage.reports import load_report
from hie.storage.sessions import (
    end_session,
    named_token,
    open_session,
    purge_sessions,
    record_signin_failure,
    signin_wait,
)
from hie.storage.tokens import authenticate

router = APIRouter(prefix="/dashboard", include_in_schema=False)

HOME = "/dashboard"
SIGNIN = "/dashboard/login"


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _signed_in(request: Request) -> Viewer | Response:
    """The viewer of a page, or the redirect to the sign-in form that comes back here."""
    session = read_session(request)
    principal = principal_of(session)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # Relative redirects: behind a TLS-terminating proxy the app's own idea of its scheme
        # and host may be wrong.
        return RedirectResponse(f"{SIGNIN}?{urlencode({'next': target})}", 303)
    return viewer_of(request, principal, session)


def _error(request: Request, viewer: Viewer, status: int, key: str, detail: str = "") -> Response:
    return render(
        request, viewer, "error.html", status=status, message=viewer.t(key), detail=detail
    )


def _month(request: Request, months: list[date]) -> date | None:
    """The requested month, else the latest with a report, else the current one."""
    text = request.query_params.get("month")
    if text:
        try:
            return parse_month(text)
        except ValueError:
            return None
    if months:
        return months[0]
    return month_of(datetime.now(UTC), _settings(request).zone)


def _export(request: Request) -> tuple[str, str] | None:
    fmt, table = request.query_params.get("export"), request.query_params.get("table")
    return (fmt, table) if fmt in FORMATS and table else None


def _safe_next(target: str | None) -> str:
    # Only a path inside the dashboard: never another host ("//evil", "https://...").
    if target and target.startswith(HOME) and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


@router.get("/login", name="dashboard_signin")
def signin_form(request: Request) -> Response:
    session = read_session(request) or new_session()
    viewer = viewer_of(request, None, session)
    response = render(
        request,
        viewer,
        "signin.html",
        next=_safe_next(request.query_params.get("next")),
        problem=None,
    )
    write_session(request, response, session)
    return response


@router.post("/login")
async def signin(request: Request) -> Response:
    session = await run_in_threadpool(read_session, request)
    form = await read_form(request, session)
    viewer = viewer_of(request, None, session)
    if form is None:
        fresh = new_session()
        response = render(
            request,
            viewer_of(request, None, fresh),
            "signin.html",
            status=400,
            next=HOME,
            problem=viewer.t("signin.bad_form"),
        )
        write_session(request, response, fresh)
        return response
    return await run_in_threadpool(_attempt, request, viewer, form)


def _attempt(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """One sign-in attempt: refused while its address or token is locked out, counted if it
    fails, a new server-side session if it succeeds; each written to the audit log."""
    address = _address(request)
    token = form.get("token", "").strip()
    next_page = _safe_next(form.get("next"))
    with _database(request).transaction() as tx:
        conn = tx.conn
        named = named_token(conn, token)
        actor = "anonymous" if named is None else f"token:{named}"
        wait = signin_wait(conn, address, named)
        if wait is not None:
            # Locked: the token is not even checked, so a right guess now tells nothing.
            record_event(
                conn,
                actor,
                "dashboard.signin_locked",
                None,
                address=address,
                outcome="locked",
                role=None,
                institution=None,
            )
            response = render(
                request,
                viewer,
                "signin.html",
                status=429,
                next=next_page,
                problem=viewer.t("signin.locked", minutes=-(-wait // 60)),
            )
            response.headers["Retry-After"] = str(wait)
            return response
        principal = authenticate(conn, token)
        if principal is None:
            record_signin_failure(conn, address, named)
            record_event(
                conn,
                actor,
                "dashboard.signin_failed",
                None,
                address=address,
                outcome="failed",
                role=None,
                institution=None,
            )
        else:
            purge_sessions(conn)  # at each sign-in: indexed, and rarely anything to delete
            if viewer.session is not None and viewer.session.session_id is not None:
                end_session(conn, viewer.session.session_id)  # the browser's previous one
            session_id, csrf = open_session(conn, principal.token_id)
            record_event(
                conn,
                principal.actor,
                "dashboard.signin",
                principal.institution_code,
                address=address,
                outcome="ok",
                role=principal.role,
                institution=principal.institution_code,
            )
    if principal is None:
        return render(
            request,
            viewer,
            "signin.html",
            status=401,
            next=next_page,
            problem=viewer.t("signin.bad_token"),
        )
    # A new session (and CSRF token) at sign-in: nothing set before it carries over.
    response = RedirectResponse(next_page, 303)
    write_session(request, response, Session(csrf, session_id, principal))
    return finish(request, viewer, response)


def _address(request: Request) -> str:
    # uvicorn puts the proxy's X-Forwarded-For here when the proxy is trusted
    # (--forwarded-allow-ips); otherwise it is the proxy's own address.
    return request.client.host if request.client else "unknown"


@router.post("/logout")
async def signout(request: Request) -> Response:
    session = await run_in_threadpool(read_session, request)
    form = await read_form(request, session)
    viewer = viewer_of(request, None, session)
    if form is None and session is not None:
        return _error(request, viewer, 400, "signin.bad_form")
    # With no live session (ended, expired, idle) there is nothing to end, and nothing to forge.
    if session is not None and session.session_id is not None:
        await run_in_threadpool(_end, request, session)
    response = RedirectResponse(SIGNIN, 303)
    clear_session(response)
    return finish(request, viewer, response)


def _end(request: Request, session: Session) -> None:
    assert session.session_id is not None and session.principal is not None  # noqa: S101
    principal = session.principal
    with _database(request).transaction() as tx:
        if end_session(tx.conn, session.session_id) is not None:
            record_event(
                tx.conn,
                principal.actor,
                "dashboard.signout",
                principal.institution_code,
                address=_address(request),
                outcome="ok",
                role=principal.role,
                institution=principal.institution_code,
            )


@router.get("")
def overview(request: Request) -> Response:
    viewer = _signed_in(request)
    if isinstance(viewer, Response):
        return viewer
    assert viewer.principal is not None  # noqa: S101 (signed in)
    if viewer.principal.role in ("submitter", "clinician"):
        # A submitter sees its own institution only; the overview lists everyone.
        own = quote(viewer.principal.institution_code or "", safe="")
        return RedirectResponse(f"{HOME}/institutions/{own}", 303)
    with _database(request).connection() as conn:
        months = report_months(conn)
        month = _month(request, months)
        report = load_report(conn, month) if month else None
    if month is None:
        return _error(request, viewer, 400, "error.not_found", request.query_params["month"])
    wanted = _export(request)
    if report is not None and wanted and wanted[1] in (*KINDS, "all"):
        kinds = list(KINDS) if wanted[1] == "all" else [wanted[1]]
        record_view(
            _database(request),
            request,
            viewer.principal,
            "dashboard.export",
            f"report/{month:%Y-%m}",
            table=wanted[1],
            format=wanted[0],
        )
        return finish(
            request, viewer, report_download(report, kinds, viewer.t.lang, month, wanted[0])
        )
    tables = (
        bulletin_tables(
            report,
            viewer.t,
            sort=request.query_params.get("sort"),
            direction=request.query_params.get("dir", ""),
            link=lambda **changes: link(request, **changes),
        )
        if report
        else []
    )
    return render(
        request,
        viewer,
        "overview.html",
        month=month,
        months=months,
        report=report,
        tables=tables,
        generated=_generated(report),
        # Changing the month keeps the chosen order.
        keep={k: request.query_params.get(k) for k in ("sort", "dir")},
    )


def _generated(report: dict[str, Any] | None) -> str:
    if not report:
        return ""
    return datetime.fromisoformat(report["generated_at"]).strftime("%Y-%m-%d %H:%M")


@router.get("/institutions/{code}", name="dashboard_institution")
def institution(request: Request, code: str) -> Response:
    viewer = _signed_in(request)
    if isinstance(viewer, Response):
        return viewer
    assert viewer.principal is not None  # noqa: S101 (signed in)
    database = _database(request)
    wanted = _export(request)
    action = "dashboard.export" if wanted else "dashboard.view"
    if not viewer.principal.can_read(code):
        record_view(database, request, viewer.principal, action, f"institution/{code}", status=403)
        return _error(request, viewer, 403, "error.forbidden")
    # A drill-down into one institution's uploads: recorded before it is shown.
    record_view(
        database,
        request,
        viewer.principal,
        action,
        f"institution/{code}",
        query=masked_query(request.query_params.multi_items()) or None,
    )
    t: Translator = viewer.t
    try:
        with _database(request).connection() as conn:
            months = report_months(conn)
            month = _month(request, months)
            if month is None:
                return _error(
                    request, viewer, 400, "error.not_found", request.query_params["month"]
                )
            page = institution_page(conn, code, month, _settings(request).zone, t)
    except NotFound:
        return _error(request, viewer, 404, "error.not_found", code)
    if wanted and wanted[1] in page.grids:
        download = grid_download(page.grids[wanted[1]], f"{code}-{month:%Y-%m}", wanted[0])
        return finish(request, viewer, download)
    return render(
        request,
        viewer,
        "institution.html",
        page=page,
        month=month,
        months=months,
        statuses=STATUSES,
    )


@router.get("/tables/{code}", name="dashboard_table")
def table(request: Request, code: str) -> Response:
    viewer = _signed_in(request)
    if isinstance(viewer, Response):
        return viewer
    assert viewer.principal is not None  # noqa: S101 (signed in)
    if viewer.principal.role in ("submitter", "clinician"):
        # The page lists other institutions.
        return _error(request, viewer, 403, "error.forbidden")
    try:
        with _database(request).connection() as conn:
            months = report_months(conn)
            month = _month(request, months)
            if month is None:
                return _error(
                    request, viewer, 400, "error.not_found", request.query_params["month"]
                )
            page = table_page(conn, code, month, _settings(request).zone, viewer.t)
    except NotFound:
        return _error(request, viewer, 404, "error.not_found", code)
    wanted = _export(request)
    record_view(
        _database(request),
        request,
        viewer.principal,
        "dashboard.export" if wanted else "dashboard.view",
        f"table/{code}",
        query=masked_query(request.query_params.multi_items()) or None,
    )
    if wanted and wanted[1] in page.grids:
        download = grid_download(page.grids[wanted[1]], f"{code}-{month:%Y-%m}", wanted[0])
        return finish(request, viewer, download)
    return render(request, viewer, "table.html", page=page, month=month, months=months)


@router.get("/audit", name="dashboard_audit")
def audit(request: Request) -> Response:
    """The audit trail, for regulators and administrators; its CSV download is audited too."""
    viewer = _signed_in(request)
    if isinstance(viewer, Response):
        return viewer
    assert viewer.principal is not None  # noqa: S101 (signed in)
    database = _database(request)
    export = request.query_params.get("export") == "csv"
    action = "audit.export" if export else "audit.view"
    query = masked_query(request.query_params.multi_items()) or None
    if viewer.principal.role in ("submitter", "clinician"):
        record_view(database, request, viewer.principal, action, "audit", status=403, query=query)
        return _error(request, viewer, 403, "error.forbidden")
    zone = _settings(request).zone
    flush_reads(database, timeout=FLUSH_BEFORE_READING)  # this process's latest reads too
    with database.connection() as conn:
        page = audit_page(conn, dict(request.query_params), zone, viewer.t, export=export)
    record_view(database, request, viewer.principal, action, "audit", query=query)
    if export:
        stem = f"audit-{datetime.now(zone):%Y%m%d-%H%M%S}"
        return finish(request, viewer, grid_download(page.grid, stem, "csv"))
    return render(request, viewer, "audit.html", page=page)


@router.get("/forwarding", name="dashboard_forwarding")
def forwarding(request: Request) -> Response:
    """Forwarding to the upstream platforms, per destination: for regulators and administrators."""
    viewer = _signed_in(request)
    if isinstance(viewer, Response):
        return viewer
    assert viewer.principal is not None  # noqa: S101 (signed in)
    database = _database(request)
    if viewer.principal.role in ("submitter", "clinician"):
        record_view(database, request, viewer.principal, "forwarding.view", None, status=403)
        return _error(request, viewer, 403, "error.forbidden")
    settings = _settings(request)
    broker = None if settings.broker_url is None else settings.broker_url.get_secret_value()
    with database.connection() as conn:
        destinations = current_status(conn, broker, settings.task_queue)
    record_view(database, request, viewer.principal, "forwarding.view", None)
    return render(request, viewer, "forwarding.html", destinations=destinations)
