"""The HTTP application: ``create_app(settings)`` mounts every router and owns the database pool."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp

from hie import __version__
from hie.api import catalog_router, forwarding_router, institutions_router, reports_router
from hie.audit import start_read_trail, stop_read_trail
from hie.cda import router as cda_router
from hie.cda.submission import CdaPipeline
from hie.config import Settings, load_settings
from hie.consent.routes import router as consent_router
from hie.dashboard import router as dashboard_router
from hie.dashboard import static_files as dashboard_static
from hie.documents.routes import router as documents_router
from hie.fhir.routes import router as fhir_router
from hie.fhir.server import FhirServer
from hie.http import (
    BodySizeLimit,
    RefuseUnstorable,
    SecurityHeaders,
    UnexpectedErrors,
    install_error_handlers,
)
from hie.http.errors import RETRY_AFTER_SECONDS
from hie.jobs.routes import BULK_PATHS
from hie.jobs.routes import router as jobs_router
from hie.jobs.runner import start_runner, stop_runner
from hie.storage import Database, open_database
from hie.subscriptions.routes import router as subscriptions_router
from hie.validators.cda import CdaSchema
from hie.workers import broker_status, configure
from hie.workers.app import queue_status
from hie.workers.runtime import bind_runtime


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, around Starlette's own error middleware: its 500s get the headers too.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app. Given no database, it opens (and migrates) one at startup and closes it after.

    Outside the embedded development mode the session secret must be configured.
    """
    settings = settings or load_settings()
    settings.session_secret()  # fail at start, not at the first sign-in
    # Compiled once, at start: a broken HIE_CDA_SCHEMA stops the server instead of every upload.
    cda_schema = CdaSchema(settings.cda_schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        db = database if database is not None else await run_in_threadpool(open_database, settings)
        app.state.database = db
        app.state.cda_pipeline = CdaPipeline(settings, db, schema=cda_schema)
        app.state.fhir_server = FhirServer(settings, db)
        celery = configure(settings)
        bind_runtime(settings, db)
        app.state.celery = celery
        start_read_trail(db)  # reads' audit entries, written in the background
        if celery.conf.task_always_eager:
            # No broker: bulk jobs are worked by a thread of this process.
            await run_in_threadpool(start_runner, settings, db)
        try:
            yield
        finally:
            await run_in_threadpool(stop_runner, db)
            await run_in_threadpool(stop_read_trail, db)
            bind_runtime(settings, None)
            if owned:
                await run_in_threadpool(db.close)

    app = _App(
        title="hie",
        version=__version__,
        summary="Regional health-information exchange: CDA and FHIR ingest, validation and "
        "upload-completeness reporting.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Innermost first: an unexpected error is answered inside every other middleware.
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(RefuseUnstorable)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        larger=dict.fromkeys(BULK_PATHS, settings.max_import_bytes),
    )
    install_error_handlers(app)
    app.include_router(institutions_router)
    app.include_router(catalog_router)
    app.include_router(reports_router)
    app.include_router(consent_router)
    app.include_router(forwarding_router)
    app.include_router(jobs_router)  # before /fhir: POST /fhir/$import is not a resource type
    app.include_router(subscriptions_router)  # before /fhir: Subscription is no record type
    app.include_router(fhir_router)
    app.include_router(cda_router)
    app.include_router(documents_router)
    app.include_router(dashboard_router)
    app.mount("/dashboard/static", dashboard_static(), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        # The address printed at start: the dashboard, with the API docs linked.
        return RedirectResponse(
            "/dashboard", status_code=307, headers={"Link": '</docs>; rel="service-doc"'}
        )

    @app.get("/healthz", tags=["operations"], summary="Database and broker state (no token)")
    async def healthz(request: Request) -> JSONResponse:
        # Asked side by side: with both down the answer still comes within the longer of
        # HIE_DB_TIMEOUT and HIE_BROKER_TIMEOUT.
        database, broker = await asyncio.gather(
            run_in_threadpool(_database_status, request.app.state.database),
            run_in_threadpool(broker_status, request.app.state.celery),
        )
        checks: dict[str, Any] = {"database": database, "broker": broker}
        down = [name for name, check in checks.items() if check["status"] != "ok"]
        body = {"status": "unavailable" if down else "ok", "version": __version__, **checks}
        if broker["status"] == "ok" and broker.get("mode") == "rabbitmq":
            try:
                body["queues"] = await run_in_threadpool(queue_status, request.app.state.celery)
            except Exception as exc:
                body["queues"] = {"status": "unavailable", "error": type(exc).__name__}
        if down:
            body["unavailable"] = down
        return JSONResponse(
            body,
            status_code=503 if down else 200,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if down else None,
        )

    return app


def _database_status(database: Database) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with database.connection() as conn:
            conn.execute("select 1")
            row = conn.execute("select max(version) as v from schema_migration").fetchone()
    except Exception as exc:
        return {"status": "unavailable", "error": type(exc).__name__}
    return {
        "status": "ok",
        "schema_version": row["v"] if row else None,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def create_worker_app() -> FastAPI:
    """The app of one worker process of ``hie serve --workers N``, which ends when the process
    that started it is gone: a supervisor killed with SIGKILL cannot stop its workers, and the
    orphans would keep the port and hold the embedded PostgreSQL open."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown, lifespan included

    threading.Thread(target=watch, name="hie-parent-watch", daemon=True).start()
    return create_app()
